"""The Workspace: one facade per project, the only door the CLI and the TUI use.

It owns the paths, the config and the database connections, and builds each domain service on
first use (``ws.versions``, ``ws.runs`` ...) so that a command pays only for what it touches.
No Textual, Rich or printing here: progress goes through callables passed in.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.clock import SYSTEM_CLOCK, Clock, IdSource
from workbench.errors import WorkbenchError
from workbench.paths import ProjectPaths, find_project_root
from workbench.store.db import ConnectionPool, atomic, database_error
from workbench.store.migrations import migrate

if TYPE_CHECKING:
    from workbench.config import ProjectConfig
    from workbench.deploy.service import DeployService
    from workbench.executors.service import ExecutorService
    from workbench.monitor.predictions import PredictionService
    from workbench.remote.service import RemoteService
    from workbench.tracking.service import TrackingService
    from workbench.versioning.service import Salt, VersioningService
    from workbench.workflows.service import WorkflowService


class Workspace:
    """An open project."""

    def __init__(self, root: Path, *, clock: Clock = SYSTEM_CLOCK, run_ids: IdSource | None = None,
                 snapshot_salt: Salt | None = None) -> None:
        """``clock``, ``run_ids`` and ``snapshot_salt`` (default: the system clock, random ids) are
        handed to the services that stamp and name what they record; the demo passes fixed ones."""
        self.root = root.resolve()
        self.clock = clock
        self._run_ids = run_ids
        self._snapshot_salt = snapshot_salt
        self.paths = ProjectPaths(self.root)
        self._pool = ConnectionPool(self.paths.db)
        self._migrated = False

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, start: Path | None = None) -> Workspace:
        """Open the project that contains ``start`` (default: the current directory)."""
        ws = cls(find_project_root(start))
        ws.ensure_schema()
        return ws

    @classmethod
    def init(cls, root: Path) -> tuple[Workspace, bool]:
        """Make ``root`` a project (idempotent). Returns the workspace and whether it was new."""
        root = root.resolve()
        if not root.is_dir():
            raise WorkbenchError(f"not a directory: {root}", "create it first or pass an existing folder")
        paths = ProjectPaths(root)
        created = not paths.store_dir.exists()
        for folder in (paths.store_dir, paths.tmp, paths.locks, paths.runs):
            folder.mkdir(parents=True, exist_ok=True)
        if not paths.config.exists():
            from workbench.config import ProjectConfig, save_config

            save_config(paths.config, ProjectConfig())
        gitignore = paths.gitignore
        if not gitignore.exists():
            gitignore.write_text("*\n", encoding="utf-8")
        ws = cls(root)
        ws.ensure_schema()
        return ws, created

    def ensure_schema(self) -> None:
        if not self._migrated:
            try:
                migrate(self.db)
            except sqlite3.Error as exc:  # a damaged file can pass the pragmas and fail here
                raise database_error(exc, self.paths.db) from exc
            self._migrated = True

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared pieces -------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the project database."""
        return self._pool.get()

    def atomic(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on this thread's connection: ``with ws.atomic() as db: ...``."""
        return atomic(self.db)

    @cached_property
    def config(self) -> ProjectConfig:
        # Imported on first use: tomllib and dataclasses cost start-up time that `status` need not pay.
        from workbench.config import load_config

        return load_config(self.paths.config)

    def save_config(self) -> None:
        from workbench.config import save_config

        save_config(self.paths.config, self.config)

    @property
    def cache_dir(self) -> Path:
        """The blob cache folder (may be shared between projects)."""
        import os

        configured = os.environ.get("WORKBENCH_CACHE_DIR") or self.config.store.cache_dir
        if configured:
            path = Path(configured).expanduser()
            return path if path.is_absolute() else (self.root / path)
        return self.paths.default_cache

    # -- domain services, built on first use ---------------------------------------------------
    @cached_property
    def versions(self) -> VersioningService:
        from workbench.versioning.service import VersioningService

        if self._snapshot_salt is None:
            service = VersioningService(self, clock=self.clock)
        else:
            service = VersioningService(self, clock=self.clock, salt=self._snapshot_salt)
        service.fetch_missing = self._fetch_from_remotes
        service.remote_holder = lambda digest, snapshot: self.remote.holder(digest, snapshot)
        return service

    def _fetch_from_remotes(self, digest: str) -> bool:
        """An object missing from the cache (a ``pull --metadata-only`` left it on the remote): fetch it."""
        return self.remote.fetch_object(digest)

    @cached_property
    def runs(self) -> TrackingService:
        from workbench.tracking.service import TrackingService

        if self._run_ids is None:
            return TrackingService(self, clock=self.clock)
        return TrackingService(self, clock=self.clock, new_id=self._run_ids)

    @cached_property
    def executors(self) -> ExecutorService:
        from workbench.executors.service import ExecutorService

        return ExecutorService(self)

    @cached_property
    def deployments(self) -> DeployService:
        from workbench.deploy.service import DeployService

        return DeployService(self)

    @cached_property
    def predictions(self) -> PredictionService:
        from workbench.monitor.predictions import PredictionService

        return PredictionService(self)

    @cached_property
    def workflows(self) -> WorkflowService:
        from workbench.workflows.service import WorkflowService

        return WorkflowService(self)

    @cached_property
    def remote(self) -> RemoteService:
        from workbench.remote.service import RemoteService

        return RemoteService(self)
