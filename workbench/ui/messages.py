"""Messages the TUI's workers post back to the UI thread (attributes down, messages up).

Workers never touch widgets: they call :class:`~workbench.ui.data.UiData` and post one of these
with the result. A query's result travels as :class:`Loaded`, which carries the value *and* the
typed callback that takes it: ``Loaded(value: T, handler: Callable[[T], None])``, so mypy checks
that what a worker returns is what its handler accepts (no topic strings, no ``Any``).
:class:`Coalescer` turns a flood of small updates from a thread (log lines, metric ticks, watcher
events) into at most one refresh per interval, as toolong does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from textual.message import Message

T = TypeVar("T")


class Loaded(Message, Generic[T]):
    """A worker finished a query: ``value`` is its result, ``handler`` the screen method that
    takes it (called on the UI thread by :meth:`deliver`)."""

    def __init__(self, value: T, handler: Callable[[T], None]) -> None:
        super().__init__()
        self.value = value
        self.handler = handler

    def deliver(self) -> None:
        self.handler(self.value)


class WatcherState(Message):
    """The in-app watcher changed state (``off``, ``watching``, ``snapshotting``, ``error: ...``)."""

    def __init__(self, state: str, last_snapshot: str | None = None, pending: int = 0) -> None:
        super().__init__()
        self.state = state
        self.last_snapshot = last_snapshot
        self.pending = pending


class DataChanged(Message):
    """Something in the store changed (a snapshot, a run event): visible screens reload."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what


class Coalescer(Generic[T]):
    """Collect items from any thread; hand them to ``flush`` in one batch per interval (UI thread)."""

    def __init__(self, flush: Callable[[list[T]], None]) -> None:
        self._flush = flush
        self._items: list[T] = []
        self._lock = threading.Lock()

    def push(self, item: T) -> None:
        with self._lock:
            self._items.append(item)

    def extend(self, items: list[T]) -> None:
        with self._lock:
            self._items.extend(items)

    def drain(self) -> None:
        """Call from a UI timer: deliver everything gathered since the last call, if anything."""
        with self._lock:
            items, self._items = self._items, []
        if items:
            self._flush(items)
