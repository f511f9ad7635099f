"""Results of the less frequent store operations (files, restore, fsck, gc): plain dataclasses.

Kept apart from :mod:`models` so that ``workbench status`` never imports :mod:`dataclasses`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.versioning.models import display_path


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
    remote: str = ""
    """A remote known (from local bookkeeping) to hold the object, or ''."""

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "problem": self.problem, "path": display_path(self.path),
                "snapshot": self.snapshot, "remote": self.remote or None}


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
