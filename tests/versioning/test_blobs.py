"""The blob cache: addresses, compression choice, read-only objects, verification, chunking."""

from __future__ import annotations

import os
import random
import stat
import threading
from pathlib import Path

import blake3
import pytest

from workbench.errors import CorruptObjectError, MissingObjectError
from workbench.versioning.blobs import CHUNKED, RAW, ZSTD, BlobStore
from workbench.versioning.chunking import ingest


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    s = BlobStore(tmp_path / "cache")
    s.ensure_dirs()
    return s


def test_round_trip_and_address(store: BlobStore) -> None:
    data = b"hello world\n" * 1000
    digest, written = store.put_bytes(data)
    assert digest == blake3.blake3(data).hexdigest()
    assert written > 0
    assert store.read_bytes(digest) == data
    assert store.put_bytes(data) == (digest, 0)  # present: nothing written


def test_compressible_is_zstd_incompressible_is_raw(store: BlobStore) -> None:
    text, _ = store.put_bytes(b"a,b,c,1.0\n" * 50_000)
    noise, _ = store.put_bytes(os.urandom(300_000))
    assert store.kind(text) == ZSTD
    assert store.size_on_disk(text) < 50_000
    assert store.kind(noise) == RAW


def test_objects_are_read_only_and_temp_is_clean(store: BlobStore) -> None:
    digest, _ = store.put_bytes(b"x" * 100)
    mode = store.path_of(digest).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert os.listdir(store.tmp) == []


def test_corrupt_and_missing_are_detected(store: BlobStore) -> None:
    digest, _ = store.put_bytes(os.urandom(1000))
    path = store.path_of(digest)
    raw = bytearray(path.read_bytes())
    raw[500] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptObjectError):
        store.read_bytes(digest)
    with pytest.raises(MissingObjectError):
        store.read_bytes("ab" * 32)


def _cdc_file(path: Path, size: int, seed: int = 1) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def test_large_file_is_chunked_and_append_stores_little(store: BlobStore, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = _cdc_file(big, 24 * 1024 * 1024)
    first = ingest(str(big), store, threshold=1024 * 1024)
    assert first.hash == blake3.blake3(data).hexdigest()
    assert store.kind(first.hash) == CHUNKED
    assert store.read_bytes(first.hash) == data
    with open(big, "ab") as handle:
        handle.write(os.urandom(1024 * 1024))
    second = ingest(str(big), store, threshold=1024 * 1024)
    assert second.hash != first.hash
    assert second.new_bytes < 8 * 1024 * 1024, second.new_bytes
    # A few bytes changed in the middle: only the chunks around them are new.
    with open(big, "r+b") as handle:
        handle.seek(12 * 1024 * 1024)
        handle.write(b"EDITED!")
    third = ingest(str(big), store, threshold=1024 * 1024)
    assert third.new_bytes < 10 * 1024 * 1024, third.new_bytes
    assert store.read_bytes(third.hash) == big.read_bytes()


def test_chunk_corruption_is_detected(store: BlobStore, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    _cdc_file(big, 6 * 1024 * 1024, seed=3)
    digest = ingest(str(big), store, threshold=1024 * 1024).hash
    chunks = store.chunks(digest)
    assert chunks and len(chunks) > 1
    victim = store.path_of(chunks[1][0])
    victim.chmod(0o644)
    victim.write_bytes(b"R" + b"\0" * 10)
    with pytest.raises(CorruptObjectError):
        store.read_bytes(digest)


class _ThreadRecordingStore(BlobStore):
    """A real blob store that notes which threads stored objects."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.threads: set[str] = set()

    def put_bytes(self, data: bytes | memoryview, digest: str | None = None) -> tuple[str, int]:
        self.threads.add(threading.current_thread().name)
        return super().put_bytes(data, digest)


def test_large_file_chunks_are_stored_in_parallel_in_file_order(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunks of one large file are stored on the chunk pool's threads (every core), yet the
    manifest lists them exactly as a sequential cut would, and the file reads back byte for byte."""
    import pyfastcdc

    from workbench.versioning import chunking

    monkeypatch.setattr(chunking, "BLOCK", 2 * 1024 * 1024)  # more blocks than buffers: reused ones
    store = _ThreadRecordingStore(tmp_path / "cache")
    store.ensure_dirs()
    big = tmp_path / "big.bin"
    data = _cdc_file(big, 20 * 1024 * 1024, seed=7)
    got = ingest(str(big), store, threshold=1024 * 1024)
    cut = pyfastcdc.FastCDC(chunking.AVG_CHUNK, min_size=chunking.MIN_CHUNK, max_size=chunking.MAX_CHUNK)
    expected = [(blake3.blake3(c.data).hexdigest(), c.length) for c in cut.cut_buf(data)]
    assert len(data) > 2 * chunking.BUFFERS * chunking.BLOCK
    assert store.chunks(got.hash) == expected
    assert store.read_bytes(got.hash) == data
    assert got.new_bytes == sum(store.size_on_disk(h) for h, _ in expected) + store.size_on_disk(got.hash)
    assert any(name.startswith("wb-chunk") for name in store.threads), store.threads
    assert not os.listdir(store.tmp)


def test_a_chunk_write_failure_is_raised_after_every_chunk_settled(tmp_path: Path) -> None:
    """A chunk that cannot be stored (a file stands where its folder should be) fails the ingest: the
    error is raised, not lost on a pool thread, and no temp file is left behind."""
    store = BlobStore(tmp_path / "cache")
    store.ensure_dirs()
    for fan in range(256):
        (store.objects / f"{fan:02x}").write_bytes(b"")
    big = tmp_path / "big.bin"
    _cdc_file(big, 12 * 1024 * 1024, seed=9)
    with pytest.raises(OSError):
        ingest(str(big), store, threshold=1024 * 1024)
    assert not os.listdir(store.tmp)
    assert not any(store.iter_hashes())
