"""Pack files: many small objects in one file, as git packs loose objects.

A first snapshot of thousands of small files used to create one object file per file, and creating
a file cost far more than hashing and compressing a small one (~0.3 ms each on ext4, several times
that right after many files were deleted: the inode allocator scans past recently freed inodes).
A scan that stores many objects at once writes them into pack files instead, one per thread
(see :meth:`workbench.versioning.blobs.BlobStore.packing`); everything else still writes loose objects.

Layout under the cache folder ``packs/``:

- ``<name>.pack``: ``PACK_MAGIC``, then one record per object: its 32-byte address, its length
  (4 bytes, big-endian) and the object exactly as a loose object file holds it (tag byte + body).
- ``<name>.idx``: ``IDX_MAGIC``, the entries sorted by address (32-byte address, 8-byte offset of
  the object's bytes in the pack, 4-byte length), then the BLAKE3 of everything before it.

A pack counts only once its ``.idx`` is in place: the writer finishes the pack, then renames the
index into the folder, so a pack cut short by a crash is never read (gc deletes it). Objects are
immutable and named by their hash, so a reader still holding a pack that gc has since rewritten
reads correct bytes, and every object read is verified against its address anyway.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import blake3

PACK_MAGIC = b"WBPACK1\n"
IDX_MAGIC = b"WBPIDX1\n"
_RECORD = struct.Struct(">32sI")
_ENTRY = struct.Struct(">32sQI")
PACK_OBJECT_MAX = 512 * 1024
"""Objects up to this many bytes (as stored) go into packs while packing; larger ones stay loose."""
PACK_BYTES_MAX = 256 * 1024 * 1024
"""A pack is finished and a new one started past this size (gc rewrites a pack whole)."""
RACY_NS = 50_000_000
"""A folder changed this recently may change again within its timestamp's resolution: list it again."""


class CorruptPackIndexError(Exception):
    """A ``.idx`` file whose checksum or size does not add up."""


def read_index(path: Path) -> list[tuple[bytes, int, int]]:
    """The entries of one ``.idx`` file (address, offset, length); raises CorruptPackIndexError."""
    data = path.read_bytes()
    body, check = data[:-32], data[-32:]
    if (not body.startswith(IDX_MAGIC) or (len(body) - len(IDX_MAGIC)) % _ENTRY.size
            or blake3.blake3(body).digest() != check):
        raise CorruptPackIndexError(str(path))
    return list(_ENTRY.iter_unpack(memoryview(body)[len(IDX_MAGIC):]))


def scan_pack(path: Path) -> list[tuple[bytes, int, int]]:
    """The entries of a pack read from the pack itself (its records name and size each object), up
    to the first record cut short: how a damaged ``.idx`` is rebuilt. Every object read is verified
    against its address anyway, so a wrong entry can only make an object unreadable, never wrong."""
    entries: list[tuple[bytes, int, int]] = []
    with open(path, "rb") as handle:
        if handle.read(len(PACK_MAGIC)) != PACK_MAGIC:
            return entries
        offset = len(PACK_MAGIC)
        size = os.fstat(handle.fileno()).st_size
        while offset + _RECORD.size <= size:
            key, length = _RECORD.unpack(os.pread(handle.fileno(), _RECORD.size, offset))
            offset += _RECORD.size
            if offset + length > size:
                break
            entries.append((key, offset, length))
            offset += length
    return sorted(entries)


def pack_entries(folder: Path, name: str) -> tuple[list[tuple[bytes, int, int]], bool]:
    """A published pack's entries from its index, or rebuilt from the pack when the index is damaged
    (then the second value is True)."""
    try:
        return read_index(folder / f"{name}.idx"), False
    except CorruptPackIndexError:
        return scan_pack(folder / f"{name}.pack"), True


def write_index(folder: Path, name: str, entries: list[tuple[bytes, int, int]]) -> None:
    """Publish ``name``'s index (written beside it, then renamed into place)."""
    body = IDX_MAGIC + b"".join(_ENTRY.pack(*e) for e in sorted(entries))
    tmp = folder / f".{name}.idx.tmp"
    with open(tmp, "wb") as handle:
        handle.write(body + blake3.blake3(body).digest())
    os.chmod(tmp, 0o444)
    os.replace(tmp, folder / f"{name}.idx")


class PackWriter:
    """Appends objects to one new pack; :meth:`finish` publishes it. Used by one thread at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"{time.time_ns():x}-{os.getpid()}-{os.urandom(6).hex()}"
        self.path = folder / f"{self.name}.pack"
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        self.offset = 0
        self.entries: list[tuple[bytes, int, int]] = []
        self.broken = False
        """A write failed part-way (the disk full...): the entries so far stand, nothing more goes in."""
        self._write([PACK_MAGIC])

    def _write(self, parts: list[bytes | memoryview]) -> None:
        """Append ``parts`` with one ``writev`` (another for whatever a short write left)."""
        want = sum(len(p) for p in parts)
        done = os.writev(self.fd, parts)
        if done < want:
            rest = memoryview(b"".join(parts))[done:]
            while rest:
                rest = rest[os.write(self.fd, rest):]
        self.offset += want

    def add(self, digest: str, parts: list[bytes | memoryview]) -> None:
        if self.broken:
            raise OSError(f"pack {self.name} had a failed write")
        length = sum(len(p) for p in parts)
        key = bytes.fromhex(digest)
        try:
            self._write([_RECORD.pack(key, length), *parts])
        except BaseException:
            self.broken = True  # the record may be half written: later offsets would be wrong
            raise
        self.entries.append((key, self.offset - length, length))

    def finish(self) -> list[tuple[bytes, int, int]]:
        """Close the pack and publish its index (nothing written: the pack is removed). Returns the
        entries published."""
        os.close(self.fd)
        if not self.entries:
            self.path.unlink(missing_ok=True)
            return []
        self.entries.sort()
        write_index(self.folder, self.name, self.entries)
        return self.entries

    def abandon(self) -> None:
        """Close and delete the unpublished pack."""
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.path.unlink(missing_ok=True)


class PackIndex:
    """Which packed object lives where, for one cache; loaded lazily, refreshed when packs appear.

    A lookup lists the folder again when its timestamp moved (or moved too recently to be trusted);
    ``force`` lists it regardless when the object is not found (reads of objects that must exist)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._where: dict[bytes, tuple[str, int, int]] = {}
        self._packs: set[str] = set()
        self._stamp: int | None = None
        self._files: dict[str, BinaryIO] = {}
        self._lock = threading.Lock()

    def _refresh(self, force: bool) -> None:
        try:
            stamp = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            return
        if not force and stamp == self._stamp:
            return
        with self._lock:
            names = {n[:-4] for n in os.listdir(self.folder) if n.endswith(".idx")}
            gone = self._packs - names
            if gone:  # gc rewrote packs: start over
                self._where, self._packs = {}, set()
                for name in gone:
                    handle = self._files.pop(name, None)
                    if handle is not None:
                        handle.close()
            for name in sorted(names - self._packs):
                try:
                    entries, _rebuilt = pack_entries(self.folder, name)
                except FileNotFoundError:
                    continue  # removed by gc meanwhile
                for key, offset, length in entries:
                    self._where.setdefault(key, (name, offset, length))
                self._packs.add(name)
            self._stamp = None if time.time_ns() - stamp < RACY_NS else stamp

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread of the parent may have held this one)."""
        self._lock = threading.Lock()

    def find(self, digest: str, *, force: bool = False) -> tuple[str, int, int] | None:
        """(pack name, offset, length) of a packed object, or None. Each lookup checks the folder's
        timestamp first (one stat): a pack that gc removed is never reported present, which would
        let a snapshot skip storing an object that is gone."""
        key = bytes.fromhex(digest)
        self._refresh(False)
        found = self._where.get(key)
        if found is None and force:
            self._refresh(True)
            found = self._where.get(key)
        return found

    def add(self, name: str, entries: list[tuple[bytes, int, int]]) -> None:
        """Entries this process has just published (no need to list the folder to see them)."""
        with self._lock:
            for key, offset, length in entries:
                self._where.setdefault(key, (name, offset, length))
            self._packs.add(name)

    def read(self, digest: str, size: int = -1) -> bytes | None:
        """The object's stored bytes (the first ``size`` of them when not -1), or None if not packed."""
        found = self.find(digest, force=True)
        if found is None:
            return None
        name, offset, length = found
        handle = self._files.get(name)
        if handle is None:
            try:
                handle = open(self.folder / f"{name}.pack", "rb")  # noqa: SIM115 (kept open, closed in close())
            except FileNotFoundError:  # rewritten by gc since we listed: look again
                self._refresh(True)
                return self.read(digest, size) if self.find(digest) != found else None
            with self._lock:
                kept = self._files.setdefault(name, handle)
            if kept is not handle:
                handle.close()
            handle = kept
        want = length if size < 0 else min(size, length)
        return os.pread(handle.fileno(), want, offset)

    def digests(self) -> Iterator[str]:
        self._refresh(True)
        for key in sorted(self._where):
            yield key.hex()

    def length(self, digest: str) -> int | None:
        found = self.find(digest)
        return None if found is None else found[2]

    def pack_path(self, digest: str) -> Path | None:
        found = self.find(digest)
        return None if found is None else self.folder / f"{found[0]}.pack"

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files = {}


def sweep(folder: Path, keep: Callable[[str], bool],
          elsewhere: Callable[[str], bool]) -> tuple[int, int, int]:
    """gc for packs (the caller holds the cache lock exclusively). A pack holding an object that
    ``keep`` refuses, or a copy of one kept ``elsewhere`` (a loose file) or in an earlier pack, is
    rewritten with the rest (the new pack is published before the old one goes); a damaged index is
    rebuilt from its pack; packs without an index (cut short) are deleted. Returns (objects kept,
    objects deleted, bytes freed)."""
    if not folder.is_dir():
        return 0, 0, 0
    kept = deleted = freed = 0
    seen: set[bytes] = set()
    names = sorted(n[:-4] for n in os.listdir(folder) if n.endswith(".idx"))
    for name in names:
        entries, rebuilt = pack_entries(folder, name)
        if rebuilt:
            write_index(folder, name, entries)
        wanted = [e for e in entries if keep(e[0].hex())]
        live = [e for e in wanted if e[0] not in seen and not elsewhere(e[0].hex())]
        seen.update(e[0] for e in live)
        kept += len(live)
        if len(live) == len(entries):
            continue
        deleted += len(entries) - len(wanted)
        freed += sum(e[2] for e in entries) - sum(e[2] for e in live)
        if live:
            writer = PackWriter(folder)
            try:
                with open(folder / f"{name}.pack", "rb") as source:
                    for key, offset, length in live:
                        blob = os.pread(source.fileno(), length, offset)
                        if len(blob) != length:
                            raise OSError(f"pack {name} is shorter than its index says")
                        writer.add(key.hex(), [blob])
            except BaseException:
                writer.abandon()
                raise
            writer.finish()
        (folder / f"{name}.idx").unlink()
        (folder / f"{name}.pack").unlink(missing_ok=True)
    listed = os.listdir(folder)
    published = {n[:-4] for n in listed if n.endswith(".idx")}
    for entry in listed:  # packs cut short, index files never renamed into place
        if (entry.endswith(".pack") and entry[:-5] not in published) or entry.endswith(".idx.tmp"):
            (folder / entry).unlink(missing_ok=True)
    return kept, deleted, freed
