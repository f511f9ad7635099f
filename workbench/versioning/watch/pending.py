"""What a running watcher knows has changed since its last snapshot, so ``status`` need not rescan.

Like git's fsmonitor: the watcher keeps, in ``.workbench/watch-pending.json`` (replaced atomically),
the set of paths it saw change since the snapshot it last committed (its *base*) plus a token:
the base snapshot id, a monotonically increasing event sequence, and whether the record can be
trusted (events mode, no overflow and no ignore-rule change waiting for their full rescan, the
start-up catch-up done). ``status`` then stats only those paths, over HEAD, instead of walking
the tree (:func:`pending_paths`), and falls back to the full scan whenever any condition fails.

The window between a change and the watcher hearing of it is closed with a cookie, as watchman
does: ``status`` creates ``.workbench/cookie.<pid>.<n>`` and waits (``COOKIE_WAIT_SECONDS``) for a
record that acknowledges it. inotify delivers the events of one watch descriptor set in order, and
the watcher handles them in order, so a record acknowledging the cookie includes every change made
before ``status`` started. No acknowledgement in time (a dead or stuck watcher, a lost event, a
move waiting to be paired): full scan.

The watcher side is :class:`PendingTracker` (thread-safe; fed by the watcher's event handler and its
snapshot loop). The status side reads the record only if the watch lock is held (a live process)
by the same watcher that wrote it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.paths import LOCKS_DIRNAME, STORE_DIRNAME, WATCH_PENDING_FILENAME

RECORD_NAME = WATCH_PENDING_FILENAME
LOCK_NAME = "watch.lock"
PRESENCE_NAME = "watch.json"
"""The watch lock and its presence record in ``.workbench/locks/`` (see :mod:`lock`)."""
COOKIE_PREFIX = "cookie."
COOKIE_WAIT_SECONDS = 0.05
"""How long ``status`` waits for the watcher to acknowledge its cookie before scanning everything."""
MAX_PENDING = 20_000
"""Beyond this many pending paths the record says "untrusted": a full scan is as cheap."""
_KEEP_COOKIES = 32


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f + "/") for f in folders)


class PendingTracker:
    """The watcher's side: pending paths with the sequence number of their latest event."""

    def __init__(self, store_dir: Path, pid: int, started_at: float) -> None:
        self.path = store_dir / RECORD_NAME
        self.store_dir = store_dir
        self.pid = pid
        self.started_at = started_at
        self._lock = threading.Lock()
        self._seq = 0
        self._pending: dict[str, int] = {}
        self._base: str | None = None
        self._untrusted: str | None = "catching up"
        self._untrusted_seq = 0
        self._cookies: list[str] = []

    # -- fed by the watcher --------------------------------------------------------------------------
    def add(self, paths: Iterable[str]) -> None:
        with self._lock:
            for path in paths:
                self._seq += 1
                self._pending[path] = self._seq

    def distrust(self, why: str) -> None:
        """Until a full rescan taken after now is committed (overflow, ignore rules changed, polling)."""
        with self._lock:
            self._seq += 1
            self._untrusted = why
            self._untrusted_seq = self._seq
        self.write()

    def mark(self) -> int:
        """The current sequence: call when a batch is taken, before its scan starts."""
        with self._lock:
            return self._seq

    def committed(self, base: str, taken_at: int, paths: Iterable[str], *, full: bool,
                  keep: Iterable[str] = ()) -> None:
        """A snapshot ``base`` was committed for a batch taken at ``taken_at`` (see :meth:`mark`).

        Paths whose latest event is not later than the take and that the snapshot looked at (all of
        them for a full rescan) are no longer pending, except those in or below ``keep`` (held back
        or changed while being read: they kept their previous version)."""
        kept = tuple(keep)
        scanned = None if full else set(paths)
        with self._lock:
            self._base = base
            for path, seq in list(self._pending.items()):
                if seq <= taken_at and (scanned is None or path in scanned) and not _under(path, kept):
                    del self._pending[path]
            if full and self._untrusted is not None and self._untrusted_seq <= taken_at:
                self._untrusted = None
        self.write()

    def cookie(self, name: str) -> None:
        """``status`` left a cookie: acknowledge it with a record of everything seen before it."""
        with self._lock:
            self._cookies.append(name)
            del self._cookies[:-_KEEP_COOKIES]
        self.write()

    # -- the record ------------------------------------------------------------------------------
    def snapshot_record(self) -> dict[str, Any]:
        with self._lock:
            untrusted = self._untrusted
            if untrusted is None and len(self._pending) > MAX_PENDING:
                untrusted = "too many pending paths"
            return {"pid": self.pid, "started_at": self.started_at, "seq": self._seq, "base": self._base,
                    "trusted": untrusted is None and self._base is not None, "why": untrusted,
                    "written_at": time.time(), "cookies": list(self._cookies),
                    "paths": sorted(self._pending) if untrusted is None else []}

    def write(self) -> None:
        record = self.snapshot_record()
        tmp = self.path.with_name(f".{RECORD_NAME}.{self.pid}.{threading.get_ident()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, self.path)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def is_cookie(rel: str) -> str | None:
    """The cookie name if ``rel`` (project-relative) is a status cookie, else None."""
    head, _, name = rel.rpartition("/")
    return name if head == STORE_DIRNAME and name.startswith(COOKIE_PREFIX) else None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _live_holder(locks_dir: Path) -> dict[str, Any] | None:
    """The presence record of the process holding the watch lock, or None if no process holds it.

    The same test as :func:`lock.watch_status` without its imports (``status`` start-up time);
    where ``flock`` is unsupported it answers None (the full scan), never a guess."""
    import fcntl

    try:
        fd = os.open(locks_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(locks_dir / PRESENCE_NAME)  # held: by a live process (the kernel drops it at death)
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def pending_paths(store_dir: Path, head_id: str | None, *,
                  wait: float | None = None) -> tuple[list[str] | None, str]:
    """The paths that may differ from snapshot ``head_id`` according to a live watcher, or None.

    Returns ``(paths, why)``: ``why`` says why the watcher's record was not used (for ``--json`` and
    tests). Never blocks longer than ``wait`` (plus a few file operations)."""
    if head_id is None:
        return None, "no snapshot yet"
    record = _read(store_dir / RECORD_NAME)
    if record is None:
        return None, "no watcher record"
    if not record.get("trusted") or record.get("base") != head_id:
        return None, str(record.get("why") or "watcher record is for another snapshot")
    holder = _live_holder(store_dir / LOCKS_DIRNAME)
    if holder is None:
        return None, "no live watcher"
    try:
        same = (holder.get("pid") == record.get("pid")
                and abs(float(holder.get("started_at") or 0) - float(record.get("started_at") or 0)) < 1e-3)
    except (TypeError, ValueError):
        same = False
    if not same:
        return None, "watcher record is from another watcher"
    name = f"{COOKIE_PREFIX}{os.getpid()}.{time.monotonic_ns()}"
    cookie = store_dir / name
    try:
        fd = os.open(cookie, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return None, "cannot write a cookie"
    os.close(fd)
    try:
        deadline = time.monotonic() + (COOKIE_WAIT_SECONDS if wait is None else wait)
        while True:
            record = _read(store_dir / RECORD_NAME)
            if record is not None and name in record.get("cookies", ()):
                break
            if record is not None and (not record.get("trusted") or record.get("base") != head_id):
                # The watcher saw something that voids its record (a .workbenchignore edit, an
                # overflow) after we read it: it will not vouch for the cookie, so stop waiting.
                return None, str(record.get("why") or "watcher record is for another snapshot")
            if time.monotonic() >= deadline:
                return None, "watcher did not answer in time"
            time.sleep(0.0003)
    finally:
        with contextlib.suppress(OSError):
            cookie.unlink()
    if not record.get("trusted") or record.get("base") != head_id:
        return None, str(record.get("why") or "watcher record is for another snapshot")
    paths = record.get("paths")
    if not isinstance(paths, list):
        return None, "malformed watcher record"
    return [str(p) for p in paths], ""
