"""Events on stdout (``@stdout``, a pod's only channel) stay whole while the script prints big blocks
from another thread: every marked line parses, every printed line arrives as it was printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from workbench.tracking.events import MARKER_BYTES, MAX_EVENT_LINE

SCRIPT = """\
import threading
import workbench

BLOCK = "p" * 2_000_000

def chatter():
    for i in range(40):
        print(f"{i:03d}" + BLOCK)

talker = threading.Thread(target=chatter)
talker.start()
for i in range(1_000_000):
    workbench.log_metric("loss", i * 0.5, step=i)
talker.join()
print("done")
"""


def _points(line: bytes) -> int:
    import json

    event = json.loads(line[len(MARKER_BYTES):])
    assert event["e"] == "series" and event["k"] == "loss"
    return int(event["n"])


def _stdout_lines(tmp_path: Path, script: str, timeout: int) -> list[bytes]:
    """The stdout lines of ``script`` run with its events on stdout (``@stdout``, a pod's channel)."""
    (tmp_path / "script.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["WORKBENCH_EVENTS"] = "@stdout"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True,
                         timeout=timeout, check=True).stdout
    return out.rstrip(b"\n").split(b"\n")


def test_big_prints_from_a_thread_and_event_flushes_stay_whole(tmp_path: Path) -> None:
    lines = _stdout_lines(tmp_path, SCRIPT, 600)
    marked = [line for line in lines if line.startswith(MARKER_BYTES)]
    # A flush that waited a whole second for a starved thread's newline ends the printed line
    # itself: the line's text is intact, and an empty line follows it.
    printed = [line for line in lines if not line.startswith(MARKER_BYTES) and line]
    assert all(len(line) + 1 <= MAX_EVENT_LINE and MARKER_BYTES not in line[1:] for line in marked)
    assert sum(_points(line) for line in marked) == 1_000_000
    assert printed == [f"{i:03d}".encode() + b"p" * 2_000_000 for i in range(40)] + [b"done"]


OPEN_LINE_SCRIPT = """\
import sys
import workbench
from workbench.tracking import api, stdout_lock

stdout_lock.LINE_WAIT = 0.05  # the printed line below stays open longer than the flush waits
api.FLUSH_INTERVAL = 1e9
for i in range(1000):
    workbench.log_metric("loss", i * 0.5, step=i)
sys.stdout.write("progress 50%")
api.active_run().flush()
print(" done")
"""


def test_events_start_a_line_of_their_own_when_the_printed_line_stays_open(tmp_path: Path) -> None:
    lines = _stdout_lines(tmp_path, OPEN_LINE_SCRIPT, 300)
    marked = [line for line in lines if line.startswith(MARKER_BYTES)]
    assert sum(_points(line) for line in marked) == 1000
    assert [line for line in lines if not line.startswith(MARKER_BYTES)] == [b"progress 50%", b" done"]


def test_the_locked_stream_outlives_a_script_that_replaces_stdout() -> None:
    """A script that puts its own ``sys.stdout`` in place must not free the locked stream under
    another thread's ``print`` (Python 3.11's ``print`` holds no reference of its own to it)."""
    import gc
    import io
    import weakref

    from workbench.tracking import stdout_lock

    real = io.StringIO()
    saved, installed = sys.stdout, len(stdout_lock._INSTALLED)
    try:
        sys.stdout = real
        stdout_lock.lock_stdout()
        locked = weakref.ref(sys.stdout)
        assert isinstance(locked(), stdout_lock.LockedStream)
        sys.stdout = io.StringIO()  # the script's own stream
        gc.collect()
        still = locked()
        assert still is not None, "the locked stream was freed while a print could still be using it"
        still.write("still written\n")
        assert real.getvalue() == "still written\n"
    finally:
        sys.stdout = saved
        del stdout_lock._INSTALLED[installed:]
