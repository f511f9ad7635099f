"""A project together with its versioning service: what run orchestration and executors work on.

Tracking and the executors need the project's folders, config and database, and its snapshots
(checkout, ignore rules, hashing and pinning of outputs). :class:`VersionedProject` carries exactly
those two collaborators, so they never reach for the Workspace facade above them. The Workspace
builds one from its own Project and ``ws.versions``; a detached process (re-attach, a script's own
run) opens one with :meth:`VersionedProject.open`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.project import Project, ProjectView

if TYPE_CHECKING:
    from workbench.versioning.service import VersioningService


@dataclass(frozen=True)
class VersionedProject(ProjectView):
    """A :class:`Project` and its :class:`VersioningService`, with the project's pieces at hand."""

    project: Project
    versions: VersioningService

    @classmethod
    def open(cls, start: Path | None = None) -> VersionedProject:
        """Open the project containing ``start`` with a plain versioning service (no remotes)."""
        from workbench.versioning.service import VersioningService

        project = Project.open(start)
        return cls(project, VersioningService(project, clock=project.clock))


__all__ = ["VersionedProject"]
