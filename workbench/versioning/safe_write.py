"""The one writer for bytes that come from elsewhere: restored snapshots and files a job wrote.

Restore/checkout (:mod:`workbench.versioning.restore`), Docker and Kubernetes copy-back
(:mod:`workbench.executors.staging`) and isolated-run outputs all write into a project through
:class:`ProjectWriter`, so one rule set holds everywhere (docs/security.md):

* a path is relative, posix, without ``..``, ``.``, empty or NUL components;
* nothing is written inside a ``.workbench/`` or VCS folder (``.git``, ``.hg``, ``.svn``, ``.jj``) at
  any depth (compared case-insensitively, for case-insensitive file systems);
* nothing is written through a symlink: every folder on the way is opened relative to its parent's
  file descriptor with ``O_NOFOLLOW | O_DIRECTORY``, so a link swapped in meanwhile is not followed
  either; an existing symlink is never replaced by a file;
* file modes are ``mode & 0o777``: setuid, setgid and sticky bits are dropped; folders are created
  with the default mode (never setgid from a tree);
* a symlink is created only when its target stays inside the destination: absolute targets and
  ``..`` escapes are refused, and :meth:`ProjectWriter.finish` resolves every link it made and
  removes any that a chain of links carried outside.

A refused path raises :class:`RefusedPath` (an ``UnsafePathError``) whose message is the same
wherever it triggers: ``refused to write 'PATH': REASON (a job or snapshot may not write there)``.
Callers collect refusals per file and carry on with the others (dvc-data style). Nothing here
imports Textual or Rich.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import stat as stat_mod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UnsafePathError
from workbench.paths import STORE_DIRNAME
from workbench.versioning.models import display_path

PROTECTED_DIRS = frozenset({STORE_DIRNAME, ".git", ".hg", ".svn", ".jj"})
"""Folder names nothing foreign may write into, at any depth (compared casefolded)."""
WHY = "(a job or snapshot may not write there)"
_counter = itertools.count()
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Refusal:
    """One path the writer would not write, and why (``reason`` reads after 'refused to write')."""

    path: str
    reason: str

    @property
    def message(self) -> str:
        return refusal_message(self.path, self.reason)

    def to_dict(self) -> dict[str, str]:
        return {"path": display_path(self.path), "reason": self.reason}


def refusal_message(path: str, reason: str) -> str:
    """The one wording of a refusal, e.g. ``refused to write '.git/hooks/x': inside .git/ (...)``."""
    return f"refused to write '{display_path(path)}': {reason} {WHY}"


class RefusedPath(UnsafePathError):
    """A path the boundary rules refuse; :attr:`refusal` says which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(refusal_message(path, reason),
                         "the other files were still written; see docs/security.md")
        self.refusal = Refusal(path, reason)


def protected_part(parts: Iterable[str]) -> str | None:
    """The first protected folder name among ``parts`` (as written), or None."""
    for part in parts:
        if part.casefold() in PROTECTED_DIRS:
            return part
    return None


def check_relative(rel: str) -> list[str]:
    """The components of a project-relative posix path, or :class:`RefusedPath` for one that could
    leave the project or reach a protected folder (lexical checks; links are checked on writing)."""
    if "\0" in rel:
        raise RefusedPath(rel, "the path holds a NUL byte")
    if rel.startswith("/") or os.path.isabs(rel):
        raise RefusedPath(rel, "an absolute path is outside the project")
    parts = rel.split("/")
    if not rel or any(p in ("", ".") for p in parts):
        raise RefusedPath(rel, "the path has empty or '.' components")
    if ".." in parts:
        raise RefusedPath(rel, "'..' leads outside the project")
    found = protected_part(parts)
    if found is not None:
        raise RefusedPath(rel, f"inside {found}/")
    return parts


def link_target_inside(rel: str, target: str) -> bool:
    """Whether a symlink at ``rel`` with ``target`` points inside the root, read lexically."""
    if not target or "\0" in target or target.startswith("/") or os.path.isabs(target):
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        return False
    return protected_part(joined.split("/")) is None


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat_mod.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class ProjectWriter:
    """Writes files, links and folders below ``root`` under the boundary rules (module docstring).

    Every method raises :class:`RefusedPath` for a refused path and ``OSError`` for an ordinary
    failure (a file where a folder should be, a full disk); nothing is half-written either way.
    Call :meth:`finish` at the end of a batch to check the links made.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.links: list[str] = []

    # -- walking -------------------------------------------------------------------------------
    def _open_dir(self, parts: list[str], rel: str, *, create: bool) -> int | None:
        """A descriptor of the folder ``parts`` below the root (None if missing and not ``create``)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            for i, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    if _is_link(fd, part):
                        raise RefusedPath(rel, f"'{display_path('/'.join(parts[:i + 1]))}' is a symlink; "
                                               "writing through it could leave the project") from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- writing -------------------------------------------------------------------------------
    def write_file(self, rel: str, content: Path | bytes | Iterable[bytes], mode: int) -> None:
        """Write ``content`` (a file to copy, bytes, or verified pieces) to ``rel`` atomically, with
        ``mode & 0o777``. A source file is opened without following links and must be regular."""
        parts = check_relative(rel)
        fd = self._open_dir(parts[:-1], rel, create=True)
        assert fd is not None
        name = parts[-1]
        try:
            if _is_link(fd, name):
                raise RefusedPath(rel, "a symlink stands there; it is not replaced")
            tmp = f".{name}.wbtmp-{os.getpid()}-{next(_counter)}"
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
            try:
                try:
                    for piece in _pieces(content):
                        view = memoryview(piece)
                        while view:
                            view = view[os.write(out, view):]
                    os.fchmod(out, mode & 0o777)
                finally:
                    os.close(out)
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)

    def write_link(self, rel: str, target: str) -> None:
        """Create (or replace) the symlink ``rel`` -> ``target``, refused if the target leaves."""
        parts = check_relative(rel)
        if not link_target_inside(rel, target):
            raise RefusedPath(rel, f"its link target '{display_path(target)}' leads outside the project")
        fd = self._open_dir(parts[:-1], rel, create=True)
        assert fd is not None
        name = parts[-1]
        tmp = f".{name}.wbtmp-{os.getpid()}-{next(_counter)}"
        try:
            os.symlink(target, tmp, dir_fd=fd)
            try:
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                os.unlink(tmp, dir_fd=fd)
                raise
        finally:
            os.close(fd)
        self.links.append(rel)

    def make_dir(self, rel: str) -> None:
        """Create the folder ``rel`` and its parents (no symlink on the way)."""
        parts = check_relative(rel)
        fd = self._open_dir(parts, rel, create=True)
        if fd is not None:
            os.close(fd)

    def set_mode(self, rel: str, mode: int) -> None:
        """Change an existing file's mode to ``mode & 0o777`` (never through or on a link)."""
        parts = check_relative(rel)
        fd = self._open_dir(parts[:-1], rel, create=False)
        if fd is None:
            raise FileNotFoundError(2, "No such file or directory", rel)
        try:
            out = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            if _is_link(fd, parts[-1]):
                os.close(fd)
                raise RefusedPath(rel, "a symlink stands there; it is not changed") from None
            os.close(fd)
            raise
        try:
            os.fchmod(out, mode & 0o777)
        finally:
            os.close(out)
            os.close(fd)

    def remove(self, rel: str, *, folder: bool = False) -> None:
        """Delete the file, link or (empty) folder ``rel``; a missing one is fine."""
        parts = check_relative(rel)
        fd = self._open_dir(parts[:-1], rel, create=False)
        if fd is None:
            return
        try:
            if folder:
                os.rmdir(parts[-1], dir_fd=fd)
            else:
                os.unlink(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def finish(self) -> list[Refusal]:
        """Resolve every link made in this batch; remove those a chain of links carried outside the
        root (or into a protected folder) and return them as refusals."""
        refused: list[Refusal] = []
        root_real = os.path.realpath(self.root)
        for rel in self.links:
            real = os.path.realpath(os.path.join(self.root, rel))
            inside = real == root_real or real.startswith(root_real + os.sep)
            sub = os.path.relpath(real, root_real).split(os.sep) if inside else []
            if inside and protected_part(sub) is None:
                continue
            try:
                self.remove(rel)
            except (OSError, UnsafePathError):
                pass
            refused.append(Refusal(rel, "its link resolves outside the project through other links"))
        self.links = []
        return refused


def _pieces(content: Path | bytes | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(content, bytes | bytearray | memoryview):
        yield bytes(content)
        return
    if isinstance(content, Path):
        yield from read_regular(content)
        return
    yield from content


def read_regular(path: Path) -> Iterator[bytes]:
    """The bytes of a regular file, opened without following a final symlink (parents are the
    caller's business: see :func:`open_source`)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat_mod.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise IsADirectoryError(21, "not a regular file", str(path))
        while chunk := handle.read(1 << 20):
            yield chunk


def source_mode(root: Path, rel: str) -> tuple[Path, int]:
    """The file ``rel`` below ``root`` (a job's folder) and its mode, checked like a target: no
    symlink on the way or at the end, a regular file. Raises RefusedPath or OSError."""
    parts = check_relative(rel)
    current = root
    for i, part in enumerate(parts):
        current = current / part
        st = os.lstat(current)
        if stat_mod.S_ISLNK(st.st_mode):
            what = "is a symlink" if i == len(parts) - 1 else "passes through a symlink"
            raise RefusedPath(rel, f"the job's file {what}; links are not brought back")
    if not stat_mod.S_ISREG(st.st_mode):
        raise RefusedPath(rel, "the job's file is not a regular file")
    return current, st.st_mode


def write_into_project(root: str | Path, rel: str, content: Path | bytes, mode: int = 0o644) -> None:
    """Write one file into the project under the boundary rules (for isolated-run outputs and any
    other writer of foreign bytes). ``content``: a source file (regular, not a link) or bytes.
    Raises :class:`RefusedPath` (one line, the shared wording) or ``OSError``."""
    ProjectWriter(root).write_file(rel, content, mode)
