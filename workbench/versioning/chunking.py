"""Reading files into the blob cache: whole for small files, content-defined chunks for large ones.

Large files are cut by FastCDC (the 2020 algorithm, normalized) with an average chunk of 1 MiB: by
:mod:`workbench.versioning._cdc` where it was built (the same cuts, about twice as fast), else by
pyfastcdc's compiled chunker (docs/store.md compares them). Appending to or editing the middle of a
1 GiB file stores only the chunks around the change plus a small manifest.

A file is read between two ``fstat`` calls; if its size, mtime or ctime moved while it was read,
:class:`UnstableFileError` is raised and the caller retries or skips it: content that never existed
on disk as a whole is never recorded under the file's name.
"""

from __future__ import annotations

import functools
import os
import stat as stat_mod
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import blake3

from workbench.host.cpus import cpu_budget
from workbench.versioning.blobs import BlobStore
from workbench.versioning.secrets import HEAD_BYTES, LooksLikeSecret
from workbench.versioning.secrets import sniff as sniff_head

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyfastcdc

AVG_CHUNK = 1024 * 1024
MIN_CHUNK = 256 * 1024
MAX_CHUNK = 4 * 1024 * 1024
SMALL_READ_LIMIT = 8 * 1024 * 1024
CHUNK_WORKERS = max(2, cpu_budget())
"""Threads storing the chunks of large files (hash, compress, write), shared by every large file."""
BLOCK = 16 * 1024 * 1024
"""Bytes of a large file read at once (into a buffer of MAX_CHUNK + BLOCK bytes)."""
BUFFERS = 3
"""Buffers a large file is read into in turn: one being read, one being cut, while the chunks of
the others are stored."""
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
"""How a file is opened to be read: never through a symlink, never waiting on a FIFO."""
_OPEN_NOATIME = _OPEN | getattr(os, "O_NOATIME", 0)
"""The same without updating its access time, where the kernel allows it (only the file's owner)."""
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    """A forked child has none of the parent's pool threads: it makes its own when it needs one."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


class UnstableFileError(Exception):
    """The file changed while it was being read."""


class NotRegularFileError(Exception):
    """The path is no longer a regular file (replaced by a link, a folder, a FIFO...)."""


@dataclass(frozen=True)
class Ingested:
    """A file read once: its address, the stat it was read under, and what was newly stored."""

    hash: str
    size: int
    mode: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    started_ns: int
    new_bytes: int
    secret: str | None = None
    """With ``sniff="keep"``: the kind of credential the file's first KiB looks like (kept anyway)."""


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns
        and a.st_ctime_ns == b.st_ctime_ns and a.st_ino == b.st_ino
    )


class _HashingReader:
    """A file wrapper that feeds every byte read through it into a whole-file hasher."""

    def __init__(self, fd: int, hasher: blake3.blake3) -> None:
        self.fd = fd
        self.hasher = hasher
        self.total = 0

    def readinto(self, buf: memoryview) -> int:
        n = os.readv(self.fd, [buf])
        if n:
            self.hasher.update(buf[:n])
            self.total += n
        return n


def ingest(path: str, store: BlobStore | None, threshold: int = SMALL_READ_LIMIT, *,
           sniff: str = "") -> Ingested:
    """Hash (and with ``store``, store) one regular file, refusing content that moved under us.

    ``sniff``: "refuse" raises :class:`~workbench.versioning.secrets.LooksLikeSecret` (before storing
    anything) when the file's first KiB looks like a credential; "keep" reads it anyway and says so in
    ``Ingested.secret``; "" does not look. Raises FileNotFoundError if it vanished,
    PermissionError if unreadable, UnstableFileError, NotRegularFileError.
    """
    started = time.time_ns()
    try:
        fd = os.open(path, _OPEN_NOATIME)
    except PermissionError:  # O_NOATIME is refused on a file of another user's, even a readable one
        fd = os.open(path, _OPEN)
    try:
        before = os.fstat(fd)
        if not stat_mod.S_ISREG(before.st_mode):
            raise NotRegularFileError(path)
        size = before.st_size
        new_bytes = 0
        secret = None
        if sniff and size >= threshold:  # a large file is read in pieces: its head costs one pread
            secret = _sniffed(os.pread(fd, HEAD_BYTES, 0), sniff)
        if size < threshold:
            data = _read_all(fd, size)
            if len(data) != size:
                raise UnstableFileError(path)
            if sniff:
                secret = _sniffed(data, sniff)
            digest = blake3.blake3(data).hexdigest()
            if store is not None:
                _, new_bytes = store.put_bytes(data, digest)
        elif store is None:
            hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            reader = _HashingReader(fd, hasher)
            buf = memoryview(bytearray(16 * 1024 * 1024))
            while reader.readinto(buf):
                pass
            if reader.total != size:
                raise UnstableFileError(path)
            digest = hasher.hexdigest()
        else:
            digest, new_bytes = _store_chunked(fd, size, store, path)
        after = os.fstat(fd)
        if not _same(before, after):
            raise UnstableFileError(path)
    finally:
        os.close(fd)
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        raise
    if not _same(before, now):
        raise UnstableFileError(path)
    return Ingested(
        digest, size, stat_mod.S_IMODE(before.st_mode) & 0o777, before.st_mtime_ns, before.st_ino,
        before.st_ctime_ns, started, new_bytes, secret,
    )


def _sniffed(data: bytes, mode: str) -> str | None:
    kind = sniff_head(data)
    if kind is not None and mode == "refuse":
        raise LooksLikeSecret(kind)
    return kind


def _read_all(fd: int, size: int) -> bytes:
    """The file's bytes: ``size`` (its fstat size) of them, or another count if it changed. Asks
    for one byte more, to notice a file that grew; once exactly ``size`` bytes are read it does not
    read again to see the end (the fstat after the read notices a file that grew meanwhile)."""
    parts: list[bytes] = []
    remaining = size + 1
    while remaining > 0:
        piece = os.read(fd, remaining)
        if not piece:
            break
        parts.append(piece)
        remaining -= len(piece)
        if remaining == 1:
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def chunker() -> pyfastcdc.FastCDC:
    import pyfastcdc

    return pyfastcdc.FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def cut_lengths(data: memoryview, whole: bool) -> list[int]:
    """The lengths of the chunks cut from the start of ``data``, in order. Unless ``whole``, it stops
    where fewer than :data:`MAX_CHUNK` bytes are left (a cut there could move once more bytes follow),
    so every cut is the one a cut over the whole file makes. Runs without the GIL in C where
    :mod:`workbench.versioning._cdc` was built (``WORKBENCH_PURE_PYTHON=1``: never); the cuts are
    pyfastcdc's either way."""
    try:
        if os.environ.get("WORKBENCH_PURE_PYTHON"):
            raise ImportError("WORKBENCH_PURE_PYTHON: pyfastcdc's chunker")
        from workbench.versioning import _cdc
    except ImportError:
        lengths: list[int] = []
        start = 0
        cuts = iter(chunker().cut_buf(data))
        while start < len(data) and (whole or len(data) - start >= MAX_CHUNK):
            length = next(cuts).length
            lengths.append(length)
            start += length
        return lengths
    return _cdc.cuts(data, _gear_table(), *_masks(), MIN_CHUNK, AVG_CHUNK, MAX_CHUNK, whole)


@functools.cache
def _gear_table() -> bytes:
    """pyfastcdc's gear table as 256 native uint64 (one table for both chunkers)."""
    from pyfastcdc.py.constants import GEAR

    return GEAR.tobytes()


@functools.cache
def _masks() -> tuple[int, int]:
    """pyfastcdc's masks for :data:`AVG_CHUNK` at its default normalization (level 1): small, large."""
    from pyfastcdc import utils
    from pyfastcdc.py.constants import MASKS

    bits = utils.logarithm2(AVG_CHUNK)
    return MASKS[bits + 1], MASKS[bits - 1]


def _chunk_pool() -> ThreadPoolExecutor:
    """One pool per process for storing the chunks of large files (BLAKE3, zstd and writes release
    the GIL), so a single 1 GiB file is hashed and compressed on every core, not one."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=CHUNK_WORKERS, thread_name_prefix="wb-chunk")
        return _POOL


def _store_chunked(fd: int, size: int, store: BlobStore, path: str) -> tuple[str, int]:
    """Read the file once, in order, under the caller's fstat check, on a read-ahead thread; cut it
    into chunks here while the next block is read; store each chunk in the chunk pool straight from
    the block it was read into (no copy); hash the whole file on a thread of its own, block by block,
    in order. Reading, cutting, the whole-file hash and the chunks' hashes and compression thus all
    overlap: no one of them waits for another on the way through a large file.

    The file is read in blocks of :data:`BLOCK` bytes into :data:`BUFFERS` buffers used in turn, each
    block at offset :data:`MAX_CHUNK` of its buffer. A chunk is cut only where at least MAX_CHUNK
    bytes follow (or the file ends), so each cut is the one a cut over the whole file makes; the
    fewer than MAX_CHUNK bytes after the last such cut are copied in front of the next block, so
    reading never waits for cutting. A buffer is read into again only once every chunk cut from it
    is stored and the whole-file hash has read it. Every chunk is stored and every read has ended
    before this returns, also when it raises, so nothing still writes or reads afterwards."""
    from concurrent.futures import ThreadPoolExecutor, wait

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    pool = _chunk_pool()
    buffers = [memoryview(bytearray(MAX_CHUNK + BLOCK)) for _ in range(BUFFERS)]
    reading: list[int] = [0] * BUFFERS
    """Chunks of each buffer still in ``flight`` (the buffers bound what is in flight)."""
    hashed: list[Future[object] | None] = [None] * BUFFERS
    flight: deque[tuple[Future[tuple[str, int]], int, int]] = deque()
    chunks: list[tuple[str, int]] = []
    new_bytes = total = 0

    def settle_oldest() -> None:
        nonlocal new_bytes
        fut, length, slot = flight.popleft()
        reading[slot] -= 1
        digest, written = fut.result()
        new_bytes += written
        chunks.append((digest, length))

    def free(slot: int) -> None:
        """Wait until nothing reads buffer ``slot`` any more (its chunks, the whole-file hash)."""
        while reading[slot]:
            settle_oldest()
        done = hashed[slot]
        if done is not None:
            done.result()
            hashed[slot] = None

    def read_block(slot: int) -> int:
        """On the read-ahead thread: up to BLOCK bytes into buffer ``slot``; fewer only at the end."""
        buf = buffers[slot]
        filled = MAX_CHUNK
        while filled < len(buf):
            got = os.readv(fd, [buf[filled:]])
            if not got:
                break
            filled += got
        return filled - MAX_CHUNK

    whole = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wb-whole")
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wb-read")
    reads: list[Future[int] | None] = [None] * BUFFERS
    carry = memoryview(b"")
    block = 0
    try:
        reads[0] = ahead.submit(read_block, 0)
        while True:
            slot = block % BUFFERS
            got = reads[slot]
            assert got is not None
            fresh = got.result()
            reads[slot] = None
            eof = fresh < BLOCK
            if not eof:  # read the next block while this one is cut
                following = (block + 1) % BUFFERS
                free(following)
                reads[following] = ahead.submit(read_block, following)
            buf = buffers[slot]
            total += fresh
            if fresh:
                hashed[slot] = whole.submit(hasher.update, buf[MAX_CHUNK:MAX_CHUNK + fresh])
            begin = MAX_CHUNK - len(carry)
            buf[begin:MAX_CHUNK] = carry
            data = buf[begin:MAX_CHUNK + fresh]
            start = 0
            for length in cut_lengths(data, eof):
                chunk = data[start:start + length]
                flight.append((pool.submit(store.put_bytes, chunk), length, slot))
                reading[slot] += 1
                start += length
            carry = data[start:]
            if eof:
                break
            block += 1
        for slot in range(BUFFERS):
            free(slot)
    finally:
        for fut, _, _ in flight:
            fut.cancel()
        waited: list[Future[Any]] = [fut for fut, _, _ in flight]
        wait(waited + [h for h in hashed if h is not None] + [r for r in reads if r is not None])
        ahead.shutdown(wait=True)
        whole.shutdown(wait=True)
    if total != size:
        raise UnstableFileError(path)
    digest = hasher.hexdigest()
    new_bytes += store.put_manifest(digest, chunks)
    return digest, new_bytes


def hash_path(path: str) -> str:
    """BLAKE3 of a file's content (retrying while it changes under us)."""
    for _ in range(5):
        try:
            return ingest(path, None).hash
        except UnstableFileError:
            time.sleep(0.01)
    return ingest(path, None).hash
