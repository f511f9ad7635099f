"""Pack files: a scan that stores many objects writes them into packs; they read, verify, gc, fsck,
travel to remotes and survive a crash like loose objects do."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import blake3
import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.versioning import blobs
from workbench.versioning import packs as packs_module
from workbench.versioning.blobs import BlobStore
from workbench.versioning.packs import PACK_OBJECT_MAX, PackWriter, read_index
from workbench.versioning.worktree import PACK_FROM_FILES


def _files(root: Path, count: int, prefix: str = "data") -> dict[str, bytes]:
    out = {}
    for i in range(count):
        rel = f"{prefix}/d{i % 7}/f{i}.bin"
        data = os.urandom(100 + i * 37) if i % 2 else f"row,{i}\n".encode() * (i + 1)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[rel] = data
    return out


def _loose(store: BlobStore) -> set[str]:
    return set(store.loose_hashes())


def _packs(store: BlobStore) -> list[Path]:
    folder = store.root / "packs"
    return sorted(folder.glob("*.idx")) if folder.is_dir() else []


def test_many_new_files_go_into_packs_and_read_back(ws: Workspace, tmp_path: Path) -> None:
    files = _files(ws.root, PACK_FROM_FILES * 2)
    (ws.root / "big.bin").write_bytes(os.urandom(3 * PACK_OBJECT_MAX))  # whole, and larger: loose
    info = ws.versions.snapshot()
    store = ws.versions.store
    assert _packs(store), "a scan storing this many files writes packs"
    entries = ws.versions.files(info.id)
    for rel in files:
        digest = entries[rel].hash
        assert digest not in _loose(store) and store.has(digest)
    assert entries["big.bin"].hash in _loose(store)
    assert ws.versions.fsck().ok
    ws.versions.checkout(info.id, tmp_path / "out")
    for rel, data in files.items():
        assert (tmp_path / "out" / rel).read_bytes() == data
    # A new process (fresh index) reads them too, and sees nothing changed.
    with Workspace.open(ws.root) as again:
        assert again.versions.status() == []
        assert again.versions.read_file(info.id, "data/d3/f10.bin") == files["data/d3/f10.bin"]


def test_a_small_change_writes_loose_objects(ws: Workspace) -> None:
    _files(ws.root, PACK_FROM_FILES - 10)
    ws.versions.snapshot()
    assert not _packs(ws.versions.store)
    assert len(_loose(ws.versions.store)) > PACK_FROM_FILES - 10


def test_another_store_sees_packs_published_after_it_looked(tmp_path: Path) -> None:
    reader, writer = BlobStore(tmp_path / "cache"), BlobStore(tmp_path / "cache")
    writer.ensure_dirs()
    data = b"packed by another process" * 10
    digest = blake3.blake3(data).hexdigest()
    assert not reader.has(digest)  # its index is loaded (empty) before the pack exists
    with writer.packing():
        writer.put_bytes(data)
        assert writer.read_bytes(digest) == data  # readable before it is published
    assert reader.has(digest) and reader.read_bytes(digest) == data
    assert reader.size_on_disk(digest) > 0 and digest in set(reader.iter_hashes())


def test_a_pack_cut_short_is_never_read_and_gc_removes_it(ws: Workspace) -> None:
    store = ws.versions.store
    store.ensure_dirs()
    data = b"written, never published" * 20
    digest = blake3.blake3(data).hexdigest()
    writer = PackWriter(store.root / "packs")
    writer.add(digest, store.encode(data))
    os.close(writer.fd)  # the process died here: no .idx
    assert not store.has(digest)
    with pytest.raises(Exception, match="missing"):
        store.read_bytes(digest)
    ws.versions.gc()
    assert list((store.root / "packs").iterdir()) == []


def test_gc_rewrites_packs_keeping_only_what_is_referenced(ws: Workspace) -> None:
    files = _files(ws.root, PACK_FROM_FILES * 2)
    info = ws.versions.snapshot()
    store = ws.versions.store
    strays = [os.urandom(300) for _ in range(5)]
    with store.packing():
        stray_ids = [store.put_bytes(data)[0] for data in strays]
    before = _packs(store)
    report = ws.versions.gc()
    assert report.deleted == len(strays) and report.freed_bytes >= sum(len(s) for s in strays)
    assert not any(store.has(d) for d in stray_ids)
    assert _packs(store) != before
    assert ws.versions.fsck().ok
    for rel, data in files.items():
        assert ws.versions.read_file(info.id, rel) == data
    # Nothing left to collect: a second gc deletes nothing and rewrites nothing.
    after = _packs(store)
    assert ws.versions.gc().deleted == 0 and _packs(store) == after


def test_gc_drops_packed_copies_of_loose_objects(ws: Workspace) -> None:
    _files(ws.root, PACK_FROM_FILES * 2)
    info = ws.versions.snapshot()
    store = ws.versions.store
    digest = ws.versions.files(info.id)["data/d1/f1.bin"].hash
    store._write(digest, [store.read_encoded(digest)])  # the same object, also loose
    report = ws.versions.gc()
    assert report.deleted == 0
    assert digest in _loose(store) and all(digest not in {e[0].hex() for e in read_index(p)}
                                           for p in _packs(store))
    assert ws.versions.fsck().ok


def test_fsck_names_a_corrupt_packed_object(ws: Workspace) -> None:
    _files(ws.root, PACK_FROM_FILES * 2)
    info = ws.versions.snapshot()
    store = ws.versions.store
    digest = ws.versions.files(info.id)["data/d2/f9.bin"].hash
    name, offset, length = store.packed.find(digest)  # type: ignore[misc]
    pack = store.root / "packs" / f"{name}.pack"
    pack.chmod(0o644)
    with open(pack, "r+b") as handle:
        handle.seek(offset + length - 1)
        last = handle.read(1)
        handle.seek(offset + length - 1)
        handle.write(bytes([last[0] ^ 0xFF]))
    with Workspace.open(ws.root) as again:
        report = again.versions.fsck()
    assert {(p.path, p.problem) for p in report.problems} == {("data/d2/f9.bin", "corrupt")}


def test_packs_are_published_last_written_last(tmp_path: Path) -> None:
    """A tree is written after everything below it; its pack must not be found before theirs."""
    store = BlobStore(tmp_path / "cache")
    store.ensure_dirs()
    published: list[str] = []
    real_add = store.packed.add
    store.packed.add = lambda name, entries: (published.append(name), real_add(name, entries))  # type: ignore[method-assign]
    with store.packing():
        thread = threading.Thread(target=lambda: store.put_bytes(b"a file's content" * 9))
        thread.start()
        thread.join()
        store.put_bytes(b"the tree above it" * 9)  # written last, from another thread's pack
        last = store._packing.local.writer.name  # type: ignore[union-attr]
    assert len(published) == 2 and published[-1] == last


def test_packed_project_round_trips_through_a_file_remote(tmp_path: Path) -> None:
    a, share, b = tmp_path / "a", tmp_path / "share", tmp_path / "b"
    share.mkdir()
    a.mkdir()
    files = _files(a, PACK_FROM_FILES * 2)
    assert run_workbench(a, "init").returncode == 0
    assert run_workbench(a, "snapshot").returncode == 0
    assert list((a / ".workbench" / "cache" / "packs").glob("*.idx"))
    assert run_workbench(a, "remote", "add", "nfs", share.as_uri()).returncode == 0
    pushed = run_workbench(a, "push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["objects_sent"] > len(files)
    assert run_workbench(tmp_path, "clone", share.as_uri(), str(b)).returncode == 0
    for rel, data in files.items():
        assert (b / rel).read_bytes() == data


def test_a_damaged_pack_index_is_rebuilt_from_its_pack(ws: Workspace, tmp_path: Path) -> None:
    files = _files(ws.root, PACK_FROM_FILES * 2)
    info = ws.versions.snapshot()
    store = ws.versions.store
    for index in _packs(store):
        index.chmod(0o644)
        index.write_bytes(index.read_bytes()[:-1] + b"!")  # its checksum no longer adds up
    with Workspace.open(ws.root) as again:  # a fresh process: nothing is missing, nothing is wrong
        assert again.versions.fsck().ok
        again.versions.checkout(info.id, tmp_path / "out")
        assert again.versions.gc().deleted == 0  # and gc writes the index again
    for index in _packs(store):
        assert read_index(index)
    for rel, data in files.items():
        assert (tmp_path / "out" / rel).read_bytes() == data


def test_full_packs_roll_over_and_all_publish_in_order(ws: Workspace, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "PACK_BYTES_MAX", 20_000)  # a new pack every few objects
    files = _files(ws.root, PACK_FROM_FILES * 2)
    info = ws.versions.snapshot()
    assert len(_packs(ws.versions.store)) > 5
    assert ws.versions.fsck().ok
    ws.versions.checkout(info.id, tmp_path / "out")
    assert all((tmp_path / "out" / rel).read_bytes() == data for rel, data in files.items())


def test_a_failed_write_never_publishes_a_wrong_offset(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path / "cache")
    store.ensure_dirs()
    datas = [os.urandom(200 + i) for i in range(6)]
    real_writev, calls = os.writev, [0]

    def flaky(fd: int, parts: list[bytes]) -> int:
        calls[0] += 1
        if calls[0] == 4:  # the pack's magic, two objects, then part-way through the third: disk full
            os.write(fd, b"".join(parts)[:5])
            raise OSError(28, "No space left on device")
        return real_writev(fd, parts)

    monkeypatch.setattr(packs_module.os, "writev", flaky)
    stored = []
    with store.packing():
        for data in datas:
            try:
                stored.append(store.put_bytes(data)[0])
            except Exception as exc:
                assert "space" in str(exc).lower() or "disk" in str(exc).lower(), exc
    monkeypatch.setattr(packs_module.os, "writev", real_writev)
    assert calls[0] > 4
    assert len(stored) == len(datas) - 1
    fresh = BlobStore(tmp_path / "cache")
    for digest in stored:  # each one published reads back whole and verified
        assert fresh.read_bytes(digest) == datas[[blake3.blake3(d).hexdigest() for d in datas].index(digest)]


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writev that writes only part of a record (as a signal or a pipe-like file system may make
    it) is completed: every object reads back whole."""
    store = BlobStore(tmp_path / "cache")
    store.ensure_dirs()
    datas = [os.urandom(3000 + i) for i in range(5)]
    real_writev = os.writev

    def half(fd: int, parts: list[bytes]) -> int:
        joined = b"".join(parts)
        return real_writev(fd, [joined[: max(1, len(joined) // 2)]])

    monkeypatch.setattr(packs_module.os, "writev", half)
    with store.packing():
        stored = [store.put_bytes(data)[0] for data in datas]
    monkeypatch.undo()
    fresh = BlobStore(tmp_path / "cache")
    assert [fresh.read_bytes(digest) for digest in stored] == datas
