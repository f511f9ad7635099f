"""The Project: one open project folder, the ground floor every domain service stands on.

A :class:`Project` is the root folder, its ``.workbench/`` paths, the typed config, one SQLite
connection per thread (``db``, ``atomic()``), the blob cache folder and the clock that stamps
records. It knows nothing of snapshots, runs or deployments: the Workspace (workbench/core) builds
each domain service from a Project and the other services it needs, so that nothing below the
facade imports it. No Textual, Rich or printing here.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.clock import SYSTEM_CLOCK, Clock
from workbench.errors import WorkbenchError
from workbench.paths import ProjectPaths, find_project_root
from workbench.store.db import ConnectionPool, atomic, database_error
from workbench.store.migrations import migrate

if TYPE_CHECKING:
    from workbench.config import ProjectConfig


class Project:
    """An open project folder: paths, config, database connections, cache folder and clock."""

    def __init__(self, root: Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        """``clock`` stamps what the services record (default: the system clock)."""
        self.root = root.resolve()
        self.clock = clock
        self.paths = ProjectPaths(self.root)
        self._pool = ConnectionPool(self.paths.db)
        self._migrated = False

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, start: Path | None = None, *, clock: Clock = SYSTEM_CLOCK) -> Project:
        """Open the project that contains ``start`` (default: the current directory)."""
        project = cls(find_project_root(start), clock=clock)
        project.ensure_schema()
        return project

    @classmethod
    def create(cls, root: Path, *, clock: Clock = SYSTEM_CLOCK) -> tuple[Project, bool]:
        """Make ``root`` a project (idempotent). Returns the project and whether it was new."""
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
        project = cls(root, clock=clock)
        project.ensure_schema()
        return project, created

    def ensure_schema(self) -> None:
        """Apply the pending migrations once per Project (a damaged file: one-line WorkbenchError)."""
        if not self._migrated:
            try:
                migrate(self.db)
            except sqlite3.Error as exc:  # a damaged file can pass the pragmas and fail here
                raise database_error(exc, self.paths.db) from exc
            self._migrated = True

    def close(self) -> None:
        """Close this thread's connection and those of threads that have ended."""
        self._pool.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared pieces -------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the project database."""
        return self._pool.get()

    def atomic(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on this thread's connection: ``with project.atomic() as db: ...``."""
        return atomic(self.db)

    @cached_property
    def config(self) -> ProjectConfig:
        """The project's typed config (``.workbench/config.toml``), read on first use."""
        # Imported on first use: tomllib and dataclasses cost start-up time that `status` need not pay.
        from workbench.config import load_config

        return load_config(self.paths.config)

    def save_config(self) -> None:
        """Write :attr:`config` back to its file."""
        from workbench.config import save_config

        save_config(self.paths.config, self.config)

    @property
    def cache_dir(self) -> Path:
        """The blob cache folder (may be shared between projects)."""
        configured = os.environ.get("WORKBENCH_CACHE_DIR") or self.config.store.cache_dir
        if configured:
            path = Path(configured).expanduser()
            return path if path.is_absolute() else (self.root / path)
        return self.paths.default_cache


class ProjectView:
    """A Project's pieces at hand on an object built around one (``self.project``): the Workspace
    facade and :class:`~workbench.versioning.versioned.VersionedProject` both read as their project."""

    project: Project

    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def paths(self) -> ProjectPaths:
        return self.project.paths

    @property
    def clock(self) -> Clock:
        return self.project.clock

    @property
    def config(self) -> ProjectConfig:
        return self.project.config

    @property
    def cache_dir(self) -> Path:
        """The blob cache folder (may be shared between projects)."""
        return self.project.cache_dir

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the project database."""
        return self.project.db

    def atomic(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on this thread's connection: ``with ws.atomic() as db: ...``."""
        return self.project.atomic()

    def close(self) -> None:
        self.project.close()


__all__ = ["Project", "ProjectView"]
