"""The one-watcher-per-project lock: real processes holding it, SIGKILLed holders, stale records."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.errors import BusyError
from workbench.versioning.watch import lock as watch_lock
from workbench.versioning.watch.lock import WatcherRecord, WatchLock, read_record, watch_status

HOLDER = """
import sys, time
from pathlib import Path
from workbench.versioning.watch.lock import WatchLock
lock = WatchLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def _spawn_holder(locks: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(locks)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_is_refused_naming_the_pid_and_kill_9_frees_it(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    proc = _spawn_holder(locks)
    try:
        status = watch_status(locks)
        assert status.active and status.record is not None and status.record.pid == proc.pid
        with pytest.raises(BusyError, match=f"pid {proc.pid}"):
            WatchLock(locks).acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        dead = watch_status(locks)
        assert not dead.active and dead.stale and dead.record is not None and dead.record.pid == proc.pid
        lock = WatchLock(locks)
        record = lock.acquire()
        assert record.pid == os.getpid()
        assert lock.took_over is not None and lock.took_over.pid == proc.pid
        assert watch_status(locks).active
        lock.update(last_snapshot="abc", snapshots=1)
        assert read_record(locks) is not None and read_record(locks).last_snapshot == "abc"  # type: ignore[union-attr]
        lock.release()
        after = watch_status(locks)
        assert not after.active and not after.stale and after.record is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_same_process_second_lock_refused(tmp_path: Path) -> None:
    first = WatchLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(BusyError, match=f"pid {os.getpid()}"):
            WatchLock(tmp_path).acquire()
    finally:
        first.release()
    second = WatchLock(tmp_path)
    second.acquire()
    second.release()


def test_status_without_any_watcher_creates_nothing(tmp_path: Path) -> None:
    status = watch_status(tmp_path / "locks")
    assert not status.active and status.record is None
    assert not (tmp_path / "locks").exists()
    assert status.to_json()["active"] is False


def test_pid_fallback_detects_dead_and_reused_pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where flock is refused (some network mounts), the record's pid + start time decides."""
    host = socket.gethostname()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = WatcherRecord(pid=proc.pid, host=host, process_started_at=time.time(), started_at=time.time())
    assert not watch_lock._pid_alive(dead)
    me = os.getpid()
    started = watch_lock.process_start_time(me)
    assert started is not None
    assert watch_lock._pid_alive(WatcherRecord(me, host, started, time.time()))
    # same pid, another start time: the pid was reused by an unrelated process
    assert not watch_lock._pid_alive(WatcherRecord(me, host, started - 3600, time.time()))

    def no_flock(fd: int, op: int) -> None:
        raise OSError(watch_lock.errno.ENOLCK, "No locks available")

    monkeypatch.setattr(watch_lock.fcntl, "flock", no_flock)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / watch_lock.RECORD_NAME).write_text(json.dumps(dead.__dict__))
    (tmp_path / watch_lock.LOCK_NAME).write_text("")
    assert watch_status(tmp_path).stale
    lock = WatchLock(tmp_path)
    lock.acquire()  # the dead holder's record is taken over
    assert lock.took_over is not None and lock.took_over.pid == proc.pid
    assert watch_status(tmp_path).active  # our own live pid now
    with pytest.raises(BusyError):
        WatchLock(tmp_path).acquire()
    lock.release()
