"""Coalesce a flood of file-system events into batches: one snapshot per burst.

A batch is due when the folder has been quiet for ``quiet`` seconds (no new event), or when the
oldest pending event is ``max_interval`` seconds old, so that a folder that never goes quiet is still
versioned. When the cap forces a batch, paths that are still "hot" (an event within the last
``quiet`` seconds: a file being written right now) stay pending, so a file is not versioned while
it is half-written; a directory path stays pending too while a hot path lies below it.

Pure logic plus a condition variable: the clock is injectable and nothing here touches the disk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Batch:
    """What one snapshot should look at."""

    paths: set[str] = field(default_factory=set)
    """Project-relative posix paths (files or folders) that changed."""
    full: bool = False
    """Rescan the whole folder (start-up catch-up, lost events, ignore rules changed, polling)."""
    reason: str = "quiet"
    """``quiet``, ``cap`` (max interval reached), ``now`` (asked for) or ``poll``."""
    held: set[str] = field(default_factory=set)
    """Hot paths held back for the next batch (still being written: keep their previous version)."""

    @property
    def deferred(self) -> int:
        return len(self.held)


def _under(path: str, folder: str) -> bool:
    return folder == "" or path == folder or path.startswith(folder + "/")


class Debouncer:
    """Thread-safe accumulator of changed paths with quiet-interval and max-interval timing."""

    def __init__(self, quiet: float, max_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if quiet <= 0 or max_interval <= 0:
            raise ValueError("quiet and max_interval must be positive")
        self.quiet = quiet
        self.max_interval = max(max_interval, quiet)
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[str, float] = {}  # path -> time of its latest event
        self._full = False
        self._now = False
        self._first: float | None = None  # when the oldest pending change arrived
        self._last: float | None = None   # when the newest one arrived
        self._closed = False
        self._outstanding = 0  # batches taken but not yet marked done()

    # -- feeding ---------------------------------------------------------------------------------
    def add(self, paths: Iterable[str], *, full: bool = False, at: float | None = None) -> None:
        """Record changes (``full``: the whole folder must be rescanned)."""
        now = self._clock() if at is None else at
        with self._cond:
            added = False
            for path in paths:
                self._pending[path] = now
                added = True
            if full:
                self._full = True
                added = True
            if added:
                if self._first is None:
                    self._first = now
                self._last = now
                self._cond.notify_all()

    def request_now(self, *, full: bool = False) -> None:
        """Make a batch due at once (start-up catch-up, a user's "snapshot now")."""
        with self._cond:
            self._now = True
            self._full = self._full or full
            now = self._clock()
            if self._first is None:
                self._first = now
            if self._last is None:
                self._last = now
            self._cond.notify_all()

    def close(self) -> None:
        """Wake and stop every waiter."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- state -------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Paths waiting, plus one for a pending full rescan and one per batch taken but not done."""
        with self._cond:
            return len(self._pending) + (1 if self._full else 0) + self._outstanding

    def due_at(self) -> float | None:
        """When the pending batch becomes due (clock time), or None if nothing is pending."""
        with self._cond:
            return self._due_at_locked()

    def _due_at_locked(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        if self._now:
            return self._first
        return min(self._last + self.quiet, self._first + self.max_interval)

    # -- draining ----------------------------------------------------------------------------------
    def take(self, now: float | None = None) -> Batch | None:
        """The due batch (removed from pending), or None if nothing is due yet."""
        with self._cond:
            return self._take_locked(self._clock() if now is None else now)

    def _take_locked(self, now: float) -> Batch | None:
        due = self._due_at_locked()
        if due is None or now < due:
            return None
        assert self._first is not None and self._last is not None
        if self._now:
            reason = "now"
        elif now >= self._last + self.quiet:
            reason = "quiet"
        else:
            reason = "cap"
        hot = {p for p, t in self._pending.items() if now - t < self.quiet} if reason == "cap" else set()
        # A folder hint would rescan the hot files below it: hold it back with them.
        held = {p for p in self._pending if p in hot or any(_under(h, p) for h in hot)} if hot else set()
        # A whole-folder rescan would read the hot files too: it waits for them as well.
        full_now = self._full and not held
        batch = Batch(paths={p for p in self._pending if p not in held}, full=full_now, reason=reason,
                      held=set(held))
        self._pending = {p: t for p, t in self._pending.items() if p in held}
        self._full = self._full and not full_now
        self._now = False
        if self._pending or self._full:
            # The held paths start a new cap window; their own quiet time still applies.
            self._first = now
            self._last = max(self._pending.values(), default=now)
        else:
            self._first = self._last = None
        if not batch.paths and not batch.full:
            return None
        self._outstanding += 1
        return batch

    def done(self) -> None:
        """The consumer finished a batch it took (see :attr:`pending`)."""
        with self._cond:
            self._outstanding = max(0, self._outstanding - 1)

    def wait(self, timeout: float | None = None) -> Batch | None:
        """Block until a batch is due (and return it), ``timeout`` passes, or :meth:`close` is called."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                batch = self._take_locked(now)
                if batch is not None:
                    return batch
                due = self._due_at_locked()
                waits = [t - now for t in (due, deadline) if t is not None]
                if deadline is not None and now >= deadline:
                    return None
                self._cond.wait(max(0.0, min(waits)) + 0.001 if waits else None)
            return None
