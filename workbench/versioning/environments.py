"""Python environments inside a project folder, left out of its snapshots when it is initialised.

A virtualenv (``python -m venv env``, virtualenv, uv: a ``pyvenv.cfg`` at its top) or a conda
environment (a ``conda-meta/`` folder) holds thousands of files of installed packages, not project
data. ``.venv/`` and ``venv/`` are left out by the built-in rules; one under any other name (``env/``,
``py311/``, ``envs/torch/``) would be versioned, and watched, in full. ``workbench init`` finds them
at the top of the project and one level down, and adds each to ``.workbenchignore`` with a comment,
where the user sees it and can take it out: the rule is a path, so the scanner, the incremental scan
and the watcher all read it the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.paths import IGNORE_FILENAME
from workbench.versioning.ignore import IgnoreRules

MARKERS = (("pyvenv.cfg", False, "a Python virtualenv"), ("conda-meta", True, "a conda environment"))
"""(entry, is a folder, what it makes the folder)."""
HEADER = "# Python environments found by 'workbench init' (installed packages, not project data):"


def find_environments(root: Path, rules: IgnoreRules | None = None) -> list[tuple[str, str]]:
    """``(relative folder, what it is)`` for each environment at the top of ``root`` or one level
    down that the rules do not leave out already; symlinks are not followed."""
    rules = rules or IgnoreRules(root)
    found: list[tuple[str, str]] = []
    pending = [("", 0)]
    while pending:
        rel, depth = pending.pop()
        try:
            with os.scandir(root / rel if rel else root) as entries:
                folders = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for name in folders:
            child = f"{rel}/{name}" if rel else name
            if rules.ignored(child, name, True):
                continue
            kind = _environment_kind(root / child)
            if kind is not None:
                found.append((child, kind))
            elif depth == 0:
                pending.append((child, 1))
    return sorted(found)


def _environment_kind(folder: Path) -> str | None:
    for marker, is_dir, kind in MARKERS:
        path = folder / marker
        try:
            if path.is_dir() if is_dir else path.is_file():
                return kind
        except OSError:
            continue
    return None


def leave_out_environments(root: Path) -> list[tuple[str, str]]:
    """Add the environments :func:`find_environments` finds to ``.workbenchignore`` (anchored at
    the project's top: ``/env/``); returns them. Running it again adds nothing."""
    found = find_environments(root)
    if not found:
        return []
    path = root / IGNORE_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    lines = [f"/{rel}/" for rel, _ in found]
    block = "\n".join([HEADER, *lines]) + "\n"
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + ("\n" if text else "") + block, encoding="utf-8")
    return found
