"""Materialising a stored tree into a folder: diff-then-apply, never outside that folder.

Every entry name was checked when its tree was decoded (no ``..``, ``/``, empty or NUL names) and
every requested path is checked here. All writing goes through the shared boundary writer
(:mod:`workbench.versioning.safe_write`): nothing inside ``.workbench/`` or ``.git/``, nothing through
a symlink, no setuid/setgid/sticky bits, no link whose target leaves the folder. Per-path refusals
and failures are collected and reported together at the end, after everything else was done.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from workbench.errors import UnsafePathError, WorkbenchError
from workbench.versioning.blobs import BlobStore
from workbench.versioning.models import display_path
from workbench.versioning.reports import RestoreResult
from workbench.versioning.safe_write import ProjectWriter, Refusal, RefusedPath
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


def apply(store: BlobStore, reader: TreeReader, target_root: str, dest: str,
          wanted: list[str] | None, current: dict[str, Item], *, delete_extra: bool,
          snapshot_id: str, progress: Progress | None = None) -> RestoreResult:
    """Make ``dest`` match ``target_root`` (limited to ``wanted`` paths); ``current`` is what is there.

    Every write goes through :class:`~workbench.versioning.safe_write.ProjectWriter`; refused paths
    and failures are collected per file (the others are still written) and raised together at the end.
    """
    target = flatten(reader, target_root, wanted)
    writer = ProjectWriter(dest)
    result = RestoreResult(snapshot_id)
    failures: list[str] = []
    refused: list[Refusal] = []
    # 1. Remove what the target does not have, and entries whose type changes (deepest first).
    doomed = [p for p, it in current.items()
              if (delete_extra and p not in target) or (p in target and target[p][1] != it[1])]
    for path in sorted(doomed, key=lambda p: (-p.count("/"), p)):
        try:
            writer.remove(path, folder=current[path][1] == DIR)
            result.deleted.append(path)
        except OSError as exc:
            if current[path][1] != DIR:
                failures.append(f"{display_path(path)}: {exc.strerror}")
        except RefusedPath as exc:
            refused.append(exc.refusal)
    # 2. Write what differs, folders before their content.
    total = sum(it[3] for it in target.values() if it[1] == FILE)
    done = 0
    for path in sorted(target, key=lambda p: p.split("/")):
        item = target[path]
        have = current.get(path)
        unchanged = have is not None and have == item and path not in result.deleted
        try:
            if item[1] == DIR:
                writer.make_dir(path)
            elif unchanged:
                result.unchanged += 1
            elif item[1] == LINK:
                writer.write_link(path, item[4])
                result.written.append(path)
            elif have is not None and have[1] == FILE and have[4] == item[4] and path not in result.deleted:
                writer.set_mode(path, item[2])
                result.written.append(path)
            else:
                writer.write_file(path, store.iter_object(item[4]), item[2])
                result.written.append(path)
        except RefusedPath as exc:
            refused.append(exc.refusal)
        except OSError as exc:
            failures.append(f"{display_path(path)}: {exc.strerror or exc}")
        except WorkbenchError as exc:
            failures.append(f"{display_path(path)}: {exc.one_line()}")
        if item[1] == FILE:
            done += item[3]
            if progress is not None:
                progress(done, total)
    for late in writer.finish():
        refused.append(late)
        if late.path in result.written:
            result.written.remove(late.path)
    if failures or refused:
        raise RestoreIncomplete(snapshot_id, refused, failures)
    return result


class RestoreIncomplete(UnsafePathError):
    """A restore or checkout that wrote everything it could but refused or failed some paths; it
    carries them all (:attr:`refused`, :attr:`failures`), the message names the first three."""

    def __init__(self, snapshot_id: str, refused: list[Refusal], failures: list[str]) -> None:
        lines = [r.message for r in refused] + failures
        more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
        hint = ("the other files were restored; see docs/security.md" if not failures else
                "remove links or files in the way, or restore to another folder; then run the same "
                "restore again")
        super().__init__(f"restore of {snapshot_id[:10]} incomplete: {'; '.join(lines[:3])}{more}", hint)
        self.refused = refused
        self.failures = failures
