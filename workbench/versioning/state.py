"""The stat index: what each file's content hash was the last time it was read, and under which stat.

One compact file (``.workbench/index``, a versioned :mod:`marshal` dump read in one go, about 1 ms
for 10k files) maps a project-relative path to 72 packed bytes:
``(size, mtime_ns, ino, ctime_ns, read_ns, 32-byte hash)``.
A rescan trusts an entry only when the file's stat matches it exactly *and* the file was last
changed clearly before it was read (git's racy-timestamp rule: a file modified within the timestamp
granularity of the moment it was hashed could change again without its mtime moving, so it is
re-hashed until its entry is old enough to be trusted).

The index is a cache of true statements ("a file with this stat had this content"), so concurrent
writers need no lock: the file is replaced atomically and any version of it is correct.

Beside it, ``.workbench/index.trees`` caches folder tree hashes: folder path -> 72 bytes
``(fingerprint, tree hash, bytes below)``. The fingerprint is the BLAKE3 of everything a folder's
tree is made of as the scan saw it: its file names with their raw stat-index entries (so their
sizes, stats and content hashes), its links with their targets, its sub-folders with their tree
hashes. A rescan that finds every file of a folder vouched for by the stat index compares the
fingerprint and, when it matches, reuses the tree hash without building or encoding the tree. Any
change below a folder (a file re-hashed, added, removed, renamed, chmod-ed, ignored; a sub-folder's
hash) changes the fingerprint, whoever updated the stat index: the cache holds true statements too.
"""

from __future__ import annotations

import marshal
import os
import struct
from pathlib import Path

VERSION = 3
"""3: secret sniffing came in; files an older index vouched for are read (and sniffed) once more."""
Entry = tuple[int, int, int, int, str, int]
"""(size, mtime_ns, ino, ctime_ns, hash, read_ns), unpacked"""
PACKED = struct.Struct("<qqqqq32s")
TREES_VERSION = 1
TREE_ENTRY = struct.Struct("<32s32sq")
"""(fingerprint, tree hash, bytes below) of one folder in ``index.trees``"""
NS = 1_000_000_000
FINE_MARGIN_NS = 100_000_000
"""Slack for file systems with nanosecond stamps: the kernel's coarse clock lags by a few ms."""
COARSE_MARGIN_NS = 2 * NS
"""File systems with whole-second (or two-second, FAT) stamps."""


def pack(entry: Entry) -> bytes:
    return PACKED.pack(entry[0], entry[1], entry[2], entry[3], entry[5], bytes.fromhex(entry[4]))


def unpack(raw: bytes) -> Entry:
    size, mtime_ns, ino, ctime_ns, read_ns, digest = PACKED.unpack(raw)
    return (size, mtime_ns, ino, ctime_ns, digest.hex(), read_ns)


def trusted_hash(raw: bytes, size: int, mtime_ns: int, ino: int, ctime_ns: int) -> str | None:
    """The recorded hash if ``raw`` still describes a file with this stat (racy rule included)."""
    e_size, e_mtime, e_ino, e_ctime, read_ns, digest = PACKED.unpack(raw)
    if e_size != size or e_mtime != mtime_ns or e_ino != ino or e_ctime != ctime_ns:
        return None
    changed = mtime_ns if mtime_ns > ctime_ns else ctime_ns
    margin = COARSE_MARGIN_NS if changed % NS == 0 else FINE_MARGIN_NS
    if changed + margin < read_ns:
        return str(digest.hex())
    return None


class StatIndex:
    """Load, query and atomically save the index of one project."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, bytes] = {}
        self.dirty = False
        self.trees_path = path.with_name(path.name + ".trees")
        self.trees: dict[str, bytes] = {}
        """folder path -> ``TREE_ENTRY`` (see the module docstring)"""
        self.trees_dirty = False

    def load(self) -> StatIndex:
        self.entries = _read(self.path, VERSION)
        self.trees = _read(self.trees_path, TREES_VERSION)
        return self

    def cached_tree(self, folder: str, fingerprint: bytes) -> tuple[str, int] | None:
        """The (tree hash, bytes below) recorded for ``folder`` if its fingerprint still matches."""
        raw = self.trees.get(folder)
        if raw is None or raw[:32] != fingerprint:
            return None
        _, digest, total = TREE_ENTRY.unpack(raw)
        return digest.hex(), total

    def put_tree(self, folder: str, fingerprint: bytes, digest: str, total: int) -> None:
        self.trees[folder] = TREE_ENTRY.pack(fingerprint, bytes.fromhex(digest), total)
        self.trees_dirty = True

    def retain_trees(self, folders: set[str]) -> None:
        """Drop the cached trees of folders that were not scanned (gone or ignored)."""
        if _drop_others(self.trees, folders):
            self.trees_dirty = True

    def get(self, path: str) -> Entry | None:
        raw = self.entries.get(path)
        return unpack(raw) if raw is not None else None

    def put(self, path: str, entry: Entry) -> None:
        self.entries[path] = pack(entry)
        self.dirty = True

    def retain(self, paths: set[str]) -> None:
        """Drop entries of files that no longer exist."""
        if _drop_others(self.entries, paths):
            self.dirty = True

    def save(self) -> None:
        if self.dirty and _write(self.path, (VERSION, self.entries)):
            self.dirty = False
        if self.trees_dirty and _write(self.trees_path, (TREES_VERSION, self.trees)):
            self.trees_dirty = False


def _read(path: Path, version: int) -> dict[str, bytes]:
    """The dict marshalled in ``path`` with ``version``; empty when missing, older or unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        found, entries = marshal.loads(data)
    except (FileNotFoundError, EOFError, ValueError, TypeError):
        return {}
    return entries if found == version and isinstance(entries, dict) else {}


def _drop_others(entries: dict[str, bytes], keep: set[str]) -> bool:
    """Delete the keys not in ``keep``; whether any was."""
    stale = [p for p in entries if p not in keep]
    for p in stale:
        del entries[p]
    return bool(stale)


def _write(path: Path, value: tuple[int, dict[str, bytes]]) -> bool:
    """Atomically replace ``path`` with ``value`` marshalled; False when that failed."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(marshal.dumps(value))
        os.replace(tmp, path)
    except OSError:
        # The index is only a cache: failing to save it costs a re-hash next time, nothing more.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
