"""Every path Workbench uses, in one place.

A project is a folder with ``.workbench/`` at its root. The blob cache lives in
``.workbench/cache`` unless the project config (or ``WORKBENCH_CACHE_DIR``) points it elsewhere,
so several projects can share one cache. Per-user folders follow XDG: themes in
``$XDG_CONFIG_HOME/workbench/themes``, caches (serving venvs) in ``$XDG_CACHE_HOME/workbench``.
The built-in themes live in the top-level ``themes/`` folder of a source checkout and ship in the
wheel as ``workbench/_themes/`` (see setup.py); :func:`packaged_themes_dir` finds either.

Two exceptions, on purpose: the blob cache's inner layout (``objects/``, ``packs/``, ``tmp/``, ``locks/``) is
the cache's own format (versioning/blobs.py), and ``tracking/_inject/sitecustomize.py`` runs inside
the job's interpreter, where workbench may not be importable, so it repeats its two folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import NotAProjectError

STORE_DIRNAME = ".workbench"
DB_FILENAME = "workbench.db"
CONFIG_FILENAME = "config.toml"
IGNORE_FILENAME = ".workbenchignore"
HEAD_FILENAME = "HEAD"
LOCKS_DIRNAME = "locks"
WATCH_PENDING_FILENAME = "watch-pending.json"


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
    def head(self) -> Path:
        """The snapshot the working folder was last synchronised with."""
        return self.store_dir / HEAD_FILENAME

    @property
    def stat_index(self) -> Path:
        return self.store_dir / "index"

    @property
    def gitignore(self) -> Path:
        return self.store_dir / ".gitignore"

    @property
    def deploy(self) -> Path:
        """Per-deployment state of local serving (processes, logs)."""
        return self.store_dir / "deploy"

    @property
    def monitor_spool(self) -> Path:
        """Prediction spool files written by local replicas (``<deployment>/r<rev>-<replica>.jsonl``)."""
        return self.store_dir / "monitor" / "spool"

    @property
    def watch_pending(self) -> Path:
        return self.store_dir / WATCH_PENDING_FILENAME

    @property
    def tmp(self) -> Path:
        return self.store_dir / "tmp"

    @property
    def locks(self) -> Path:
        return self.store_dir / LOCKS_DIRNAME

    @property
    def runs(self) -> Path:
        """Per-run scratch: event files, captured logs while a run is live."""
        return self.store_dir / "runs"

    @property
    def ignore_file(self) -> Path:
        return self.root / IGNORE_FILENAME


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/workbench`` (default ``~/.config/workbench``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "workbench"


def user_themes_dir() -> Path:
    """Where a user adds theme files of their own."""
    return user_config_dir() / "themes"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/workbench`` (default ``~/.cache/workbench``): rebuildable things only."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench"


def packaged_themes_dir() -> Path:
    """The built-in themes: ``workbench/_themes`` in an installed wheel, else the checkout's ``themes/``."""
    package = Path(__file__).resolve().parent
    installed = package / "_themes"
    return installed if installed.is_dir() else package.parent / "themes"


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
