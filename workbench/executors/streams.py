"""Plumbing shared by the remote executors: split byte streams into lines, tell event lines from
ordinary output, tail an events file, and merge several producer threads into one ``lines()``.

A job's event lines reach the orchestrator either from an events file (Docker, where the run folder
is mounted) or marked on stdout with :data:`EVENT_MARKER` (a cluster pod, whose log is the only
channel back). Both arrive as ``("event", payload)`` with the marker stripped.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from workbench.executors.base import Channel
from workbench.tracking.events import MARKER_BYTES, EventError, decode
from workbench.versioning.safe_write import PROTECTED_DIRS

EVENT_MARKER = MARKER_BYTES
"""Prefix of an event line on stdout (see workbench.tracking.events)."""

MAX_LINE = 1024 * 1024
"""A line longer than this is cut into pieces, so binary garbage cannot exhaust memory."""


def classify(channel: Channel, line: bytes, workspace: str = "") -> tuple[Channel, bytes]:
    """An stdout line that carries the event marker becomes an event line without it."""
    if channel == "stdout" and line.startswith(EVENT_MARKER):
        payload = line[len(EVENT_MARKER):]
        return "event", relativise(payload, workspace) if workspace else payload
    return channel, line


def relativise(payload: bytes, workspace: str) -> bytes:
    """Confine an event line of a remote job to that job's workspace.

    A ``path`` under ``workspace`` (the job's ``/workspace``) is made relative; a relative path is
    taken as relative to it. A path that is absolute elsewhere, holds ``..`` or NUL, names the
    workspace itself, or lies inside ``.workbench/`` or ``.git/`` is never passed on: the line becomes
    ``{"e":"refused","kind":...,"path":...,"reason":...}``, which the ingester records on the run
    (docs/security.md). The line is parsed exactly as the ingester parses it
    (:func:`workbench.tracking.events.decode`), so no spelling (escaped keys, duplicate keys, a second
    marker) gets a path past this check. Lines without a path are returned unchanged.
    """
    if b"path" not in payload and b"\\" not in payload:
        return payload  # a "path" key cannot be spelt without these bytes
    try:
        event = decode(payload)
    except EventError:
        return payload  # the ingester notes it as malformed
    if "path" not in event:
        return payload
    path = event["path"]
    if not isinstance(path, str):
        return _encode(event)  # the ingester refuses a non-string path itself
    rel, reason = confine_path(path, workspace)
    if reason:
        return _encode({"e": "refused", "kind": str(event.get("e"))[:40], "path": path[:1000],
                        "reason": reason})
    event["path"] = rel
    return _encode(event)


def confine_path(path: str, workspace: str) -> tuple[str, str]:
    """``(relative path, "")`` for a path inside the job's workspace, else ``("", reason)``."""
    prefix = workspace.rstrip("/") + "/"
    if "\x00" in path:
        return "", "the path holds a NUL byte"
    if path.startswith("/"):
        if path.rstrip("/") == prefix[:-1]:
            return "", "names the workspace itself, not a file"
        if not path.startswith(prefix):
            return "", f"outside the job's workspace ({workspace})"
        path = path[len(prefix):]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "", "'..' is not allowed in a job's paths"
    if not parts:
        return "", "names the workspace itself, not a file"
    for part in parts:
        if part.casefold() in PROTECTED_DIRS:
            return "", f"inside {part}/ (a job may not name files there)"
    return "/".join(parts), ""


def _encode(event: dict[str, object]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=True).encode()


class LineSplitter:
    """Feed chunks of bytes, get complete lines (without the newline); :meth:`flush` the rest."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()
        while len(self._buffer) > MAX_LINE:
            lines.append(self._buffer[:MAX_LINE])
            self._buffer = self._buffer[MAX_LINE:]
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]

    def flush(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return [rest] if rest else []


def tail_file(path: Path, finished: threading.Event, poll: float = 0.05,
              start: int = 0) -> Iterator[bytes]:
    """Yield complete lines appended to ``path`` until ``finished`` is set, then the rest.

    The file may not exist yet; a partial last line is held back until its newline arrives (or, once
    finished, yielded as it is). Between polls it waits on ``finished``, so the end of the job is
    noticed at once rather than up to ``poll`` seconds later.
    """
    splitter = LineSplitter()
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


class LineMerger:
    """Several producer threads put lines; one consumer iterates them in arrival order.

    ``lines()`` ends when every producer has finished. A producer that raises ends too: its error is
    kept in :attr:`errors` rather than lost in a thread.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=10000)
        self._producers = 0
        self.errors: list[BaseException] = []

    def add(self, name: str, produce: Callable[[Callable[[Channel, bytes], None]], None]) -> None:
        """Start ``produce(emit)`` in a daemon thread."""
        self._producers += 1

        def run() -> None:
            try:
                produce(self.emit)
            except BaseException as exc:  # kept for the consumer
                self.errors.append(exc)
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
