"""How a run's events name files: the project-relative form the store records, and which paths
a model event may name (only files inside the project, outside ``.git``-like folders); and the
folder a run runs in."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.paths import STORE_DIRNAME


def current_workdir(root: Path) -> str:
    """Where a run started now runs, as its record's ``workdir``: the current folder relative to
    the project ``root`` (posix), where it is inside the project; else ``.``, the project's top."""
    try:
        return Path.cwd().resolve().relative_to(root.resolve()).as_posix()
    except (OSError, ValueError):
        return "."


def relative_path(path: str, root: Path) -> str | None:
    """A path as the store records it: project-relative posix, absolute if outside the project,
    None for paths inside ``.workbench/`` (the store's own files)."""
    absolute = os.path.normpath(os.path.join(str(root), path))
    root_text = str(root)
    if absolute == root_text:
        return None
    if absolute.startswith(root_text + os.sep):
        rel = absolute[len(root_text) + 1:].replace(os.sep, "/")
        if rel == STORE_DIRNAME or rel.startswith(STORE_DIRNAME + "/"):
            return None
        return rel
    return absolute


def model_path_refusal(rel: str | None) -> str:
    """Why a model event's path (as :func:`relative_path` gave it) is not registered, or ``""``.

    Only files inside the project are read into the blob cache as models: an absolute path (outside
    the project) or one inside a ``.git``-like folder is refused (docs/security.md)."""
    if rel is None:
        return "inside .workbench/"
    if os.path.isabs(rel):
        return "outside the project (only files inside it are registered as models)"
    from workbench.versioning.safe_write import protected_part

    found = protected_part(rel.split("/"))
    return f"inside {found}/" if found else ""
