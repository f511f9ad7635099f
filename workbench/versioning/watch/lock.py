"""The one-watcher-per-project lock, and the presence record that ``watch --status`` and the TUI read.

Two files in ``.workbench/locks/``:

- ``watch.lock``: held with ``flock(LOCK_EX)`` for as long as a watcher runs. The kernel drops the
  lock when the holder dies, SIGKILL included, so a crashed watcher never leaves it stuck. Where the
  file system refuses ``flock`` (some network mounts), the lock falls back to the record below:
  a holder whose pid is gone, or whose process start time differs from the recorded one (the pid was
  reused), is stale and taken over.
- ``watch.json``: the presence record (pid, host, process start time, start time, mode, the last
  snapshot), replaced atomically (temp file, then rename) each time it changes.

Whether a watcher is active is decided by the lock, never by the record alone: a record left by a
dead watcher reads as stale.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import BusyError
from workbench.versioning.watch.pending import LOCK_NAME
from workbench.versioning.watch.pending import PRESENCE_NAME as RECORD_NAME

# A status reader holds a shared lock for microseconds; an acquirer retries for this long before it
# concludes that another watcher really holds the lock.
_ACQUIRE_RETRY_SECONDS = 0.3


@dataclass
class WatcherRecord:
    """What a running watcher says about itself (``watch.json``)."""

    pid: int
    host: str
    process_started_at: float
    """The holder process's start time (from the OS), so a reused pid is not mistaken for it."""
    started_at: float
    """When the watcher took the lock (unix seconds)."""
    mode: str = "events"
    """``events`` (file-system notifications) or ``polling`` (periodic rescans)."""
    snapshots: int = 0
    """Snapshots this watcher has written."""
    last_snapshot: str | None = None
    last_snapshot_at: float | None = None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WatcherRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class WatchStatus:
    """The answer to "is a watcher running for this project?"."""

    active: bool
    record: WatcherRecord | None
    stale: bool = False
    """A record exists but its watcher is gone (crashed or killed)."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"active": self.active, "stale": self.stale}
        record = asdict(self.record) if self.record else {}
        for key in ("pid", "host", "started_at", "mode", "snapshots", "last_snapshot", "last_snapshot_at",
                    "last_error"):
            data[key] = record.get(key)
        return data


def process_start_time(pid: int) -> float | None:
    """The start time of process ``pid`` as the OS reports it, or None if there is no such process."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _pid_alive(record: WatcherRecord) -> bool:
    """Whether the recorded holder still runs (same host only; same pid *and* same start time)."""
    if record.host != socket.gethostname():
        return True  # cannot check another host's processes: assume alive
    started = process_start_time(record.pid)
    return started is not None and abs(started - record.process_started_at) < 1.0


def read_record(locks_dir: Path) -> WatcherRecord | None:
    """The presence record, or None when absent or unreadable."""
    path = locks_dir / RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return WatcherRecord.from_json(data)
    except TypeError:
        return None


def _write_record(locks_dir: Path, record: WatcherRecord) -> None:
    path = locks_dir / RECORD_NAME
    tmp = locks_dir / f".{RECORD_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(record), indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _flock_unsupported(exc: OSError) -> bool:
    return exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def watch_status(locks_dir: Path) -> WatchStatus:
    """Whether a watcher holds this project's lock, with its record. Never blocks, never creates files."""
    record = read_record(locks_dir)
    try:
        fd = os.open(locks_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return WatchStatus(active=False, record=record, stale=record is not None)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return WatchStatus(active=True, record=record)
        except OSError as exc:
            if not _flock_unsupported(exc):
                raise
            alive = record is not None and _pid_alive(record)
            return WatchStatus(active=alive, record=record, stale=record is not None and not alive)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return WatchStatus(active=False, record=record, stale=record is not None)
    finally:
        os.close(fd)


class WatchLock:
    """The exclusive right to watch one project. ``acquire()`` or BusyError; ``release()`` when done."""

    def __init__(self, locks_dir: Path) -> None:
        self.locks_dir = locks_dir
        self._fd: int | None = None
        self.record: WatcherRecord | None = None
        self.took_over: WatcherRecord | None = None
        """The stale record of a dead watcher this lock replaced, if any."""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, mode: str = "events") -> WatcherRecord:
        """Take the lock and write the presence record; BusyError naming the holder if taken."""
        if self._fd is not None:
            raise BusyError("this watcher already holds the lock")
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.locks_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        previous = read_record(self.locks_dir)
        if previous is not None and previous.pid != os.getpid():
            self.took_over = previous
        me = os.getpid()
        self.record = WatcherRecord(
            pid=me, host=socket.gethostname(), process_started_at=process_start_time(me) or time.time(),
            started_at=time.time(), mode=mode,
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{me}\n".encode(), 0)
        _write_record(self.locks_dir, self.record)
        return self.record

    def _lock_fd(self, fd: int) -> None:
        deadline = time.monotonic() + _ACQUIRE_RETRY_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._busy(read_record(self.locks_dir)) from None
                time.sleep(0.02)
            except OSError as exc:
                if not _flock_unsupported(exc):
                    raise
                # No flock here: trust the record, checked by pid and process start time.
                holder = read_record(self.locks_dir)
                if holder is not None and _pid_alive(holder):
                    raise self._busy(holder) from None
                return

    @staticmethod
    def _busy(holder: WatcherRecord | None) -> BusyError:
        if holder is None:
            who = "another process"
        else:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.started_at))
            who = f"pid {holder.pid} on {holder.host}, since {since}"
        return BusyError(
            f"a watcher is already running for this project ({who})",
            "stop that one first (Ctrl+C in its terminal, or kill the pid); "
            "'workbench watch --status' shows it",
        )

    def update(self, **changes: Any) -> None:
        """Change fields of the presence record (mode, last snapshot ...) and rewrite it."""
        if self.record is None or self._fd is None:
            return
        for key, value in changes.items():
            setattr(self.record, key, value)
        with contextlib.suppress(OSError):
            _write_record(self.locks_dir, self.record)

    def release(self) -> None:
        """Remove the record, then drop the lock (idempotent)."""
        if self._fd is None:
            return
        current = read_record(self.locks_dir)
        if current is not None and current.pid == os.getpid():
            with contextlib.suppress(OSError):
                (self.locks_dir / RECORD_NAME).unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
