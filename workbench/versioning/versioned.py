"""A project together with its versioning service: what run orchestration and executors work on.

Tracking and the executors need the project's folders, config and database, and its snapshots
(checkout, ignore rules, hashing and pinning of outputs). :class:`VersionedProject` carries exactly
those two collaborators, so they never reach for the Workspace facade above them. The Workspace
builds one from its own Project and ``ws.versions``; a detached process (re-attach, a script's own
run) opens one with :meth:`VersionedProject.open`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workbench.project import Project, ProjectView

if TYPE_CHECKING:
    from workbench.versioning.service import VersioningService


@dataclass(frozen=True)
class JobTarget:
    """A remote a container job reads its inputs from and pushes its outputs to (no credentials)."""

    name: str
    url: str
    endpoint_url: str
    region: str


class JobRemote(Protocol):
    """What the project's remotes offer container jobs (the Workspace wires ``ws.remote`` in, so the
    executors below the remote package reach it through this interface only)."""

    def default_target(self, schemes: tuple[str, ...]) -> JobTarget | None:
        """The default remote when its scheme is one of ``schemes``, else None."""
        ...

    def push_for_job(self, target: JobTarget, snapshot: str) -> str:
        """Send the objects of ``snapshot`` the remote lacks; returns the snapshot's root tree."""
        ...

    def job_outputs(self, target: JobTarget, run_id: str, dest: Path) -> list[str] | None:
        """The files the job pushed, fetched (verified) into ``dest``; None when it listed none."""
        ...

    def job_credentials(self, target: JobTarget) -> dict[str, str]:
        """The standard AWS variables for a job reaching ``target``, read now, never stored."""
        ...


@dataclass(frozen=True)
class VersionedProject(ProjectView):
    """A :class:`Project` and its :class:`VersioningService`, with the project's pieces at hand;
    ``job_remote``: the remotes as container jobs use them (None outside a Workspace)."""

    project: Project
    versions: VersioningService
    job_remote: JobRemote | None = None
    on_model_registered: Callable[[Any, Callable[[str], None] | None], None] | None = None
    """Called with each new model version (and a note callback) so monitoring fixes its reference
    profile; wired by the Workspace, since tracking sits below the monitor package."""

    @classmethod
    def open(cls, start: Path | None = None) -> VersionedProject:
        """Open the project containing ``start`` with a plain versioning service (no remotes)."""
        from workbench.versioning.service import VersioningService

        project = Project.open(start)
        return cls(project, VersioningService(project, clock=project.clock))


__all__ = ["JobRemote", "JobTarget", "VersionedProject"]
