"""A run's private copy of its input snapshot, and bringing back what the job wrote into it.

Remote jobs never see the live project folder: the input snapshot is checked out into a per-run
folder (``.workbench/runs/<run>/work``), which the container mounts or which is streamed into a
cluster volume. A :class:`Manifest` of that copy, taken right after checkout, tells afterwards which
files the job created or changed; :func:`copy_back` puts exactly those into the project, refusing any
path that would leave it or pass through a symlink.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from workbench.errors import UnsafePathError

if TYPE_CHECKING:
    from workbench.core.workspace import Workspace

Checkout = Callable[[str, Path], None]


def run_folder(ws: Workspace, run_id: str) -> Path:
    """The per-run scratch folder of a remote run (inside ``.workbench``, so never versioned)."""
    return ws.paths.runs / run_id


def checkout_snapshot(ws: Workspace, snapshot: str, dest: Path) -> None:
    """Materialise ``snapshot`` into the empty folder ``dest`` through the versioning service."""
    from workbench.errors import ExecutorError

    if not snapshot:
        raise ExecutorError("no input snapshot to send to the executor",
                            "remote runs need versioning: check 'workbench status' works in this project")
    dest.mkdir(parents=True, exist_ok=True)
    ws.versions.checkout(snapshot, dest)


@dataclass
class Manifest:
    """Size and mtime of every regular file of a folder, by posix relative path."""

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
    """Regular files below ``root`` (symlinks neither followed nor listed), with their stat."""
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
            elif stat.S_ISREG(st.st_mode):
                out.append((Path(entry.path).relative_to(root).as_posix(), st))
    return out


def safe_target(project_root: Path, rel: str) -> Path:
    """The project path for ``rel``; raises UnsafePathError for ``..``, absolute paths, symlinks."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or not pure.parts or any(p in ("..", "") for p in pure.parts):
        raise UnsafePathError(f"refusing to write outside the project: {rel}")
    if pure.parts[0] == ".workbench":
        raise UnsafePathError(f"refusing to write into the store: {rel}")
    target = project_root
    for part in pure.parts[:-1]:
        target = target / part
        if target.is_symlink():
            raise UnsafePathError(f"refusing to write through a symlink: {rel}")
    target = target / pure.parts[-1]
    if target.is_symlink():
        raise UnsafePathError(f"refusing to overwrite a symlink: {rel}")
    return target


def copy_back(src_root: Path, project_root: Path, paths: list[str]) -> list[str]:
    """Copy ``paths`` (relative to ``src_root``) into the project atomically; return those copied.

    Unsafe paths are skipped, never written; the rest are written to a temporary file beside the
    target and renamed into place, owned by the user running workbench.
    """
    copied: list[str] = []
    for rel in paths:
        try:
            target = safe_target(project_root, rel)
        except UnsafePathError:
            continue
        source = src_root / rel
        if source.is_symlink() or not source.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".wb-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            os.chmod(tmp, stat.S_IMODE(source.stat().st_mode) | stat.S_IRUSR | stat.S_IWUSR)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        copied.append(rel)
    return copied


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
