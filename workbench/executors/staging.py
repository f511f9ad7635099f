"""A run's private copy of its input snapshot, and bringing back what the job wrote into it.

Remote jobs never see the live project folder: the input snapshot is checked out into a per-run
folder (``.workbench/runs/<run>/work``), which the container mounts or which is streamed into a
cluster volume. A :class:`Manifest` of that copy, taken right after checkout, tells afterwards which
files the job created or changed; :func:`copy_back` puts exactly those into the project through the
shared boundary writer (docs/security.md), collecting every refused path.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.versioning.safe_write import ProjectWriter, Refusal, RefusedPath, source_mode

if TYPE_CHECKING:
    from workbench.executors.base import JobOutputs
    from workbench.versioning.versioned import VersionedProject

Checkout = Callable[[str, Path], None]


def run_folder(ws: VersionedProject, run_id: str) -> Path:
    """The per-run scratch folder of a remote run (inside ``.workbench``, so never versioned)."""
    return ws.paths.runs / run_id


def checkout_snapshot(ws: VersionedProject, snapshot: str, dest: Path) -> None:
    """Materialise ``snapshot`` into the empty folder ``dest`` through the versioning service."""
    from workbench.errors import ExecutorError, UnsafePathError

    if not snapshot:
        raise ExecutorError("no input snapshot to send to the executor",
                            "remote runs need versioning: check 'workbench status' works in this project")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        ws.versions.checkout(snapshot, dest)
    except UnsafePathError as exc:  # a refused path (docs/security.md): the run fails in words
        raise ExecutorError(f"the input snapshot cannot be staged for the job: {exc.message}",
                            "remove or fix the refused paths (links must stay inside the project)") from None


@dataclass
class Manifest:
    """Size and mtime of every regular file and symlink of a folder, by posix relative path."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, root: Path) -> Manifest:
        files: dict[str, tuple[int, int]] = {}
        for rel, st in walk_files(root):
            files[rel] = (st.st_size, st.st_mtime_ns)
        return cls(files)

    def changed(self, root: Path) -> list[str]:
        """Files under ``root`` that are new or whose size or mtime differ from the manifest."""
        found: list[str] = []
        for rel, st in walk_files(root):
            if self.files.get(rel) != (st.st_size, st.st_mtime_ns):
                found.append(rel)
        return sorted(found)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.files), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Manifest:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls({k: (int(v[0]), int(v[1])) for k, v in raw.items()})


def walk_files(root: Path) -> list[tuple[str, os.stat_result]]:
    """Regular files and symlinks below ``root`` (links listed, never followed), with their lstat.
    Listing links lets copy-back report the ones a job made (it never brings them back)."""
    out: list[tuple[str, os.stat_result]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                out.append((Path(entry.path).relative_to(root).as_posix(), st))
    return out


class CopyReport(list[str]):
    """The project-relative paths copied back (a plain list to callers that only need those), plus
    :attr:`refused`: every path the boundary rules refused, each a ``Refusal(path, reason)``."""

    def __init__(self, copied: list[str] | None = None) -> None:
        super().__init__(copied or [])
        self.refused: list[Refusal] = []


def copy_back(src_root: Path, project_root: Path, paths: list[str]) -> CopyReport:
    """Copy ``paths`` (relative to ``src_root``, the job's folder) into the project; return those
    copied, with the refused ones in ``.refused``.

    Everything goes through the shared boundary writer (:mod:`workbench.versioning.safe_write`):
    no path outside the project, inside ``.workbench/`` or ``.git/``, or through a symlink, on either
    side; links the job made are not brought back; modes lose setuid/setgid/sticky bits and are never
    more than the job's file had. Each file is written to a temporary file beside its target and
    renamed into place, owned by the user running workbench. A refused or failing file does not stop
    the others.
    """
    report = CopyReport()
    writer = ProjectWriter(project_root)
    for rel in paths:
        try:
            source, mode = source_mode(src_root, rel)
            writer.write_file(rel, source, mode)
        except RefusedPath as exc:
            report.refused.append(exc.refusal)
            continue
        except OSError as exc:
            report.refused.append(Refusal(rel, f"could not be copied: {exc.strerror or exc}"))
            continue
        report.append(rel)
    return report


def copy_all_back(outputs: JobOutputs | None, project_root: Path) -> CopyReport:
    """Copy every file of a job's output folder into the project (no conflict rule: a re-attached
    run's way; a run followed from the start goes through workbench.tracking.isolation), then
    release the folder."""
    if outputs is None:
        return CopyReport()
    try:
        return copy_back(outputs.folder, project_root, outputs.paths)
    finally:
        outputs.discard()


def make_group_writable(root: Path) -> None:
    """Let any user of group 0 write the tree (the OpenShift convention; used when we run as root
    and the container runs as an arbitrary non-root uid)."""
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, 0o775)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | 0o060)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
