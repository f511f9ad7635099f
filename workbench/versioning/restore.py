"""Materialising a stored tree into a folder: diff-then-apply, never outside that folder.

Every entry name was checked when its tree was decoded (no ``..``, ``/``, empty or NUL names), every
requested path is checked here, and every parent folder on the way to a written file is checked
with ``lstat``: a symlink there is refused, never followed. Files are written to a temporary file
beside their target, given their recorded mode, and renamed over it; symlinks are recreated as links.
Per-path failures are collected and reported together at the end, after everything else was done.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from pathlib import Path

from workbench.errors import UnsafePathError, WorkbenchError
from workbench.versioning.blobs import BlobStore
from workbench.versioning.models import display_path
from workbench.versioning.reports import RestoreResult
from workbench.versioning.trees import DIR, FILE, LINK, Item, TreeReader, check_name

Progress = Callable[[int, int], None]


def clean_path(path: str) -> str:
    """A user-given project path as a clean posix relative path; refuses absolute and ``..``."""
    if path.startswith("/") or os.path.isabs(path):
        raise UnsafePathError(f"absolute path refused: {display_path(path)}",
                              "give a path inside the project")
    parts = [p for p in path.replace(os.sep, "/").split("/") if p and p != "."]
    for part in parts:
        if part == "..":
            raise UnsafePathError(f"path with '..' refused: {display_path(path)}",
                                  "give a path inside the project")
        check_name(part)
    return "/".join(parts)


def _selected(path: str, wanted: list[str] | None) -> bool:
    if wanted is None:
        return True
    return any(path == w or path.startswith(w + "/") or w == "" for w in wanted)


def flatten(reader: TreeReader, root: str | None, wanted: list[str] | None) -> dict[str, Item]:
    if root is None:
        return {}
    return {p: it for p, it in reader.walk_all(root) if _selected(p, wanted)}


def _safe_dir(dest: str, rel: str, create: bool) -> str:
    """The absolute folder ``rel`` under ``dest``, created if asked; refuses symlinks on the way."""
    current = dest
    for part in [p for p in rel.split("/") if p]:
        check_name(part)
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if not create:
                return current
            os.mkdir(current)
            continue
        if stat_mod.S_ISLNK(st.st_mode):
            raise UnsafePathError(
                f"refusing to write through the symlink {display_path(current)}",
                "remove the link or restore to another folder",
            )
        if not stat_mod.S_ISDIR(st.st_mode):
            raise UnsafePathError(f"{display_path(current)} is not a folder", "move it out of the way")
    return current


def _remove(dest: str, rel: str, item: Item) -> None:
    parent, name = os.path.split(rel)
    folder = _safe_dir(dest, parent, create=False)
    path = os.path.join(folder, name)
    if item[1] == DIR:
        os.rmdir(path)
    else:
        os.unlink(path)


def apply(store: BlobStore, reader: TreeReader, target_root: str, dest: str,
          wanted: list[str] | None, current: dict[str, Item], *, delete_extra: bool,
          snapshot_id: str, progress: Progress | None = None) -> RestoreResult:
    """Make ``dest`` match ``target_root`` (limited to ``wanted`` paths); ``current`` is what is there."""
    target = flatten(reader, target_root, wanted)
    result = RestoreResult(snapshot_id)
    failures: list[str] = []
    unsafe = False
    # 1. Remove what the target does not have, and entries whose type changes (deepest first).
    doomed = [p for p, it in current.items()
              if (delete_extra and p not in target) or (p in target and target[p][1] != it[1])]
    for path in sorted(doomed, key=lambda p: (-p.count("/"), p)):
        try:
            _remove(dest, path, current[path])
            result.deleted.append(path)
        except OSError as exc:
            if current[path][1] != DIR:
                failures.append(f"{display_path(path)}: {exc.strerror}")
        except UnsafePathError as exc:
            failures.append(exc.message)
            unsafe = True
    # 2. Write what differs, folders before their content.
    total = sum(it[3] for it in target.values() if it[1] == FILE)
    done = 0
    for path in sorted(target, key=lambda p: p.split("/")):
        item = target[path]
        have = current.get(path)
        unchanged = have is not None and have == item and path not in result.deleted
        try:
            if item[1] == DIR:
                _safe_dir(dest, path, create=True)
                continue
            parent, name = os.path.split(path)
            folder = _safe_dir(dest, parent, create=True)
            full = os.path.join(folder, name)
            if unchanged:
                result.unchanged += 1
            elif item[1] == LINK:
                tmp = os.path.join(folder, f".{name}.wbtmp-{os.getpid()}")
                os.symlink(item[4], tmp)
                os.replace(tmp, full)
                result.written.append(path)
            elif have is not None and have[1] == FILE and have[4] == item[4] and path not in result.deleted:
                os.chmod(full, item[2], follow_symlinks=False)
                result.written.append(path)
            else:
                store.export(item[4], Path(full), mode=item[2])
                result.written.append(path)
        except UnsafePathError as exc:
            failures.append(exc.message)
            unsafe = True
        except OSError as exc:
            failures.append(f"{display_path(path)}: {exc.strerror}")
        except WorkbenchError as exc:
            failures.append(f"{display_path(path)}: {exc.one_line()}")
        if item[1] == FILE:
            done += item[3]
            if progress is not None:
                progress(done, total)
    if failures:
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        error = UnsafePathError if unsafe else WorkbenchError
        raise error(
            f"restore of {snapshot_id[:10]} incomplete: {'; '.join(failures[:3])}{more}",
            "remove links or files in the way, or restore to another folder; then run the same restore again",
        )
    return result
