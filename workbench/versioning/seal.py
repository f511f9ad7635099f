"""The status seal: ``workbench status`` answered without opening the store when nothing changed.

When a full scan finds the folder exactly as its HEAD snapshot (nothing changed, nothing skipped,
no remote line to print), ``status`` writes ``.workbench/status.seal``: the line it printed; the
stat (size, mtime, ctime, inode) of every folder it listed, taken *before* listing it, and of every
file it compared; and the stat of what else the answer rests on (the HEAD file, ``.workbenchignore``,
the database and its write-ahead log, whose header is kept too). The next ``status`` finds the
project, reads the seal and lstat's every entry again (in C, :mod:`workbench.versioning._sealcheck`,
where it was built; else the same loop here): if all are unchanged it prints the line again without
importing the store. Any difference, a seal that cannot be read or one of another project, format or
Workbench version, and ``status`` scans as it always did (and seals again when it is clean).
``WORKBENCH_STATUS_SEAL=0`` turns seals off.

Why this is sound: a folder's mtime and ctime change whenever an entry is added, removed or renamed
in it, and a file's size, mtime, ctime or inode whenever its bytes or mode change (or it is
replaced); any write to the database (a snapshot, a remote added) changes its file or its log. Git's
untracked cache rests on the same facts. Time stamps come from a coarse clock, so a change just
after an entry was stat'ed could keep its old stamp: an entry changed within the racy margin of the
scan's start (:data:`~workbench.versioning.state.FINE_MARGIN_NS`, whole-second stamps
:data:`~workbench.versioning.state.COARSE_MARGIN_NS`) is not sealable, and no seal is written then.

This module is imported by the CLI before anything else of Workbench: it must stay light (no
pathlib, sqlite3, typing or json: the seal's header is a :mod:`marshal` dict, which a seal of
another Python version may fail to read, and then the status is scanned).
"""

from __future__ import annotations

import marshal
import os
import sys
import time
from array import array

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and json cost milliseconds of the start-up this module saves
    from typing import Any

    from workbench.versioning.worktree import _Dir

FORMAT = b"workbench-status-seal 2\n"
SEAL_NAME = "status.seal"
STORE = ".workbench"
IGNORE_FILE = ".workbenchignore"
NS = 1_000_000_000
FINE_MARGIN_NS = 100_000_000
COARSE_MARGIN_NS = 2 * NS
"""The racy margins of :mod:`workbench.versioning.state` (tests check they agree; importing it here
would cost the start-up this module exists to save)."""
Stat = tuple[int, int, int, int]


def _stat(path: str) -> Stat | None:
    """(size, mtime_ns, ctime_ns, inode) of ``path`` itself (a link is not followed), None if absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _wal_head(path: str) -> str:
    """The write-ahead log's header (its salts change each time it restarts), or "" when empty."""
    try:
        with open(path, "rb") as handle:
            return handle.read(32).hex()
    except FileNotFoundError:
        return ""


def _context(root: str) -> dict[str, Any]:
    """What the answer rests on beside the folder's entries (a log without frames counts as none:
    every reader of the database opens one)."""
    store = os.path.join(root, STORE)
    wal = os.path.join(store, "workbench.db-wal")
    wal_stat = _stat(wal)
    if wal_stat is not None and wal_stat[0] == 0:
        wal_stat = None
    return {
        "head": _stat(os.path.join(store, "HEAD")), "ignore": _stat(os.path.join(root, IGNORE_FILE)),
        "db": _stat(os.path.join(store, "workbench.db")), "wal": wal_stat,
        "wal_head": _wal_head(wal) if wal_stat is not None else "",
    }


def _version() -> str:
    """This Workbench's version: a seal another version wrote is not read (its line may differ)."""
    from workbench import __version__

    return __version__


def _racy(stat: Stat | list[int] | None, before_ns: int) -> bool:
    if stat is None:
        return False
    changed = max(stat[1], stat[2])
    return changed + (COARSE_MARGIN_NS if changed % NS == 0 else FINE_MARGIN_NS) >= before_ns


class Material:
    """What a seal needs from before the scan: its start and the context's stats then."""

    __slots__ = ("context", "root", "started_ns")

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.started_ns = time.time_ns()
        self.context = _context(self.root)

    def write(self, dirs: list[_Dir], text: str) -> bool:
        """Seal ``dirs`` (a clean scan's folders, their files compared) with ``text``, the line
        ``status`` printed; False (and nothing written) when an entry or the context is racy or
        changed since :meth:`__init__`, or the seal cannot be written."""
        if not enabled():
            return False
        if _context(self.root) != self.context or any(
                _racy(s, self.started_ns) for s in self.context.values() if not isinstance(s, str)):
            return False
        stats: list[int] = []
        paths: list[bytes] = []
        for node in dirs:
            if node.stat is None or _racy(node.stat, self.started_ns):
                return False
            stats.extend(node.stat)
            paths.append(os.fsencode(node.rel or "."))
            for name, f in node.files.items():
                size, mtime, ino, ctime = f[0], f[1], f[2], f[3]
                stat = (size, mtime, ctime, ino)
                if _racy(stat, self.started_ns):  # type: ignore[arg-type]
                    return False
                stats.extend(stat)  # type: ignore[arg-type]
                paths.append(os.fsencode(f"{node.rel}/{name}" if node.rel else name))
        packed = array("q", (v - (1 << 64) if v >= 1 << 63 else v for v in stats))  # inodes are unsigned
        header = marshal.dumps({"root": self.root, "text": text, "count": len(paths),
                                "context": self.context, "version": _version()})
        body = b"".join((FORMAT, len(header).to_bytes(8, "little"), header, packed.tobytes(),
                         b"\0".join(paths), b"\0" if paths else b""))
        target = os.path.join(self.root, STORE, SEAL_NAME)
        temporary = f"{target}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as handle:
                handle.write(body)
            os.replace(temporary, target)
        except OSError:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            return False
        return True


def enabled() -> bool:
    """False when ``WORKBENCH_STATUS_SEAL=0``: every ``status`` scans, and none writes a seal (for
    a file system whose folder times cannot be trusted, such as some network mounts)."""
    return os.environ.get("WORKBENCH_STATUS_SEAL", "1") != "0"


def _project_root() -> str | None:
    """The folder holding ``.workbench/`` around the cwd, as :func:`workbench.paths.find_project_root`
    finds it (``WORKBENCH_PROJECT`` first), or None."""
    env_root = os.environ.get("WORKBENCH_PROJECT")
    if env_root and os.path.isdir(os.path.join(env_root, STORE)):
        return os.path.realpath(env_root)
    here = os.path.realpath(os.getcwd())
    while True:
        if os.path.isdir(os.path.join(here, STORE)):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _unchanged_py(root: str, stats: memoryview, paths: memoryview) -> bool:
    """The loop of :func:`workbench.versioning._sealcheck.unchanged`, in Python."""
    want = array("q")
    want.frombytes(stats)
    names = bytes(paths).split(b"\0")
    if len(names) - 1 != len(want) // 4 or names[-1] != b"":
        return False
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lstat = os.lstat
        for i, name in enumerate(names[:-1]):
            try:
                st = lstat(name, dir_fd=fd)
            except OSError:
                return False
            at = 4 * i
            if (st.st_size != want[at] or st.st_mtime_ns != want[at + 1] or st.st_ctime_ns != want[at + 2]
                    or st.st_ino != want[at + 3] % (1 << 64)):
                return False
    finally:
        os.close(fd)
    return True


def answer() -> str | None:
    """The sealed line when the project around the cwd is exactly as its seal says, else None."""
    try:
        root = _project_root()
        if root is None:
            return None
        with open(os.path.join(root, STORE, SEAL_NAME), "rb") as handle:
            data = handle.read()
        if not data.startswith(FORMAT):
            return None
        start = len(FORMAT) + 8
        end = start + int.from_bytes(data[len(FORMAT):start], "little")
        header = marshal.loads(data[start:end])
        if header["root"] != root or header["version"] != _version() or _context(root) != header["context"]:
            return None
        view = memoryview(data)[end:]
        size = 32 * int(header["count"])
        stats, paths = view[:size], view[size:]
        if os.environ.get("WORKBENCH_PURE_PYTHON"):
            same = _unchanged_py(root, stats, paths)
        else:
            try:
                from workbench.versioning._sealcheck import unchanged
            except ImportError:  # not built: the same loop in Python
                same = _unchanged_py(root, stats, paths)
            else:
                same = unchanged(root, stats, paths)
        text = header["text"]
        return text if same and isinstance(text, str) else None
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None


def main(args: list[str]) -> int | None:
    """The CLI's fast path: ``workbench status`` (with ``--no-watcher`` or not) printed from the seal,
    or None to run the command as usual."""
    if args not in (["status"], ["status", "--no-watcher"]) or not enabled():
        return None
    text = answer()
    if text is None:
        return None
    sys.stdout.write(text)
    return 0
