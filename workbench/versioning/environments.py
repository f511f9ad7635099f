"""Python environments inside a project folder, left out of its snapshots.

A virtualenv (``python -m venv env``, virtualenv, uv: a ``pyvenv.cfg`` at its top) or a conda
environment (a ``conda-meta/`` folder) holds thousands of files of installed packages, not project
data. ``.venv/`` and ``venv/`` are left out by the built-in rules; one under any other name (``env/``,
``py311/``, ``envs/torch/``) would be versioned, and watched, in full. ``workbench init`` finds them
at the top of the project and one level down, and each snapshot looks again where it scans (the
top-level folders, or the folders of the paths the watcher saw change): each found is added to
``.workbenchignore`` under a comment, where the user sees it and can delete it, and is said (init's
output, the snapshot's skipped list). The rule is a path, so the scanner, the incremental scan and
the watcher all read it alike. An environment is offered once (``.workbench/environments.json``):
a line the user deleted is not added again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from workbench.paths import IGNORE_FILENAME
from workbench.versioning.ignore import IgnoreRules

MARKERS = (("pyvenv.cfg", False, "a Python virtualenv"), ("conda-meta", True, "a conda environment"))
"""(entry, is a folder, what it makes the folder)."""
HEADER = "# Python environments found by workbench (installed packages, not project data):"
OFFERED = "environments.json"
"""In ``.workbench/``: the environments offered so far (relative folders)."""


def find_environments(root: Path, rules: IgnoreRules | None = None,
                      folders: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(relative folder, what it is)`` for each environment the rules do not leave out already:
    among ``folders`` (relative, at most one level down) when given, else at the top of ``root``
    and one level down. Symlinks are not followed."""
    rules = rules or IgnoreRules(root)
    if folders is not None:
        ignored = rules.matcher()
        return sorted((rel, kind) for rel in set(folders)
                      if rel and rel.count("/") <= 1 and not ignored(rel + "/")
                      and not (root / rel).is_symlink()
                      and (kind := _environment_kind(root / rel)) is not None)
    found: list[tuple[str, str]] = []
    pending = [("", 0)]
    while pending:
        rel, depth = pending.pop()
        try:
            with os.scandir(root / rel if rel else root) as entries:
                names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for name in names:
            child = f"{rel}/{name}" if rel else name
            if rules.ignored(child, name, True):
                continue
            kind = _environment_kind(root / child)
            if kind is not None:
                found.append((child, kind))
            elif depth == 0:
                pending.append((child, 1))
    return sorted(found)


def folders_of(paths: Iterable[str]) -> set[str]:
    """The top-level folder and the one below it of each changed path (``env/lib/x.py``: ``env``,
    ``env/lib``): where an environment those paths belong to would start."""
    out: set[str] = set()
    for path in paths:
        parts = [part for part in path.split("/") if part]
        if parts:
            out.add(parts[0])  # a file there is looked at too: it holds no marker
        if len(parts) > 1:
            out.add(f"{parts[0]}/{parts[1]}")
    return out


def _environment_kind(folder: Path) -> str | None:
    for marker, is_dir, kind in MARKERS:
        path = folder / marker
        try:
            if path.is_dir() if is_dir else path.is_file():
                return kind
        except OSError:
            continue
    return None


def unoffered_environments(root: Path, store_dir: Path, rules: IgnoreRules | None = None,
                           folders: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The environments :func:`find_environments` finds that were never offered: those the next
    snapshot leaves out. Writes nothing (``status`` and ``diff`` leave them out the same way)."""
    found = find_environments(root, rules, folders)
    if not found:
        return []
    offered = _offered(store_dir / OFFERED)
    return [(rel, kind) for rel, kind in found if rel not in offered]


def rules_with_environments(root: Path, store_dir: Path, rules: IgnoreRules,
                            folders: Iterable[str] | None = None,
                            ) -> tuple[IgnoreRules, list[tuple[str, str]]]:
    """``rules`` plus the line of each Python environment the next snapshot leaves out (found among
    ``folders``, else at the top and one level down), and those environments: ``status`` and
    ``diff`` leave them out as that snapshot will, writing nothing."""
    found = unoffered_environments(root, store_dir, rules, folders)
    return (IgnoreRules(root, pending_rules(found)) if found else rules), found


def pending_rules(found: list[tuple[str, str]]) -> tuple[str, ...]:
    """The ``.workbenchignore`` lines that leave out ``found`` (anchored at the project's top)."""
    return tuple(f"/{rel}/" for rel, _ in found)


def said(found: list[tuple[str, str]], *, written: bool) -> list[tuple[str, str]]:
    """``found`` as entries of a scan's skipped list: left out by a line just ``written``, or by the
    line the next snapshot writes (``status``, ``diff``)."""
    if written:
        why = "left out by a new line in .workbenchignore (delete it to version it)"
    else:
        why = "left out (the next snapshot adds its line to .workbenchignore)"
    return [(rel, f"{kind}: {why}") for rel, kind in found]


def _offered(record: Path) -> set[str]:
    try:
        return set(json.loads(record.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return set()


def leave_out_environments(root: Path, store_dir: Path, folders: Iterable[str] | None = None,
                           rules: IgnoreRules | None = None) -> list[tuple[str, str]]:
    """Add the environments :func:`find_environments` finds (under ``rules``, the project's as
    loaded, when given), and that were never offered before, to ``.workbenchignore`` (anchored at
    the project's top: ``/env/``); returns them. Running it again adds nothing, and an environment
    whose line the user deleted is not offered again."""
    new = unoffered_environments(root, store_dir, rules, folders)
    if not new:
        return []
    record = store_dir / OFFERED
    offered = _offered(record)
    path = root / IGNORE_FILENAME
    if path.is_symlink():
        return []  # kept elsewhere (a dotfiles repository): not ours to rewrite
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError):
        return []  # a .workbenchignore we cannot read or keep whole: leave it as it is
    if text and not text.endswith("\n"):
        text += "\n"
    block = "\n".join([HEADER, *pending_rules(new)]) + "\n"
    try:
        _replace(path, text + ("\n" if text else "") + block)
        _replace(record, json.dumps(sorted(offered | {rel for rel, _ in new})))
    except OSError:  # a read-only folder or file: the environment is versioned, as before
        return []
    return new


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a killed process leaves the old file): a temporary file
    beside it (a ``.wbtmp-`` name, which no snapshot or watcher looks at), then a rename."""
    tmp = path.with_name(f"{path.name}.wbtmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
