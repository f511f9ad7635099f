"""Large files read in blocks: every cut and the whole-file address equal a cut over the whole file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import blake3
import pyfastcdc
import pytest

from workbench.versioning import chunking
from workbench.versioning.blobs import BlobStore
from workbench.versioning.chunking import ingest

MiB = 1024 * 1024


def _expected(data: bytes) -> list[tuple[str, int]]:
    cut = pyfastcdc.FastCDC(chunking.AVG_CHUNK, min_size=chunking.MIN_CHUNK, max_size=chunking.MAX_CHUNK)
    return [(blake3.blake3(c.data).hexdigest(), c.length) for c in cut.cut_buf(data)]


@pytest.mark.parametrize(("block", "size"), [
    (4096, 9 * MiB + 1),                               # blocks far smaller than the carry
    (MiB, 3 * MiB),                                    # shorter than one buffer
    (MiB, 5 * MiB + 4 * 1024 * 1024),                  # exactly fills two buffers
    (MiB, 5 * MiB + 4 * 1024 * 1024 + 1),              # one byte into the next
    (3 * MiB, 31 * MiB + 12345),                       # many reused buffers
    (16 * MiB, 40 * MiB - 1),                          # the shipped block size
])
@pytest.mark.parametrize("cutter", ["c", "pyfastcdc"])
def test_block_reads_cut_exactly_as_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   block: int, size: int, cutter: str) -> None:
    """Whichever chunker cuts (the C one or pyfastcdc's), each cut is pyfastcdc's over the whole file."""
    if cutter == "pyfastcdc":
        monkeypatch.setenv("WORKBENCH_PURE_PYTHON", "1")
    monkeypatch.setattr(chunking, "BLOCK", block)
    rng = random.Random(size)
    # runs of repeated content, so that some chunks repeat (stored once) and some cuts fall at
    # the edge of a block
    piece = rng.randbytes(3 * MiB + 777)
    data = (piece * (size // len(piece) + 1))[:size]
    data = data[: size // 2] + rng.randbytes(size - size // 2)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    store = BlobStore(tmp_path / "cache")
    store.ensure_dirs()
    got = ingest(str(path), store, threshold=MiB)
    assert got.hash == blake3.blake3(data).hexdigest()
    assert store.chunks(got.hash) == _expected(data)
    assert store.read_bytes(got.hash) == data
    assert not os.listdir(store.tmp)


def test_a_file_that_grows_while_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes appended between the first fstat and the end of the read make the ingest refuse the
    file (the caller retries): a mix of two versions is never recorded."""
    monkeypatch.setattr(chunking, "BLOCK", MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(12 * MiB))
    store = BlobStore(tmp_path / "cache")
    store.ensure_dirs()
    real_readv = os.readv
    grown = False

    def readv_then_grow(fd: int, buffers: list[memoryview]) -> int:
        nonlocal grown
        n = real_readv(fd, buffers)
        if not grown:
            grown = True
            with open(path, "ab") as handle:
                handle.write(b"more")
        return n

    monkeypatch.setattr(chunking.os, "readv", readv_then_grow)
    with pytest.raises(chunking.UnstableFileError):
        ingest(str(path), store, threshold=MiB)
    assert grown


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to read as another user (CI runs as root)")
def test_a_readable_file_of_another_user_is_read() -> None:
    """The kernel refuses O_NOATIME on a file one does not own, even a readable one (a dataset in a
    shared folder, or the outputs of a container that ran as root): the file is read anyway."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="wb-owner-"))
    try:
        folder.chmod(0o755)
        path = folder / "written-by-root.csv"
        path.write_bytes(b"a,b\n1,2\n" * 1000)
        path.chmod(0o644)
        pid = os.fork()
        if pid == 0:  # the child reads it as nobody
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                got = ingest(str(path), None)
                code = 0 if got.hash == blake3.blake3(path.read_bytes()).hexdigest() else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(folder)
