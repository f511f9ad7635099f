"""The watcher on real file-system events in a temporary project (quiet interval 0.2 s)."""

from __future__ import annotations

import errno
import logging
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import FileClosedEvent, FileModifiedEvent
from watchdog.observers.polling import PollingObserver

from workbench.core.workspace import Workspace
from workbench.errors import BusyError
from workbench.versioning.watch.watcher import Watcher, WatchEvent, reports_closes

QUIET = 0.2


class Events:
    """Collects a watcher's events; ``next(kind)`` waits for the next one of that kind."""

    def __init__(self) -> None:
        self.q: queue.Queue[WatchEvent] = queue.Queue()
        self.seen: list[WatchEvent] = []

    def __call__(self, event: WatchEvent) -> None:
        self.q.put(event)

    def next(self, kind: str, timeout: float = 60.0,
             where: Callable[[WatchEvent], bool] = lambda e: True) -> WatchEvent:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                kinds = [e.kind for e in self.seen]
                raise AssertionError(f"no {kind!r} event within {timeout} s; saw {kinds}")
            try:
                event = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if event.kind == kind and where(event):
                return event

    def none(self, kind: str, within: float) -> None:
        """Assert that no event of ``kind`` arrives within ``within`` seconds."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.q.get(timeout=left)
            except queue.Empty:
                return
            self.seen.append(event)
            assert event.kind != kind, f"unexpected {kind}: {event.message}"

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.q.get_nowait())
            except queue.Empty:
                return


@pytest.fixture
def watch(ws: Workspace) -> Iterator[Callable[..., tuple[Watcher, Events]]]:
    started: list[Watcher] = []

    def start(**kwargs: object) -> tuple[Watcher, Events]:
        events = Events()
        options: dict[str, object] = {"quiet": QUIET, "max_interval": 5.0, "retention": ""}
        options.update(kwargs)
        watcher = Watcher(ws.versions, on_event=events, **options)  # type: ignore[arg-type]
        watcher.start()
        started.append(watcher)
        events.next("started")
        return watcher, events

    yield start
    for watcher in started:
        watcher.stop(flush=False)


def _settle(watcher: Watcher, events: Events | None = None, timeout: float = 60.0) -> None:
    """Wait until nothing is pending or being snapshotted; forget the events seen so far."""
    deadline = time.monotonic() + timeout
    while not watcher.idle:
        assert time.monotonic() < deadline, "watcher never became idle"
        time.sleep(0.02)
    if events is not None:
        events.drain()


def _files(ws: Workspace, ref: str) -> set[str]:
    return set(ws.versions.files(ref))


def test_single_edit_rename_delete_and_new_folder(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    (project_dir / "keep.txt").write_text("kept\n")
    watcher, events = watch()
    first = events.next("snapshot")  # catch-up of what was there before the watcher
    assert "keep.txt" in _files(ws, first.snapshot_id or "")

    (project_dir / "a.txt").write_text("hello\n")
    snap = events.next("snapshot")
    assert snap.paths == ("a.txt",)
    info = ws.versions.get(snap.snapshot_id or "")
    assert info.kind == "auto" and info.changed_paths == ["a.txt"]
    assert ws.versions.read_file(info.id, "a.txt") == b"hello\n"

    os.rename(project_dir / "a.txt", project_dir / "b.txt")
    snap = events.next("snapshot")
    assert set(snap.paths) == {"a.txt", "b.txt"}
    assert {"b.txt", "keep.txt"} <= _files(ws, snap.snapshot_id or "") and "a.txt" not in _files(
        ws, snap.snapshot_id or "")

    (project_dir / "b.txt").unlink()
    snap = events.next("snapshot")
    assert _files(ws, snap.snapshot_id or "") == {"keep.txt"}

    (project_dir / "d" / "e").mkdir(parents=True)
    (project_dir / "d" / "e" / "f.txt").write_text("deep\n")
    snap = events.next("snapshot")
    assert ws.versions.read_file(snap.snapshot_id or "", "d/e/f.txt") == b"deep\n"
    _settle(watcher)


def test_burst_of_1000_files_is_one_snapshot(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    quiet = 2.0
    watcher, events = watch(quiet=quiet, max_interval=300.0)
    stalls: list[float] = []
    for attempt in range(3):
        _settle(watcher, events)
        data = project_dir / f"burst{attempt}"
        data.mkdir()
        gaps = [0.0]
        last = time.monotonic()
        for i in range(1000):
            (data / f"f{i:04d}.csv").write_text(f"{i},{i * i}\n")
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        # The burst's snapshot (an earlier change of the fixture's may still be on its way: not this one).
        snap = events.next("snapshot", where=lambda e, name=data.name: name in e.message)
        _settle(watcher)
        if max(gaps) >= quiet / 2:
            # The premise (a burst with no pause near the quiet interval) did not hold: the writer was
            # descheduled on a loaded machine. That is not the rule under test; write another burst.
            stalls.append(max(gaps))
            continue
        events.none("snapshot", quiet + 0.3)
        mine = [e for e in events.seen if e.kind == "snapshot" and data.name in e.message]
        assert len(mine) == 1, [e.message for e in mine]
        files = _files(ws, snap.snapshot_id or "")
        assert sum(1 for f in files if f.startswith(f"burst{attempt}/")) == 1000
        return
    pytest.fail(f"the writer stalled in every burst ({', '.join(f'{s:.1f} s' for s in stalls)})")


def test_ignored_paths_and_the_store_never_trigger(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    (project_dir / ".workbenchignore").write_text("*.log\n")
    watcher, events = watch()
    events.next("snapshot")
    _settle(watcher, events)
    (project_dir / "train.log").write_text("step 1\n")
    (project_dir / ".env").write_text("SECRET=1\n")
    (project_dir / "__pycache__").mkdir()
    (project_dir / "__pycache__" / "m.pyc").write_bytes(b"\0")
    (project_dir / ".workbench" / "scratch").write_text("x")
    events.none("snapshot", QUIET + 0.6)
    assert watcher.idle


def test_workbenchignore_edit_reloads_rules(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    watcher, events = watch()
    _settle(watcher, events)
    (project_dir / ".workbenchignore").write_text("data/\n")
    events.next("ignore-reloaded")
    events.next("snapshot")
    _settle(watcher, events)
    (project_dir / "data").mkdir()
    (project_dir / "data" / "big.bin").write_bytes(b"x" * 1000)
    events.none("snapshot", QUIET + 0.6)
    (project_dir / ".workbenchignore").write_text("")  # un-ignore: the rescan picks data/ up
    snap = events.next("snapshot", where=lambda e: "data/big.bin" in _files(ws, e.snapshot_id or ""))
    assert ws.versions.read_file(snap.snapshot_id or "", "data/big.bin") == b"x" * 1000


def test_workbenchignore_rewritten_with_the_same_rules_changes_nothing(  # type: ignore[no-untyped-def]
        ws: Workspace, project_dir: Path, watch) -> None:
    """One write raises several events, an editor may rewrite a file unchanged: the rules in force
    are the same, so nothing is reloaded or rescanned (a late second event used to make a fresh
    rescan's answer untrusted again)."""
    (project_dir / ".workbenchignore").write_text("data/\n")
    watcher, events = watch()
    _settle(watcher, events)
    (project_dir / ".workbenchignore").write_text("data/\n")
    os.utime(project_dir / ".workbenchignore")
    events.none("ignore-reloaded", QUIET + 0.6)
    (project_dir / ".workbenchignore").write_text("")  # a real change still reloads
    events.next("ignore-reloaded")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify reports a write's close")
def test_a_workbenchignore_write_in_progress_is_not_read(  # type: ignore[no-untyped-def]
        ws: Workspace, project_dir: Path, watch) -> None:
    """A truncating write raises 'modified' while the file is empty or half written: read then, it
    would load passing rules and reload again. The rules are read when the write is closed. The
    event of the truncated moment is delivered by hand: under load a real one lands there by chance."""
    path = project_dir / ".workbenchignore"
    path.write_text("data/\n")
    watcher, events = watch()
    _settle(watcher, events)
    assert reports_closes(watcher._observer)
    with open(path, "w", encoding="utf-8") as handle:  # truncated to nothing, not yet written
        watcher._on_fs_event(FileModifiedEvent(str(path)))
        handle.write("data/\n")
    watcher._on_fs_event(FileClosedEvent(str(path)))
    events.none("ignore-reloaded", QUIET + 0.6)


def test_an_observer_that_reports_no_close_still_reloads_the_rules(  # type: ignore[no-untyped-def]
        ws: Workspace, project_dir: Path, watch) -> None:
    """watchdog's polling observer reports an edit as 'modified' and never a close: on it (on Linux
    too) every 'modified' of ``.workbenchignore`` is acted on."""
    path = project_dir / ".workbenchignore"
    path.write_text("")
    watcher, events = watch(observer_factory=lambda: PollingObserver(timeout=0.1))
    _settle(watcher, events)
    assert not reports_closes(watcher._observer)
    path.write_text("data/\n")
    events.next("ignore-reloaded")


def test_a_file_growing_for_seconds_is_never_versioned_half_written(  # type: ignore[no-untyped-def]
        ws: Workspace, project_dir: Path, watch) -> None:
    # A file is "being written" while its events come less than `quiet` apart. The appends are
    # 50 ms apart; quiet is 1 s so that a writer stalled by a loaded machine still looks busy.
    watcher, events = watch(quiet=1.0, max_interval=1.0)
    _settle(watcher, events)
    chunk = b"0123456789abcdef" * 64
    appends = 80
    gaps: list[float] = []
    with open(project_dir / "grow.bin", "wb") as handle:
        last = time.monotonic()
        for i in range(appends):  # 4 s of appends: never quiet
            handle.write(chunk)
            handle.flush()
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            if i % 10 == 5:
                (project_dir / f"other{i}.txt").write_text(str(i))  # finished files meanwhile
            time.sleep(0.05)
    final = chunk * appends
    snap = events.next("snapshot", where=lambda e: "grow.bin" in e.paths and ws.versions.read_file(
        e.snapshot_id or "", "grow.bin") == final)
    _settle(watcher)
    during = [e for e in events.seen if e.kind == "snapshot" and e is not snap]
    assert during, "the max-interval cap should have versioned the finished files meanwhile"
    assert any(p.startswith("other") for e in during for p in e.paths)
    assert watcher._hold, "the store's snapshot(hold=...) should be detected"
    for info in ws.versions.log():
        if "grow.bin" in _files(ws, info.id):
            assert ws.versions.read_file(info.id, "grow.bin") == final, (
                f"half-written in {info.id} (longest pause between appends {max(gaps):.2f} s)")


def test_second_watcher_is_refused_with_the_holders_pid(ws: Workspace, watch) -> None:  # type: ignore[no-untyped-def]
    watch()
    other = Watcher(ws.versions, quiet=QUIET, retention="")
    with pytest.raises(BusyError, match=f"pid {os.getpid()}"):
        other.start()
    assert not other.running


def test_falls_back_to_polling_when_the_folder_cannot_be_watched(  # type: ignore[no-untyped-def]
        ws: Workspace, project_dir: Path, watch) -> None:
    def no_inotify() -> object:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    watcher, events = watch(observer_factory=no_inotify, rescan_seconds=0.3)
    fallback = [e for e in events.seen if e.kind == "fallback"]  # said before "started"
    assert len(fallback) == 1 and "inotify watch limit" in fallback[0].message
    assert watcher.mode == "polling"
    assert watcher.status().record is not None and watcher.status().record.mode == "polling"  # type: ignore[union-attr]
    (project_dir / "p.txt").write_text("polled\n")
    # A periodic rescan takes the folder as it is: one may land between write_text's create and
    # its write and version p.txt empty. Wait for the rescan that holds the written bytes.
    snap = events.next("snapshot", where=lambda e: "p.txt" in _files(ws, e.snapshot_id or "")
                       and ws.versions.read_file(e.snapshot_id or "", "p.txt") == b"polled\n")
    assert ws.versions.read_file(snap.snapshot_id or "", "p.txt") == b"polled\n"
    assert sum(1 for e in events.seen if e.kind == "fallback") == 1


def test_event_queue_overflow_rescans_and_says_so_once(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    watcher, events = watch()
    _settle(watcher, events)
    # inotify overflow is only reported by watchdog's logger: raise that very record
    log = logging.getLogger("watchdog.observers.inotify_c")
    (project_dir / "lost.txt").write_text("missed event\n")
    log.warning("Inotify queue overflowed; filesystem events were lost")
    log.warning("Inotify queue overflowed; filesystem events were lost")
    events.next("overflow")
    snap = events.next("snapshot", where=lambda e: "lost.txt" in _files(ws, e.snapshot_id or ""))
    assert snap.snapshot_id
    _settle(watcher)
    assert sum(1 for e in events.seen if e.kind == "overflow") == 1


def test_only_folders_a_snapshot_looks_at_are_watched(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    from workbench.versioning.watch.inotify import watch_count

    for rel in ("src/a", "src/b", ".venv/lib/site/pkg", "node_modules/x/y", "data/raw/2024", "data/raw/2025"):
        (project_dir / rel).mkdir(parents=True)
    (project_dir / ".workbenchignore").write_text("data/\n")
    ws.versions.snapshot("base")  # fills .workbench/cache with its fan-out folders
    before = watch_count()
    watcher, events = watch()
    _settle(watcher, events)
    # the root, src, src/a, src/b and .workbench itself (status cookies; not its subfolders);
    # not .venv, node_modules, data
    assert watch_count() - before == 5
    (project_dir / "new" / "deeper").mkdir(parents=True)  # new folders get their watches
    (project_dir / "new" / "deeper" / "n.txt").write_text("n\n")
    events.next("snapshot", where=lambda e: "new/deeper/n.txt" in _files(ws, e.snapshot_id or ""))
    assert watch_count() - before == 7
    (project_dir / ".workbenchignore").write_text("")  # data/ un-ignored: watched from now on
    events.next("ignore-reloaded")
    events.next("snapshot")
    assert watch_count() - before == 11
    (project_dir / "data" / "raw" / "2025" / "r.csv").write_text("1\n")
    events.next("snapshot", where=lambda e: "data/raw/2025/r.csv" in _files(ws, e.snapshot_id or ""))


def test_a_file_with_a_future_mtime_is_versioned(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    watcher, events = watch()
    _settle(watcher, events)
    path = project_dir / "from-archive.txt"
    path.write_text("unpacked\n")
    future = time.time() + 3600
    os.utime(path, (future, future))
    snap = events.next("snapshot", where=lambda e: "from-archive.txt" in _files(ws, e.snapshot_id or ""))
    assert ws.versions.read_file(snap.snapshot_id or "", "from-archive.txt") == b"unpacked\n"


def test_an_editors_save_is_one_change_of_the_file_edited(ws: Workspace, project_dir: Path, watch) -> None:  # type: ignore[no-untyped-def]
    """vim's swap file and backup, emacs's lock link and autosave around a save: the snapshot
    that follows holds the edited file only, and no editor file ever enters one."""
    (project_dir / "train.py").write_text("lr = 0.1\n")
    watcher, events = watch()
    events.next("snapshot")
    _settle(watcher, events)
    (project_dir / ".train.py.swp").write_bytes(b"b0VIM 9.0" + bytes(4000))  # vim opens the file
    os.symlink("user@host.4242:1700000000", project_dir / ".#train.py")  # emacs's lock: a dangling link
    (project_dir / "#train.py#").write_text("lr = 0.2 (autosave)\n")
    (project_dir / "train.py~").write_text("lr = 0.1\n")  # the backup of the version before
    (project_dir / "train.py.new").write_text("lr = 0.2\n")
    os.replace(project_dir / "train.py.new", project_dir / "train.py")  # a save by rename
    for name in (".train.py.swp", ".#train.py", "#train.py#"):
        os.unlink(project_dir / name)
    snap = events.next("snapshot", where=lambda e: "train.py" in e.paths)
    _settle(watcher, events)
    latest = ws.versions.latest()
    assert latest is not None
    assert _files(ws, latest.id) == {"train.py"}
    assert ws.versions.read_file(latest.id, "train.py") == b"lr = 0.2\n"
    assert "train.py~" not in (snap.paths or ())
