"""Snapshots, status, log, ids, ignore rules, odd names and odd files (the service API)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.errors import AmbiguousIdError, UnknownIdError, WorkbenchError
from workbench.versioning import chunking
from workbench.versioning.state import StatIndex


def _write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _changes(ws: Workspace) -> dict[str, str]:
    return {c.path: c.change for c in ws.versions.status()}


def test_snapshot_status_log_cycle(ws: Workspace) -> None:
    root = ws.root
    _write(root, "a.txt", "one\n")
    _write(root, "src/b.py", "print(1)\n")
    assert _changes(ws) == {"a.txt": "added", "src/b.py": "added"}
    first = ws.versions.snapshot("first")
    assert first.created and first.files == 2 and first.bytes == 13
    assert ws.versions.status() == []
    again = ws.versions.snapshot("nothing new")
    assert not again.created and again.id == first.id
    _write(root, "a.txt", "two!\n")
    (root / "src" / "b.py").unlink()
    _write(root, "c.bin", b"\0" * 10)
    changes = {c.path: (c.change, c.size, c.old_size) for c in ws.versions.status()}
    assert changes == {"a.txt": ("modified", 5, 4), "src/b.py": ("deleted", 0, 9), "c.bin": ("added", 10, 0)}
    second = ws.versions.snapshot("second")
    assert second.parent == first.id
    log = ws.versions.log()
    assert [s.id for s in log] == [second.id, first.id]
    assert ws.versions.resolve("latest") == second.id
    assert ws.versions.resolve("latest~1") == first.id
    assert ws.versions.resolve(first.id[:8]) == first.id
    with pytest.raises(UnknownIdError):
        ws.versions.resolve("latest~5")
    with pytest.raises(UnknownIdError):
        ws.versions.resolve("zzzz")
    assert ws.versions.read_file(first.id, "a.txt") == b"one\n"
    assert ws.versions.read_file("latest", "a.txt") == b"two!\n"


def test_ambiguous_prefix(ws: Workspace) -> None:
    ids = []
    for i in range(40):
        _write(ws.root, "f.txt", str(i))
        ids.append(ws.versions.snapshot().id)
    firsts = [i[0] for i in ids]
    common = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(AmbiguousIdError):
        ws.versions.resolve(common)


def test_files_hash_matches_hash_file_and_iter_object(ws: Workspace) -> None:
    ws.config.store.chunk_threshold = 1024 * 1024
    small = _write(ws.root, "small.txt", "abc" * 100)
    big = _write(ws.root, "data/big.bin", os.urandom(3 * 1024 * 1024))
    os.symlink("small.txt", ws.root / "link")
    info = ws.versions.snapshot()
    files = ws.versions.files(info.id)
    assert files["small.txt"].hash == ws.versions.hash_file(small)
    assert files["data/big.bin"].hash == ws.versions.hash_file(big)
    assert files["link"].kind == "link" and files["link"].target == "small.txt"
    assert b"".join(ws.versions.iter_object(files["data/big.bin"].hash)) == big.read_bytes()
    out = ws.root.parent / "exported.bin"
    ws.versions.export_object(files["data/big.bin"].hash, out)
    assert out.read_bytes() == big.read_bytes()


def test_unchanged_subtrees_are_shared_and_skipped_by_diff(ws: Workspace) -> None:
    for d in range(5):
        for f in range(20):
            _write(ws.root, f"d{d}/f{f}.txt", f"{d}-{f}" * 50)
    first = ws.versions.snapshot()
    _write(ws.root, "d3/f7.txt", "changed")
    second = ws.versions.snapshot()
    assert second.new_bytes < 2000  # one blob and two small trees, not the rest
    reads: list[str] = []
    store = ws.versions.store
    original = store.read_bytes

    def counting(digest: str) -> bytes:
        reads.append(digest)
        return original(digest)

    store.read_bytes = counting  # type: ignore[method-assign]
    ws.versions.reader._cache.clear()
    ws.versions.reader._load = counting
    changes = ws.versions.diff(first.id, second.id)
    assert [(c.path, c.change) for c in changes] == [("d3/f7.txt", "modified")]
    assert len(reads) == 4  # both roots and both d3 trees; d0..d2, d4 never read


def test_default_ignores_keep_secrets_out(ws: Workspace) -> None:
    for rel in (".env", ".env.local", "keys/server.pem", "tls.key", "id_rsa", "id_rsa.pub",
                "conf/kubeconfig", "my-kubeconfig.yaml", ".netrc", ".venv/lib/x.py", "venv/bin/python",
                "pkg/__pycache__/m.pyc", ".git/HEAD", "node_modules/x/index.js"):
        _write(ws.root, rel, "secret")
    _write(ws.root, "keep.txt", "fine")
    info = ws.versions.snapshot()
    assert sorted(ws.versions.files(info.id)) == ["keep.txt"]
    matcher = ws.versions.ignore_matcher()
    assert matcher(".env") and matcher("a/b/server.pem") and matcher(".venv/") and not matcher("keep.txt")


def test_workbenchignore_with_negation(ws: Workspace) -> None:
    _write(ws.root, ".workbenchignore", "*.log\n!important.log\nbuild/\n!.env.example\n")
    for rel in ("a.log", "important.log", "build/out.o", "src/build.py", ".env.example", ".env"):
        _write(ws.root, rel, "x")
    info = ws.versions.snapshot()
    assert sorted(ws.versions.files(info.id)) == [".env.example", ".workbenchignore", "important.log",
                                                  "src/build.py"]


def test_symlinks_recorded_not_followed(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _write(outside, "secret.txt", "do not version")
    os.symlink(outside, ws.root / "out")
    os.symlink("/nonexistent/target", ws.root / "dangling")
    info = ws.versions.snapshot()
    files = ws.versions.files(info.id)
    assert set(files) == {"out", "dangling"}
    assert files["out"].kind == "link" and files["out"].target == str(outside)


def test_fifo_is_skipped_and_reported(ws: Workspace) -> None:
    os.mkfifo(ws.root / "pipe")
    _write(ws.root, "a.txt", "a")
    info = ws.versions.snapshot()
    assert set(ws.versions.files(info.id)) == {"a.txt"}
    assert [p for p, _ in info.skipped] == ["pipe"]


def test_odd_names_empty_files_and_folders(ws: Workspace, tmp_path: Path) -> None:
    bad = os.fsdecode(b"caf\xe9-latin1.txt")
    names = {bad: b"latin", "line\nbreak.txt": b"nl", "with space.txt": b"sp", "empty.txt": b""}
    for name, data in names.items():
        _write(ws.root, name, data)
    (ws.root / "empty-dir" / "nested-empty").mkdir(parents=True)
    info = ws.versions.snapshot()
    files = ws.versions.files(info.id)
    assert set(files) == set(names)
    assert files["empty.txt"].size == 0
    dest = tmp_path / "checkout"
    ws.versions.checkout(info.id, dest)
    assert os.fsencode(bad) in os.listdir(os.fsencode(dest))
    for name, data in names.items():
        assert (dest / name).read_bytes() == data
    assert (dest / "empty-dir" / "nested-empty").is_dir()


def test_file_vanishing_between_listing_and_reading(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(ws.root, "stays.txt", "a")
    _write(ws.root, "goes.txt", "b")
    real = chunking.ingest

    def vanish_first(path: str, *args: object, **kwargs: object) -> chunking.Ingested:
        if path.endswith("goes.txt") and os.path.exists(path):
            os.unlink(path)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("workbench.versioning.chunking.ingest", vanish_first)
    info = ws.versions.snapshot()
    assert set(ws.versions.files(info.id)) == {"stays.txt"}
    assert ("goes.txt", "vanished") in info.skipped


def test_file_changing_while_read_is_not_recorded(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _write(ws.root, "busy.txt", "version 1")
    first = ws.versions.snapshot()
    target.write_text("version 2, longer")
    real_read = chunking._read_all

    def growing(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        with open(target, "a") as handle:  # a writer appends while we read
            handle.write("x")
        return data

    monkeypatch.setattr(chunking, "_read_all", growing)
    info = ws.versions.snapshot()
    recorded = ws.versions.read_file(info.id, "busy.txt")
    assert recorded == b"version 1"  # its previous, whole version: never a torn one
    assert any(p == "busy.txt" and r.startswith("changed while being read") for p, r in info.skipped)
    monkeypatch.undo()
    assert ws.versions.read_file(first.id, "busy.txt") == b"version 1"


def test_unreadable_file_is_skipped_not_fatal(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read is listed in ``skipped``; the snapshot of the rest goes ahead."""
    _write(ws.root, "locked.txt", "x")
    _write(ws.root, "fine.txt", "y")
    real = chunking.ingest

    def denied(path: str, *args: object, **kwargs: object) -> chunking.Ingested:
        if path.endswith("locked.txt"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("workbench.versioning.chunking.ingest", denied)
    info = ws.versions.snapshot()
    assert info.skipped == [("locked.txt", "unreadable (Permission denied); left out")]
    assert ws.versions.read_file(info.id, "fine.txt") == b"y"


def test_permission_error_on_the_cache_is_still_one_clear_error(ws: Workspace,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the file's own read errors are skipped: a cache that refuses writes stops the snapshot."""
    _write(ws.root, "locked.txt", "x")

    def denied(path: str, *args: object, **kwargs: object) -> chunking.Ingested:
        raise PermissionError(13, "Permission denied", str(ws.paths.default_cache / "objects"))

    monkeypatch.setattr("workbench.versioning.chunking.ingest", denied)
    with pytest.raises(WorkbenchError, match=r"cannot read locked.txt: Permission denied") as info:
        ws.versions.snapshot()
    assert "\n" not in info.value.one_line() and ws.versions.log() == []


def test_stat_index_skips_unchanged_files_and_obeys_racy_rule(ws: Workspace,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(30):
        _write(ws.root, f"f{i}.txt", f"content {i}")
    ws.versions.snapshot()
    time.sleep(0.25)
    # Pretend the file system's timestamps are 10 s coarse: every entry is racy, so re-hashed.
    monkeypatch.setattr("workbench.versioning.worktree.FINE_MARGIN_NS", 10**10)
    assert ws.versions.working_tree().hashed == 30
    monkeypatch.undo()
    time.sleep(0.25)
    assert ws.versions.working_tree().hashed <= 30  # entries refreshed, read well after the change...
    assert ws.versions.working_tree().hashed == 0  # ...so now trusted: nothing is read
    # Same size, mtime put back: ctime still moves, so the change is seen.
    target = ws.root / "f3.txt"
    before = target.stat()
    target.write_text("CONTENT 3")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _changes(ws) == {"f3.txt": "modified"}
    index = StatIndex(ws.paths.store_dir / "index").load()
    assert len(index.entries) == 30


def test_changed_paths_hint_is_recorded(ws: Workspace) -> None:
    _write(ws.root, "a.txt", "1")
    ws.versions.snapshot()
    _write(ws.root, "a.txt", "2")
    info = ws.versions.snapshot(kind="auto", changed_paths=["a.txt"])
    assert info.kind == "auto" and info.changed_paths == ["a.txt"]
    assert ws.versions.read_file(info.id, "a.txt") == b"2"


def test_editor_files_are_left_out_unless_the_user_keeps_them(ws: Workspace, project_dir: Path) -> None:
    """Swap files, backups, lock links and autosaves of vim and emacs are never versioned; a
    ``.workbenchignore`` line re-includes a kind, as with any default."""
    (project_dir / "train.py").write_text("x\n")
    for name in (".train.py.swp", ".train.py.swo", "train.py~", "#train.py#", "data.csv.swx"):
        (project_dir / name).write_text("editor\n")
    os.symlink("user@host.1:2", project_dir / ".#train.py")
    info = ws.versions.snapshot("editors")
    assert set(ws.versions.files(info.id)) == {"train.py"}
    (project_dir / ".workbenchignore").write_text("!*~\n")
    kept = ws.versions.snapshot("backups kept")
    assert set(ws.versions.files(kept.id)) == {"train.py", "train.py~", ".workbenchignore"}
