"""The values the versioning service hands out on its hot paths (snapshot, status, log, diff).

Plain classes with ``__slots__``, not dataclasses: ``workbench status`` must start in tens of
milliseconds and ``dataclasses`` (with ``inspect``) costs several on its own. JSON via ``to_dict``.
The rarer results (``FileEntry``, ``RestoreResult``, ``FsckReport``...) live in :mod:`reports`
and are still importable from here.
"""

from __future__ import annotations

import os
from typing import Any

SNAPSHOT_KINDS = ("manual", "auto", "run-before", "run-after", "safety")
_REPORTS = ("FileEntry", "RestoreResult", "Problem", "FsckReport", "GcReport")
__all__ = ["SNAPSHOT_KINDS", "Change", "SnapshotInfo", "display_path", *_REPORTS]


def __getattr__(name: str) -> Any:
    if name in _REPORTS:
        from workbench.versioning import reports

        return getattr(reports, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def display_path(path: str) -> str:
    """A path safe to print or put in JSON: undecodable bytes shown as ``\\xNN``."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", errors="backslashreplace")


class Change:
    """One difference: ``change`` is added | modified | deleted; sizes are 0 where absent."""

    __slots__ = ("change", "old_size", "path", "size")

    def __init__(self, path: str, change: str, size: int, old_size: int) -> None:
        self.path = path
        self.change = change
        self.size = size
        self.old_size = old_size

    def _key(self) -> tuple[str, str, int, int]:
        return (self.path, self.change, self.size, self.old_size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Change) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Change(path={self.path!r}, change={self.change!r}, size={self.size}, "
                f"old_size={self.old_size})")

    def to_dict(self) -> dict[str, Any]:
        return {"path": display_path(self.path), "change": self.change, "size": self.size,
                "old_size": self.old_size}


class SnapshotInfo:
    """A snapshot row. ``created`` is False when an unchanged tree reused the latest snapshot.

    ``skipped``: paths left out or kept at their previous version, with the reason (FIFO, vanished...).
    """

    __slots__ = (
        "bytes",
        "changed_paths",
        "created",
        "created_at",
        "files",
        "id",
        "kind",
        "message",
        "new_bytes",
        "parent",
        "root_tree",
        "skipped",
    )

    def __init__(self, id: str, root_tree: str, parent: str | None, created_at: float, kind: str,
                 message: str, files: int, bytes: int, new_bytes: int,
                 changed_paths: list[str] | None = None, created: bool = True,
                 skipped: list[tuple[str, str]] | None = None) -> None:
        self.id = id
        self.root_tree = root_tree
        self.parent = parent
        self.created_at = created_at
        self.kind = kind
        self.message = message
        self.files = files
        self.bytes = bytes
        self.new_bytes = new_bytes
        self.changed_paths: list[str] = [] if changed_paths is None else changed_paths
        self.created = created
        self.skipped: list[tuple[str, str]] = [] if skipped is None else skipped

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SnapshotInfo) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return f"SnapshotInfo(id={self.id!r}, kind={self.kind!r}, files={self.files}, created={self.created})"

    @property
    def short_id(self) -> str:
        return self.id[:10]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "short_id": self.short_id, "root_tree": self.root_tree,
            "parent": self.parent, "created_at": self.created_at, "kind": self.kind,
            "message": self.message, "files": self.files, "bytes": self.bytes,
            "new_bytes": self.new_bytes, "created": self.created,
            "changed_paths": [display_path(p) for p in self.changed_paths],
            "skipped": [{"path": display_path(p), "reason": r} for p, r in self.skipped],
        }
