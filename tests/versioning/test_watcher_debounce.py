"""The debouncer: quiet interval, max-interval cap, hot paths held back at the cap (fake clock)."""

from __future__ import annotations

import threading
import time

from workbench.versioning.watch.debounce import Debouncer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_becomes_one_batch_after_quiet() -> None:
    clock = Clock()
    d = Debouncer(quiet=1.0, max_interval=30.0, clock=clock)
    for i in range(1000):
        clock.t += 0.001
        d.add([f"f{i}.txt"])
    assert d.take() is None  # not quiet yet
    clock.t += 0.999
    assert d.take() is None
    clock.t += 0.002
    batch = d.take()
    assert batch is not None and batch.reason == "quiet"
    assert len(batch.paths) == 1000 and not batch.full
    assert d.take() is None and d.pending == 1  # taken, not yet done: the watcher is not idle
    d.done()
    assert d.pending == 0


def test_cap_versions_a_folder_that_never_goes_quiet_but_holds_hot_files() -> None:
    clock = Clock()
    d = Debouncer(quiet=1.0, max_interval=5.0, clock=clock)
    d.add(["done.bin"])
    d.add(["out"])  # a folder created at the start
    for _ in range(50):  # a log being appended every 0.2 s: never quiet
        clock.t += 0.2
        d.add(["out/train.log"])
        batch = d.take()
        if batch is not None:
            break
    assert batch is not None and batch.reason == "cap"
    # done.bin goes; the hot log and the folder above it wait
    assert batch.paths == {"done.bin"} and batch.deferred == 2
    clock.t += 1.5  # the writer stopped
    later = d.take()
    assert later is not None and later.paths == {"out", "out/train.log"}


def test_full_rescan_waits_for_hot_files_and_request_now_is_immediate() -> None:
    clock = Clock()
    d = Debouncer(quiet=1.0, max_interval=2.0, clock=clock)
    d.request_now(full=True)
    batch = d.take()
    assert batch is not None and batch.full and batch.reason == "now"
    d.add(["a"], full=True)
    for _ in range(10):
        clock.t += 0.5
        d.add(["a"])
        assert d.take() is None  # cap reached but everything is hot: nothing half-written goes
    clock.t += 1.0
    batch = d.take()
    assert batch is not None and batch.full and batch.paths == {"a"}


def test_wait_blocks_until_due_and_close_wakes_it() -> None:
    d = Debouncer(quiet=0.05, max_interval=1.0)
    start = time.monotonic()
    d.add(["x"])
    batch = d.wait(timeout=60)  # returns when due, not at the timeout (no upper bound: loaded machines)
    assert batch is not None and batch.paths == {"x"}
    assert time.monotonic() - start >= 0.04  # it waited for the quiet interval
    assert d.wait(timeout=0.05) is None  # nothing pending: the timeout passes
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(d.wait()))
    t.start()
    d.close()
    t.join(60)
    assert not t.is_alive() and result == [None]
