"""Plumbing shared by the executors: split byte streams into lines, tell side-channel lines from
ordinary output, tail a file, and merge several producer threads into one ``lines()``.
Side-channel lines are never cut (see :class:`LineSplitter`); plain output lines are, at 1 MiB.

A job's side-channel lines (:class:`workbench.executors.base.SideChannel`) reach the caller either
from a file the job writes (local, Docker, where a folder is mounted) or on stdout behind the
channel's marker (a cluster pod, whose log is the only channel back). Both arrive as
``("event", payload)`` with the marker stripped. What the lines mean is the caller's business:
nothing here parses them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from workbench.executors.base import Channel

MAX_LINE = 1024 * 1024
"""A plain output line longer than this is cut into pieces, so binary garbage cannot exhaust memory."""
MAX_SIDE_LINE = 16 * 1024 * 1024
"""A side-channel line is kept whole up to this many bytes (the caller's own bound must not exceed it)."""
READ_LIMIT = MAX_SIDE_LINE + 64
"""An event line is kept whole up to this (room for a marker and a pod log's timestamp)."""


def classify(channel: Channel, line: bytes, marker: bytes = b"") -> tuple[Channel, bytes]:
    """An stdout line that starts with ``marker`` becomes a side-channel line without it."""
    if marker and channel == "stdout" and line.startswith(marker):
        return "event", line[len(marker):]
    return channel, line


class LineSplitter:
    """Feed chunks of bytes, get complete lines (without the newline); :meth:`flush` the rest.

    An event line (every line of a side-channel file, ``events=True``; on a stream, a line that
    starts with ``marker``, after the timestamp and a space when ``stamped``) is delivered whole up to
    :data:`READ_LIMIT` bytes, never cut. A longer one is delivered as its first ``READ_LIMIT + 1``
    bytes (the decoder then rejects it as too long, so the run counts it as dropped) and its rest is
    skipped, which bounds memory. Any other line is cut into pieces of :data:`MAX_LINE` bytes.
    """

    def __init__(self, *, events: bool = False, stamped: bool = False, marker: bytes = b"") -> None:
        self._marker = marker
        """Prefix of a side-channel line on a stream (empty: none is)."""
        self._parts: list[bytes] = []
        self._size = 0
        self._events = events
        self._stamped = stamped
        self._event_line: bool | None = None
        """Whether the line held is an event line: None until it passes MAX_LINE, then decided once
        (the rest of a cut plain line is never taken for an event line)."""
        self._skipping = False
        """Inside the overlong rest of an event line already delivered."""

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        *complete, tail = chunk.split(b"\n")
        for piece in complete:
            if self._skipping:
                self._skipping = False
                continue
            if self._parts:
                self._parts.append(piece)
                piece = b"".join(self._parts)
                event_line = self._event_line
                self._parts, self._size, self._event_line = [], 0, None
                if event_line is False:  # the end of a plain line already cut
                    out.extend(_pieces(piece))
                    continue
            self._deliver(piece, out)
        if tail and not self._skipping:
            self._parts.append(tail)
            self._size += len(tail)
            if self._size > MAX_LINE:
                self._overflow(out)
        return out

    def flush(self) -> list[bytes]:
        out: list[bytes] = []
        rest, plain = b"".join(self._parts), self._event_line is False
        self._parts, self._size, self._event_line, self._skipping = [], 0, None, False
        if plain:
            out.extend(_pieces(rest))
        elif rest:
            self._deliver(rest, out)
        return out

    def _is_event(self, head: bytes) -> bool:
        if self._events:
            return True
        if self._stamped:
            head = head[:64].partition(b" ")[2]
        return bool(self._marker) and head.startswith(self._marker)

    def _deliver(self, line: bytes, out: list[bytes]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) <= MAX_LINE:
            if not self._events and self._marker and self._marker in line:
                self._split_marked(line, out)
            else:
                out.append(line)
        elif self._is_event(line):
            out.append(line[:READ_LIMIT + 1])
        else:
            out.extend(_pieces(line))

    def _split_marked(self, line: bytes, out: list[bytes]) -> None:
        """A marked event line written after a partial line of output (``print(x, end="")`` then an
        event) carries the marker mid-line: deliver the output and the event line apart (a pod log's
        timestamp in front of both)."""
        stamp = b""
        body = line
        if self._stamped:
            head, space, rest = line.partition(b" ")
            if space and len(head) < 64:
                stamp, body = head + b" ", rest
        at = -1 if body.startswith(self._marker) else body.find(self._marker)
        if at < 0:
            out.append(line)
            return
        out.append(stamp + body[:at])
        out.append(stamp + body[at:])

    def _overflow(self, out: list[bytes]) -> None:
        """The line held has passed MAX_LINE: cut a plain line, keep an event line up to READ_LIMIT."""
        if not self._event_line:
            data = b"".join(self._parts)
            if self._event_line is False or not self._is_event(data):
                self._event_line = False
                cut = len(data) - len(data) % MAX_LINE
                out.extend(_pieces(data[:cut]))
                self._parts, self._size = [data[cut:]], len(data) - cut
                return
            self._event_line = True
            self._parts = [data]
        if self._size > READ_LIMIT:
            out.append(b"".join(self._parts)[:READ_LIMIT + 1])
            self._parts, self._size, self._event_line, self._skipping = [], 0, None, True


def _pieces(line: bytes) -> list[bytes]:
    """A plain line cut into pieces of MAX_LINE bytes (a trailing carriage return dropped)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    return [line[start:start + MAX_LINE] for start in range(0, len(line), MAX_LINE)]


def tail_file(path: Path, finished: threading.Event, poll: float = 0.05,
              start: int = 0) -> Iterator[bytes]:
    """Yield complete lines appended to ``path`` until ``finished`` is set, then the rest.

    The file may not exist yet; a partial last line is held back until its newline arrives (or, once
    finished, yielded as it is). Between polls it waits on ``finished``, so the end of the job is
    noticed at once rather than up to ``poll`` seconds later.
    """
    splitter = LineSplitter(events=True)
    handle = None
    try:
        while True:
            done = finished.is_set()
            if handle is None:
                try:
                    handle = path.open("rb")
                    handle.seek(start)
                except FileNotFoundError:
                    if done:
                        return
                    finished.wait(poll)
                    continue
            chunk = handle.read(1 << 16)
            if chunk:
                yield from splitter.feed(chunk)
                continue
            if done:
                yield from splitter.flush()
                return
            finished.wait(poll)
    finally:
        if handle is not None:
            handle.close()


_END = object()


class StreamLost(Exception):
    """Raised by :meth:`LineMerger.lines` after the last line when a producer died on the way: the
    lines it had not read yet are missing (the caller records that, never a complete record)."""

    def __init__(self, lost: list[tuple[str, BaseException]]) -> None:
        self.lost = lost
        super().__init__("; ".join(f"{name}: {type(exc).__name__}: {exc}"[:300] for name, exc in lost))


class LineMerger:
    """Several producer threads put lines; one consumer iterates them in arrival order.

    ``lines()`` ends when every producer has finished. A producer that raises ends too: after the
    other producers' lines, ``lines()`` raises :class:`StreamLost` naming it, rather than end as if
    everything had been read.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=10000)
        self._producers = 0
        self.errors: list[tuple[str, BaseException]] = []

    def add(self, name: str, produce: Callable[[Callable[[Channel, bytes], None]], None]) -> None:
        """Start ``produce(emit)`` in a daemon thread."""
        self._producers += 1

        def run() -> None:
            try:
                produce(self.emit)
            except BaseException as exc:  # kept for the consumer
                self.errors.append((name, exc))
            finally:
                self._queue.put(_END)

        threading.Thread(target=run, name=f"workbench-{name}", daemon=True).start()

    def emit(self, channel: Channel, line: bytes) -> None:
        self._queue.put((channel, line))

    def lines(self) -> Iterator[tuple[Channel, bytes]]:
        remaining = self._producers
        while remaining:
            item = self._queue.get()
            if item is _END:
                remaining -= 1
                continue
            yield item  # type: ignore[misc]
        if self.errors:
            raise StreamLost(list(self.errors))
