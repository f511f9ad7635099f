"""The few things workflows need from the rest of Workbench, in one adapter.

Stages and sweep members run through the tracking service's ``execute`` (an ordinary recorded run),
outputs go into and come back out of the blob store through the versioning service; the Workspace
hands both in. Keeping those calls here keeps
:mod:`.repro` and :mod:`.sweep_runner` free of the other packages' details.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UnsafePathError

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.tracking.request import RunRequest
    from workbench.tracking.service import TrackingService
    from workbench.versioning.service import VersioningService

LineCallback = Callable[[str, str], None]
"""(stream, text) for each line a run prints."""


@dataclass
class RunOutcome:
    """How one recorded run ended."""

    run_id: str
    status: str  # succeeded | failed | cancelled | lost
    exit_code: int | None = None
    reason: str = ""


def _attr(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


class ServiceBackend:
    """Runs and blobs of one project, through its tracking and versioning services."""

    def __init__(self, project: Project, *, runs: TrackingService, versions: VersioningService) -> None:
        self.project = project
        self.runs = runs
        self.versions = versions
        self.root = project.root

    # -- runs ----------------------------------------------------------------------------------
    def execute(self, request: RunRequest, *, cancel_event: threading.Event | None = None,
                on_line: LineCallback | None = None) -> RunOutcome:
        """Run ``request`` as an ordinary recorded run; ``on_line(stream, text)`` gets its output."""
        relay = None
        if on_line is not None:
            callback = on_line

            def relay(channel: str, data: bytes) -> None:
                if channel != "event":
                    callback(channel, data.decode("utf-8", "replace").rstrip("\r\n"))

        info = self.runs.execute(request, on_line=relay, cancel_event=cancel_event)
        return RunOutcome(run_id=str(_attr(info, "id", "run_id")), status=str(_attr(info, "status")),
                          exit_code=_attr(info, "exit_code"), reason=str(_attr(info, "reason", default="")
                                                                       or ""))

    def isolation_snapshot(self, executor: str | None) -> str | None:
        """One input snapshot for the isolated members of a parallel sweep on the local executor
        (remote executors stage each run's own); None elsewhere or without versioning."""
        if (executor or self.project.config.executor.default or "local") != "local":
            return None
        from workbench.tracking.finalize import snapshot_or_none

        return snapshot_or_none(self.runs.versioned, "run-before", "before a parallel sweep")

    def log_tail(self, run_id: str, lines: int = 20) -> list[str]:
        tail: deque[str] = deque(maxlen=lines)
        for item in self.runs.log_lines(run_id):
            text = _attr(item, "text", "line", default=str(item))
            tail.append(str(text).rstrip("\n"))
        return list(tail)

    def files_read(self, run_id: str) -> list[str]:
        """Project paths the run was seen reading (file-access capture)."""
        out: list[str] = []
        runs: Any = self.runs
        for item in runs.inputs(run_id):
            path = _attr(item, "path", default=None)
            source = _attr(item, "source", default="audit")
            if path and source in ("audit", "api"):
                out.append(str(path))
        return out

    def run_status(self, run_id: str) -> str:
        return str(_attr(self.runs.get(run_id), "status", default="unknown"))

    # -- blobs ---------------------------------------------------------------------------------
    def hash_file(self, path: Path) -> str:
        return str(self.versions.hash_file(path))

    def store_file(self, path: Path) -> str:
        """Put a file into the blob store; returns its content hash."""
        return str(self.versions.put_file(path))

    def restore_file(self, digest: str, rel: str) -> None:
        """Write stored object ``digest`` at project path ``rel`` (never outside the project)."""
        dest = safe_destination(self.root, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.is_dir():
            remove_path(dest)
        self.versions.export_object(digest, dest)  # temp file beside it, verified, renamed

def safe_destination(root: Path, rel: str) -> Path:
    """``root/rel``, refusing a path whose existing parents lead out of the project through links."""
    root = root.resolve()
    dest = root / rel
    parent = dest.parent
    existing = parent
    while not existing.exists() and existing != root:
        existing = existing.parent
    if not existing.resolve().is_relative_to(root):
        raise UnsafePathError(f"refusing to write '{rel}': its folder leads outside the project",
                              "remove the symlink")
    return dest


def remove_path(path: Path) -> None:
    """Delete a file, link or folder tree (links are removed, never followed)."""
    import shutil

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
