"""The values the versioning service hands out (plain dataclasses, JSON-friendly via ``to_dict``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

SNAPSHOT_KINDS = ("manual", "auto", "run-before", "run-after", "safety")


def display_path(path: str) -> str:
    """A path safe to print or put in JSON: undecodable bytes shown as ``\\xNN``."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class FileEntry:
    """One file or symlink of a snapshot. ``hash`` is the BLAKE3 of the content ("" for links)."""

    path: str
    hash: str
    size: int
    mode: int
    kind: str = "file"
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = display_path(self.path)
        if self.target is not None:
            data["target"] = display_path(self.target)
        return data


@dataclass(frozen=True)
class Change:
    """One difference: ``change`` is added | modified | deleted; sizes are 0 where absent."""

    path: str
    change: str
    size: int
    old_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": display_path(self.path), "change": self.change, "size": self.size,
                "old_size": self.old_size}


@dataclass
class SnapshotInfo:
    """A snapshot row. ``created`` is False when an unchanged tree reused the latest snapshot."""

    id: str
    root_tree: str
    parent: str | None
    created_at: float
    kind: str
    message: str
    files: int
    bytes: int
    new_bytes: int
    changed_paths: list[str] = field(default_factory=list)
    created: bool = True
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Paths left out or kept at their previous version, with the reason (FIFO, vanished...)."""

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


@dataclass
class RestoreResult:
    """What ``restore`` (or ``checkout``) did."""

    snapshot: str
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    safety_snapshot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "written": [display_path(p) for p in self.written],
                "deleted": [display_path(p) for p in self.deleted], "unchanged": self.unchanged,
                "safety_snapshot": self.safety_snapshot}


@dataclass(frozen=True)
class Problem:
    """A missing or corrupt object, with where a snapshot uses it."""

    hash: str
    problem: str
    path: str
    snapshot: str

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "problem": self.problem, "path": display_path(self.path),
                "snapshot": self.snapshot}


@dataclass
class FsckReport:
    snapshots: int = 0
    objects: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "snapshots": self.snapshots, "objects": self.objects,
                "bytes": self.bytes, "problems": [p.to_dict() for p in self.problems]}


@dataclass
class GcReport:
    kept: int = 0
    deleted: int = 0
    freed_bytes: int = 0
    temp_removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
