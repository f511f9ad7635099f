"""One lock for everything a job writes to its stdout when events share it (``@stdout``).

A cluster pod's only channel back is its log, so events go out as marked lines on stdout, written by
the API's flusher thread while the script prints. A buffered writer keeps its own structures safe
across threads but not the order of the bytes of two large writes: a 4 MiB print and a flush of
event lines interleaved in pieces, and the reader saw event lines cut and glued together (under
load, in the burst test). Every Python-level write to ``sys.stdout`` (text or ``.buffer``) and every
event flush therefore takes :data:`STDOUT_LOCK`, so each one reaches the pipe whole. Writes by child
processes that inherit the descriptor are outside any lock; they are not event lines.

``print(x)`` is two writes (``x``, then the newline): event lines wait (briefly, up to
:data:`LINE_WAIT` seconds) until the script's output is at the start of a line, so they are not glued
to the end of a printed line. After that wait they go out anyway, after a line break of their own
(the printed line is split in two rather than an event line lost).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

STDOUT_LOCK = threading.RLock()
LINE_WAIT = 1.0
_state = {"open": False}
"""``open``: the script's last write to stdout did not end a line."""


def _track(data: Any) -> None:
    try:
        if len(data):
            _state["open"] = data[-1:] not in ("\n", b"\n")
    except TypeError:  # not a sized string or buffer: the stream's own write will say so
        pass


class LockedStream:
    """``stream`` with ``write``, ``writelines`` and ``flush`` taken under :data:`STDOUT_LOCK`;
    everything else (``fileno``, ``isatty``, ``encoding``...) is the stream's own."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._buffer: LockedStream | None = None

    def write(self, data: Any) -> Any:
        with STDOUT_LOCK:
            _track(data)
            return self._stream.write(data)

    def writelines(self, lines: Any) -> None:
        with STDOUT_LOCK:
            lines = list(lines)
            for line in lines:
                _track(line)
            self._stream.writelines(lines)

    def flush(self) -> None:
        with STDOUT_LOCK:
            self._stream.flush()

    @property
    def buffer(self) -> LockedStream:
        if self._buffer is None:
            self._buffer = LockedStream(self._stream.buffer)
        return self._buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_INSTALLED: list[LockedStream] = []
"""Every stream :func:`lock_stdout` installed, for the life of the process: a script that later
replaces ``sys.stdout`` must not free it under another thread's ``print`` (Python 3.11's ``print``
holds the stream it found without a reference of its own; see ``ownrun._TEES_KEPT_ALIVE``)."""


def lock_stdout() -> None:
    """Route ``sys.stdout`` through the lock (once; a stream replaced later by the script is its own)."""
    if sys.stdout is not None and not isinstance(sys.stdout, LockedStream):
        sys.stdout = LockedStream(sys.stdout)
        _INSTALLED.append(sys.stdout)


def write_marked(data: bytes) -> None:
    """Write whole event lines to the real stdout after any text the script has buffered."""
    out = sys.__stdout__
    if out is None:
        return
    deadline = time.monotonic() + LINE_WAIT
    while True:
        with STDOUT_LOCK:
            if not _state["open"] or time.monotonic() >= deadline:
                out.flush()
                # Still inside a printed line: end it first. The script's output gains a line break,
                # but the events start a line of their own and no reader can lose them (a marker
                # glued to the end of a line over MAX_LINE would be cut off with it).
                out.buffer.write(b"\n" + data if _state["open"] else data)
                out.buffer.flush()
                _state["open"] = False
                return
        time.sleep(0.001)  # the rest of a printed line (print writes its newline separately)
