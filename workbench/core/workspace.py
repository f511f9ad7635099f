"""The Workspace: one facade per project, the only door the CLI and the TUI use.

It sits on top: it opens a :class:`~workbench.project.Project` (paths, config, per-thread database
connections, cache folder, clock) and builds each domain service on first use (``ws.versions``,
``ws.runs`` ...), handing it only the collaborators it needs, so that a command pays only for what
it touches and nothing below this module imports it (tests/import_rules.py enforces that).
No Textual, Rich or printing here: progress goes through callables passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.clock import SYSTEM_CLOCK, Clock, IdSource
from workbench.project import Project, ProjectView

if TYPE_CHECKING:
    from workbench.deploy.service import DeployService
    from workbench.executors.service import ExecutorService
    from workbench.importers.service import ImportService
    from workbench.monitor.predictions import PredictionService
    from workbench.monitor.service import MonitorService
    from workbench.remote.service import RemoteService
    from workbench.tracking.registry import ModelVersion
    from workbench.tracking.service import TrackingService
    from workbench.versioning.service import Salt, VersioningService
    from workbench.versioning.versioned import JobTarget, VersionedProject
    from workbench.workflows.service import WorkflowService


class Workspace(ProjectView):
    """An open project and its domain services."""

    def __init__(self, root: Path | Project, *, clock: Clock = SYSTEM_CLOCK, run_ids: IdSource | None = None,
                 snapshot_salt: Salt | None = None) -> None:
        """``root``: the project folder, or a Project already open. ``clock``, ``run_ids`` and
        ``snapshot_salt`` (default: the system clock, random ids) are handed to the services that
        stamp and name what they record; the demo passes fixed ones."""
        self.project = root if isinstance(root, Project) else Project(root, clock=clock)
        self._run_ids = run_ids
        self._snapshot_salt = snapshot_salt

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, start: Path | None = None) -> Workspace:
        """Open the project that contains ``start`` (default: the current directory)."""
        return cls(Project.open(start))

    @classmethod
    def init(cls, root: Path) -> tuple[Workspace, bool]:
        """Make ``root`` a project (idempotent). Returns the workspace and whether it was new."""
        project, created = Project.create(root)
        return cls(project), created

    def ensure_schema(self) -> None:
        self.project.ensure_schema()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the project's pieces (root, paths, clock, config, cache_dir, db, atomic(), close()) ---------
    def save_config(self) -> None:
        self.project.save_config()

    # -- domain services, built on first use ---------------------------------------------------
    @cached_property
    def versions(self) -> VersioningService:
        from workbench.versioning.service import VersioningService

        if self._snapshot_salt is None:
            service = VersioningService(self.project, clock=self.clock)
        else:
            service = VersioningService(self.project, clock=self.clock, salt=self._snapshot_salt)
        service.fetch_missing = self._fetch_from_remotes
        service.remote_holder = lambda digest, snapshot: self.remote.holder(digest, snapshot)
        return service

    def _fetch_from_remotes(self, digest: str) -> bool:
        """An object missing from the cache (a ``pull --metadata-only`` left it on the remote): fetch it."""
        return self.remote.fetch_object(digest)

    @property
    def job_remote(self) -> RemoteService:
        """The remotes as container jobs use them (what :class:`VersionedProject` carries), so a
        Workspace can stand where the executors expect a VersionedProject."""
        return self.remote

    @cached_property
    def versioned(self) -> VersionedProject:
        """The project with its versioning service: what run orchestration and executors work on."""
        from workbench.versioning.versioned import VersionedProject

        return VersionedProject(self.project, self.versions, job_remote=_JobRemoteOnUse(self),
                                on_model_registered=self.model_registered)

    @cached_property
    def runs(self) -> TrackingService:
        from workbench.tracking.service import TrackingService

        if self._run_ids is None:
            return TrackingService(self.project, versions=self.versions, executors=self.executors)
        return TrackingService(self.project, versions=self.versions, executors=self.executors,
                               new_id=self._run_ids)

    @cached_property
    def imports(self) -> ImportService:
        from workbench.importers.service import ImportService

        return ImportService(self.runs)

    @cached_property
    def executors(self) -> ExecutorService:
        from workbench.executors.service import ExecutorService

        return ExecutorService(self.versioned)

    @cached_property
    def deployments(self) -> DeployService:
        from workbench.deploy.service import DeployService

        return DeployService(self.project, runs=self.runs, versions=self.versions, remote=self.remote,
                             signature_of=self._model_signature)

    def _model_signature(self, model: str, version: str) -> dict[str, Any] | None:
        """A model version's input signature from its reference profile (None without one)."""
        try:
            profile = self.monitor.profile(model, int(version))
        except ValueError:
            return None
        return profile.signature if profile is not None and profile.features else None

    @cached_property
    def predictions(self) -> PredictionService:
        from workbench.monitor.predictions import PredictionService

        return PredictionService(self)

    @cached_property
    def workflows(self) -> WorkflowService:
        from workbench.workflows.service import WorkflowService

        return WorkflowService(self.project, runs=self.runs, versions=self.versions)

    def has_default_remote(self) -> bool:
        """Whether a default remote is set: one query, without importing the remote service (which
        ``workbench status`` would otherwise pay for on every call of a project without remotes)."""
        row = self.project.db.execute("SELECT 1 FROM remotes WHERE is_default LIMIT 1").fetchone()
        return row is not None

    @cached_property
    def remote(self) -> RemoteService:
        from workbench.remote.service import RemoteService

        return RemoteService(self.project, versions=self.versions)

    @cached_property
    def monitor(self) -> MonitorService:
        from workbench.monitor.service import MonitorService

        return MonitorService(self.project, versions=self.versions, ingest=self.predictions.ingest)

    def model_registered(self, version: ModelVersion, note: Callable[[str], None] | None = None) -> None:
        """A new model version was registered: fix its reference profile (monitoring) now."""
        self.monitor.profile_registered(version, note)


class _JobRemoteOnUse:
    """``ws.remote`` for container jobs, built on first use: a local ``workbench run`` never asks for
    it, and importing the remote service (transports, configparser) cost it ~10 ms of start-up."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def default_target(self, schemes: tuple[str, ...]) -> JobTarget | None:
        return self._ws.remote.default_target(schemes)

    def push_for_job(self, target: JobTarget, snapshot: str) -> str:
        return self._ws.remote.push_for_job(target, snapshot)

    def job_outputs(self, target: JobTarget, run_id: str, dest: Path) -> list[str] | None:
        return self._ws.remote.job_outputs(target, run_id, dest)

    def job_credentials(self, target: JobTarget) -> dict[str, str]:
        return self._ws.remote.job_credentials(target)
