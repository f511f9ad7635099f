"""The content-addressed blob cache: BLAKE3 addresses, zstd where it pays, verified on read.

Layout under the cache folder (which several projects may share)::

    objects/ab/cdef...   one file per object, named by the BLAKE3 of its *content*, read-only
    packs/               many small objects per file, written by scans that store many at once
                         (see :mod:`workbench.versioning.packs`); read like loose objects
    tmp/                 objects being written (renamed into ``objects/`` when complete)
    locks/gc.lock        shared by writers, exclusive for ``gc``
    projects             databases of the projects that use this cache (for ``gc``)

Every object file starts with one byte saying how the content is stored: ``R`` raw bytes, ``Z`` a
zstd frame, ``C`` a chunk manifest (a large file split by content-defined chunking: its content is
the concatenation of the listed chunk objects). Whatever the representation, the address is the
hash of the logical content, so ``hash_file`` is plain BLAKE3 of the file's bytes.

Writes go to a temporary file that is renamed into place, so a crash (or SIGKILL) leaves either no
object or a complete one, never a torn one. Reads verify the hash and raise
:class:`~workbench.errors.CorruptObjectError` on a mismatch.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import blake3

from workbench.errors import CorruptObjectError, MissingObjectError, WorkbenchError
from workbench.versioning.locks import cache_unreadable
from workbench.versioning.packs import PACK_BYTES_MAX, PACK_OBJECT_MAX, PackIndex, PackWriter

RAW = b"R"
ZSTD = b"Z"
CHUNKED = b"C"
SAMPLE = 64 * 1024
"""Bytes compressed to decide whether zstd pays for a blob."""
MIN_GAIN = 0.9
"""Store compressed only when the sample shrinks below this fraction of its size."""
READ_BLOCK = 4 * 1024 * 1024
_MANIFEST_ENTRY = struct.Struct(">32sQ")
_counter = itertools.count()
_local = threading.local()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The content address of ``data``."""
    return blake3.blake3(data).hexdigest()


def _compressor(level: int) -> Any:
    cache: dict[int, Any] | None = getattr(_local, "zc", None)
    if cache is None:
        cache = _local.zc = {}
    comp = cache.get(level)
    if comp is None:
        import zstandard

        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _decompress(data: bytes) -> bytes:
    dctx = getattr(_local, "zd", None)
    if dctx is None:
        import zstandard

        dctx = _local.zd = zstandard.ZstdDecompressor()
    out: bytes = dctx.decompress(data)
    return out


def encode_manifest(chunks: list[tuple[str, int]]) -> bytes:
    """Serialise a chunk list ``[(hash, length), ...]`` (the body of a ``C`` object)."""
    return b"".join(_MANIFEST_ENTRY.pack(bytes.fromhex(h), n) for h, n in chunks)


def decode_manifest(body: bytes) -> list[tuple[str, int]]:
    if len(body) % _MANIFEST_ENTRY.size:
        raise ValueError("truncated chunk manifest")
    return [(d.hex(), n) for d, n in _MANIFEST_ENTRY.iter_unpack(body)]


class BlobStore:
    """One blob cache folder."""

    def __init__(self, root: Path, compression_level: int = 3) -> None:
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.level = compression_level
        self._made: set[str] = set()
        self.fetch_missing: Callable[[str], bool] | None = None
        """Called with the address of an object absent from the cache (a metadata-only pull left it on
        the remote); True when it fetched it (verified) into the cache. Set by the Workspace."""
        self.packed = PackIndex(root / "packs")
        self._packing: _Packing | None = None

    # -- paths and presence ---------------------------------------------------------------------
    def path_of(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        if os.path.exists(os.path.join(self.objects, digest[:2], digest[2:])):
            return True
        packing = self._packing
        if packing is not None and digest in packing.pending:
            return True
        try:
            return self.packed.find(digest) is not None
        except OSError as exc:  # the packs folder unreadable: the same one-line error as objects/
            raise cache_unreadable(exc, self.root) from None

    @contextmanager
    def packing(self) -> Iterator[None]:
        """Within this block, small objects written by any thread go into pack files (one per
        thread), published when the block ends (also when it raises: what was written is sound).
        Every writer must have returned before the block ends."""
        if self._packing is not None:
            yield
            return
        self.begin_packing()
        try:
            yield
        finally:
            self.publish_packing()

    def after_fork(self) -> None:
        """In a forked child: locks of its own, and no packing block (the parent's is its own)."""
        self.packed.after_fork()
        self._packing = None

    @property
    def is_packing(self) -> bool:
        """Within a :meth:`packing` block."""
        return self._packing is not None

    def begin_packing(self) -> None:
        """Start a packing block that :meth:`publish_packing` ends (a forked worker publishes its
        packs every few thousand files this way)."""
        self._packing = _Packing(self.root / "packs")

    def publish_packing(self) -> None:
        """End the packing block: publish its packs (see :meth:`packing`)."""
        packing, self._packing = self._packing, None
        if packing is not None:
            for name, entries in packing.finish():
                self.packed.add(name, entries)

    def ensure_dirs(self) -> None:
        try:
            for folder in (self.objects, self.tmp, self.root / "locks"):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cache_unreadable(exc, self.root) from None

    def iter_hashes(self) -> Iterator[str]:
        """Every object address present in the cache (loose, then packed ones not also loose)."""
        packed = set(self.packed.digests())
        for digest in self.loose_hashes():
            packed.discard(digest)
            yield digest
        yield from sorted(packed)

    def loose_hashes(self) -> Iterator[str]:
        """The addresses of the objects stored one per file."""
        if not self.objects.is_dir():
            return
        for fan in sorted(os.listdir(self.objects)):
            folder = self.objects / fan
            if len(fan) != 2 or not folder.is_dir():
                continue
            for name in sorted(os.listdir(folder)):
                if len(name) == 62:
                    yield fan + name

    # -- writing --------------------------------------------------------------------------------
    def _write(self, digest: str, parts: list[bytes | memoryview]) -> None:
        packing = self._packing
        if packing is not None and sum(len(p) for p in parts) <= PACK_OBJECT_MAX:
            try:
                packing.add(digest, parts)
                return
            except OSError as exc:
                raise _disk_error(exc, self.root) from None
        fan = digest[:2]
        if fan not in self._made:
            (self.objects / fan).mkdir(parents=True, exist_ok=True)
            self._made.add(fan)
        tmp = os.path.join(self.tmp, f"{os.getpid()}-{threading.get_ident()}-{next(_counter)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileNotFoundError:
            self.ensure_dirs()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            try:
                for part in parts:
                    view = memoryview(part)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
            finally:
                os.close(fd)
            os.rename(tmp, self.path_of(digest))
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise _disk_error(exc, self.root) from None

    def encode(self, data: bytes | memoryview) -> list[bytes | memoryview]:
        """Choose raw or zstd for ``data``: compress a sample first, so incompressible data is cheap."""
        size = len(data)
        if size < 64:
            return [RAW, data]
        comp = _compressor(self.level)
        if size > 2 * SAMPLE:
            sample = data[:SAMPLE]
            if len(_compressor(1).compress(sample)) > MIN_GAIN * len(sample):
                return [RAW, data]
        packed = comp.compress(data)
        if len(packed) > MIN_GAIN * size:
            return [RAW, data]
        return [ZSTD, packed]

    def put_bytes(self, data: bytes | memoryview, digest: str | None = None) -> tuple[str, int]:
        """Store ``data`` unless present; return its address and the bytes newly written (0 if present)."""
        digest = digest or hash_bytes(data)
        if self.has(digest):
            return digest, 0
        parts = self.encode(data)
        self._write(digest, parts)
        return digest, sum(len(p) for p in parts)

    def put_manifest(self, digest: str, chunks: list[tuple[str, int]]) -> int:
        """Record a chunked object (its chunks must be stored already). Returns bytes written."""
        if self.has(digest):
            return 0
        body = encode_manifest(chunks)
        self._write(digest, [CHUNKED, body])
        return len(body) + 1

    # -- reading --------------------------------------------------------------------------------
    def _raw(self, digest: str) -> bytes:
        return self._read(digest, -1)

    def _read(self, digest: str, size: int) -> bytes:
        try:
            with open(self.path_of(digest), "rb") as handle:
                return handle.read(size)
        except FileNotFoundError:
            try:
                packing = self._packing
                packed = packing.read(digest, size) if packing is not None else None
                if packed is None:
                    packed = self.packed.read(digest, size)
            except OSError as exc:
                raise cache_unreadable(exc, self.root) from None
            if packed is not None:
                return packed
            if self.fetch_missing is not None and self.fetch_missing(digest):
                with open(self.path_of(digest), "rb") as handle:
                    return handle.read(size)
            raise MissingObjectError(
                f"object {digest[:12]} is missing from the cache {self.root}",
                "run 'workbench fsck' to see what is affected",
            ) from None
        except OSError as exc:  # the cache folder unreadable, not a folder, an I/O error
            raise cache_unreadable(exc, self.root) from None

    def check_readable(self) -> None:
        """Raise the one-line error when the cache exists but cannot be listed (fsck, gc)."""
        try:
            if self.root.exists() or self.root.is_symlink():
                os.listdir(self.root)
            if self.objects.exists():
                os.listdir(self.objects)
        except OSError as exc:
            raise cache_unreadable(exc, self.root) from None

    def kind(self, digest: str) -> bytes:
        return self._read(digest, 1)

    def chunks(self, digest: str) -> list[tuple[str, int]] | None:
        """The chunk list of a chunked object, or None for a plain one."""
        blob = self._raw(digest)
        if blob[:1] != CHUNKED:
            return None
        try:
            return decode_manifest(blob[1:])
        except ValueError:
            raise self._corrupt(digest) from None

    def where(self, digest: str) -> Path:
        """The file holding an object: its loose file, or the pack it is in."""
        loose = self.path_of(digest)
        if loose.exists():
            return loose
        return self.packed.pack_path(digest) or loose

    def _corrupt(self, digest: str) -> CorruptObjectError:
        return CorruptObjectError(
            f"object {digest[:12]} is corrupt ({self.where(digest)})",
            "run 'workbench fsck'; restore it from another copy or 'workbench gc' after deleting it",
        )

    def _plain(self, digest: str, blob: bytes) -> bytes:
        tag, body = blob[:1], blob[1:]
        if tag == RAW:
            data = body
        elif tag == ZSTD:
            try:
                data = _decompress(body)
            except Exception:
                raise self._corrupt(digest) from None
        else:
            raise self._corrupt(digest)
        if hash_bytes(data) != digest:
            raise self._corrupt(digest)
        return data

    def iter_object(self, digest: str) -> Iterator[bytes]:
        """The content of an object, in pieces, each verified; the whole is verified at the end."""
        blob = self._raw(digest)
        if blob[:1] != CHUNKED:
            yield self._plain(digest, blob)
            return
        try:
            chunks = decode_manifest(blob[1:])
        except ValueError:
            raise self._corrupt(digest) from None
        yield from self._iter_chunks(digest, chunks)

    def _iter_chunks(self, digest: str, chunks: list[tuple[str, int]]) -> Iterator[bytes]:
        """The chunks' contents, each verified, and their concatenation checked against ``digest``."""
        whole = blake3.blake3(max_threads=blake3.blake3.AUTO)
        for chunk_hash, length in chunks:
            data = self._plain(chunk_hash, self._raw(chunk_hash))
            if len(data) != length:
                raise self._corrupt(chunk_hash)
            whole.update(data)
            yield data
        if whole.hexdigest() != digest:
            raise self._corrupt(digest)

    def read_bytes(self, digest: str) -> bytes:
        return b"".join(self.iter_object(digest))

    def export(self, digest: str, dest: Path, mode: int = 0o644) -> None:
        """Write an object's content to ``dest`` via a temp file beside it (verified before rename)."""
        tmp = dest.parent / f".{dest.name}.wbtmp-{os.getpid()}-{next(_counter)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                for piece in self.iter_object(digest):
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view):]
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise _disk_error(exc, dest) from None
            raise

    def verify(self, digest: str) -> tuple[int, list[str]]:
        """Check one object (and its chunks). Returns (logical bytes, chunk addresses)."""
        chunks = self.chunks(digest)
        size = sum(len(p) for p in self.iter_object(digest))
        return size, [h for h, _ in chunks] if chunks else []

    # -- transfer (remotes): an object as stored, moved without re-encoding --------------------------
    def read_encoded(self, digest: str) -> bytes:
        """The object file's bytes exactly as stored (tag byte + body), for sending elsewhere."""
        return self._raw(digest)

    def put_encoded(self, digest: str, blob: bytes) -> int:
        """Store an object received in its stored form, verified first: a raw or zstd object must
        hash to ``digest``; a chunk manifest needs its chunks present and their concatenation must
        hash to ``digest``. Raises CorruptObjectError (nothing written) otherwise; returns bytes written."""
        if self.has(digest):
            return 0
        tag = blob[:1]
        if tag == CHUNKED:
            try:
                for _ in self._iter_chunks(digest, decode_manifest(blob[1:])):
                    pass
            except (ValueError, CorruptObjectError):
                raise self.corrupt_received(digest) from None
        else:
            self.decode_received(digest, blob)
        self._write(digest, [blob])
        return len(blob)

    def decode_received(self, digest: str, blob: bytes) -> bytes:
        """The content of a raw or zstd object received in stored form, verified against ``digest``."""
        try:
            return self._plain(digest, blob)
        except CorruptObjectError:
            raise self.corrupt_received(digest) from None

    def corrupt_received(self, digest: str) -> CorruptObjectError:
        return CorruptObjectError(
            f"object {digest[:12]} received from the remote does not match its hash; it was refused",
            "the copy on the remote is damaged: push it again from a machine that has it",
        )

    def size_on_disk(self, digest: str) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            return self.packed.length(digest) or 0


class _Packing:
    """The pack writers of one :meth:`BlobStore.packing` block: one per writing thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.local = threading.local()
        self.writers: list[PackWriter] = []
        self.pending: dict[str, tuple[Path, int, int]] = {}
        """Objects written but not yet published: (pack file, offset, length)."""
        self.lock = threading.Lock()
        self.order = itertools.count()
        self.last: dict[str, int] = {}
        """The order of each writer's latest object: packs are published in that order."""

    def add(self, digest: str, parts: list[bytes | memoryview]) -> None:
        writer: PackWriter | None = getattr(self.local, "writer", None)
        if writer is None or writer.broken or writer.offset > PACK_BYTES_MAX:
            # a full or failed pack is not published now but with the rest, in order (see finish)
            writer = self.local.writer = PackWriter(self.folder)
            with self.lock:
                self.writers.append(writer)
        writer.add(digest, parts)
        _key, offset, length = writer.entries[-1]
        with self.lock:
            self.pending[digest] = (writer.path, offset, length)
            self.last[writer.name] = next(self.order)

    def read(self, digest: str, size: int) -> bytes | None:
        """An object written in this block (its pack is not published yet), or None."""
        found = self.pending.get(digest)
        if found is None:
            return None
        path, offset, length = found
        with open(path, "rb") as handle:
            return os.pread(handle.fileno(), length if size < 0 else min(size, length), offset)

    def finish(self) -> list[tuple[str, list[tuple[bytes, int, int]]]]:
        """Publish every pack, the one written to last, last: a tree is written after everything
        below it and must not be found before them (a found tree vouches for its whole folder),
        also when the process is killed between two packs."""
        with self.lock:
            writers, self.writers = self.writers, []
        writers.sort(key=lambda w: self.last.get(w.name, -1))
        return [(writer.name, writer.finish()) for writer in writers]


def _disk_error(exc: OSError, where: Path) -> WorkbenchError:
    import errno

    if exc.errno == errno.ENOSPC:
        return WorkbenchError(f"disk full while writing to {where}", "free some space and retry")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WorkbenchError(f"cannot write to {where}: {exc.strerror}", "check its permissions")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return WorkbenchError(f"cannot write to {where}: {exc.strerror}",
                              "a file stands where a folder should be: move it aside")
    return WorkbenchError(f"cannot write to {where}: {exc.strerror or exc}", "check the disk and retry")
