"""Every path Workbench uses, in one place.

A project is a folder with ``.workbench/`` at its root. The blob cache lives in
``.workbench/cache`` unless the project config (or ``WORKBENCH_CACHE_DIR``) points it elsewhere,
so several projects can share one cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import NotAProjectError

STORE_DIRNAME = ".workbench"
DB_FILENAME = "workbench.db"
CONFIG_FILENAME = "config.toml"
IGNORE_FILENAME = ".workbenchignore"


class ProjectPaths:
    """The fixed layout of one project's ``.workbench/`` folder.

    A plain class rather than a dataclass: ``dataclasses`` costs milliseconds of start-up, and
    ``workbench status`` is meant to answer in tens of milliseconds.
    """

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProjectPaths) and self.root == other.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"ProjectPaths(root={self.root!r})"

    @property
    def store_dir(self) -> Path:
        return self.root / STORE_DIRNAME

    @property
    def db(self) -> Path:
        return self.store_dir / DB_FILENAME

    @property
    def config(self) -> Path:
        return self.store_dir / CONFIG_FILENAME

    @property
    def default_cache(self) -> Path:
        return self.store_dir / "cache"

    @property
    def tmp(self) -> Path:
        return self.store_dir / "tmp"

    @property
    def locks(self) -> Path:
        return self.store_dir / "locks"

    @property
    def runs(self) -> Path:
        """Per-run scratch: event files, captured logs while a run is live."""
        return self.store_dir / "runs"

    @property
    def ignore_file(self) -> Path:
        return self.root / IGNORE_FILENAME


def find_project_root(start: Path | None = None) -> Path:
    """Walk upward from ``start`` (default: the cwd) to the first folder holding ``.workbench/``."""
    here = (start or Path.cwd()).resolve()
    env_root = os.environ.get("WORKBENCH_PROJECT")
    if start is None and env_root:
        candidate = Path(env_root).resolve()
        if (candidate / STORE_DIRNAME).is_dir():
            return candidate
    for folder in (here, *here.parents):
        if (folder / STORE_DIRNAME).is_dir():
            return folder
    raise NotAProjectError(
        f"not a workbench project: {here} (or any parent)",
        "run 'workbench init' here, or pass -C DIR",
    )
