"""The cache lock (shared by writers, exclusive for gc) and the list of projects sharing a cache."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import BusyError, WorkbenchError

PROJECTS_FILE = "projects"


def cache_unreadable(exc: OSError, root: Path) -> WorkbenchError:
    """The one-line error for a blob cache folder that cannot be read or written."""
    return WorkbenchError(
        f"cannot use the blob cache {root}: {exc.strerror or exc}",
        "it must be a readable, writable folder: check its permissions, or store.cache_dir / "
        "WORKBENCH_CACHE_DIR",
    )


@contextmanager
def cache_lock(cache: Path, *, exclusive: bool, wait: bool = True) -> Iterator[None]:
    """``flock`` on ``cache/locks/gc.lock``: many writers at once, or one gc alone."""
    folder = cache / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise cache_unreadable(exc, cache) from None
    try:
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, flags if wait else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError("the blob cache is busy (a gc or snapshot is running)", "retry shortly") from None
        yield
    finally:
        os.close(fd)


def register_project(cache: Path, db: Path) -> None:
    """Remember that the project database ``db`` keeps objects in ``cache`` (gc reads them all)."""
    path = cache / PROJECTS_FILE
    entry = str(db.resolve())
    try:
        known = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except FileNotFoundError:
        known = []
    except OSError as exc:
        raise cache_unreadable(exc, cache) from None
    if entry in known:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="surrogateescape") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.write(entry + "\n")
    except OSError as exc:
        raise cache_unreadable(exc, cache) from None


def projects(cache: Path) -> list[Path]:
    try:
        lines = (cache / PROJECTS_FILE).read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise cache_unreadable(exc, cache) from None
    return [Path(line) for line in dict.fromkeys(lines) if line.strip()]
