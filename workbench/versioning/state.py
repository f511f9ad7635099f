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

    def load(self) -> StatIndex:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
            version, entries = marshal.loads(data)
            if version == VERSION and isinstance(entries, dict):
                self.entries = entries
        except (FileNotFoundError, EOFError, ValueError, TypeError):
            self.entries = {}
        return self

    def get(self, path: str) -> Entry | None:
        raw = self.entries.get(path)
        return unpack(raw) if raw is not None else None

    def put(self, path: str, entry: Entry) -> None:
        self.entries[path] = pack(entry)
        self.dirty = True

    def retain(self, paths: set[str]) -> None:
        """Drop entries of files that no longer exist."""
        stale = [p for p in self.entries if p not in paths]
        for p in stale:
            del self.entries[p]
        if stale:
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(marshal.dumps((VERSION, self.entries)))
            os.replace(tmp, self.path)
        except OSError:
            # The index is only a cache: failing to save it costs a re-hash next time, nothing more.
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        self.dirty = False
