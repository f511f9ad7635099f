"""Which file-system events may trigger a snapshot: the store's ignore rules, ``.workbench/`` never.

Turns watchdog events into project-relative posix paths, drops what the store would not version
(its ignore rules: ``.workbenchignore`` plus the defaults), and notices edits to ``.workbenchignore``
itself so the watcher can reload the rules and rescan.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from workbench.paths import IGNORE_FILENAME, STORE_DIRNAME

# Only these reach us; opens, reads and directory-mtime changes are filtered in the kernel's mask.
EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, FileDeletedEvent, DirDeletedEvent,
    FileMovedEvent, DirMovedEvent, FileClosedEvent,
]

Matcher = Callable[[str], bool]


class EventFilter:
    """Maps watchdog events to the relative paths worth a snapshot."""

    def __init__(self, root: Path, load_matcher: Callable[[], Matcher],
                 extra_excluded: tuple[Path, ...] = ()) -> None:
        self.root = str(root)
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self._load_matcher = load_matcher
        self._lock = threading.Lock()
        self._rules = self._rules_bytes()
        self._matcher: Matcher = load_matcher()
        excluded = [STORE_DIRNAME]
        for folder in extra_excluded:
            try:
                rel = folder.resolve().relative_to(root)
            except ValueError:
                continue  # outside the project: never watched anyway
            if rel.parts:
                excluded.append(rel.as_posix())
        self._excluded = tuple(excluded)

    def rules_changed(self) -> bool:
        """Whether ``.workbenchignore`` holds other rules than those loaded (one write can raise
        several events, and a touch changes nothing): only then is there anything to rescan."""
        rules = self._rules_bytes()
        return rules is None or rules != self._rules

    def reload(self) -> None:
        """Re-read the ignore rules (after ``.workbenchignore`` changed). The file is read before the
        rules are built from it, so a change in between counts as a change at the next event."""
        rules = self._rules_bytes()
        matcher = self._load_matcher()
        with self._lock:
            self._matcher = matcher
            self._rules = rules

    def _rules_bytes(self) -> bytes | None:
        """The ignore file's bytes (b"" when there is none), None when it cannot be read."""
        try:
            with open(os.path.join(self.root, IGNORE_FILENAME), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return b""
        except OSError:
            return None

    def relative(self, path: str | bytes) -> str | None:
        """``path`` relative to the root as posix, or None if it is the root or outside it."""
        text = os.fsdecode(path)
        if not text.startswith(self._prefix):
            return None
        rel = text[len(self._prefix):]
        if os.sep != "/":
            rel = rel.replace(os.sep, "/")
        return rel or None

    def excluded(self, rel: str, is_dir: bool = False) -> bool:
        """True if a change to ``rel`` must not trigger a snapshot."""
        for folder in self._excluded:
            if rel == folder or rel.startswith(folder + "/"):
                return True
        with self._lock:
            matcher = self._matcher
        if matcher(rel):
            return True
        return is_dir and matcher(rel + "/")

    def paths(self, event: FileSystemEvent) -> Iterator[str]:
        """The relative paths an event touches that are not excluded (a move gives both ends)."""
        ends = [event.src_path]
        if isinstance(event, FileMovedEvent | DirMovedEvent) and event.dest_path:
            ends.append(event.dest_path)
        for end in ends:
            rel = self.relative(end)
            if rel is not None and not self.excluded(rel, event.is_directory):
                yield rel

    @staticmethod
    def is_ignore_file(rel: str) -> bool:
        return rel == IGNORE_FILENAME
