"""fsck and gc, several processes at once, and SIGKILL at random moments during a snapshot."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.versioning.worktree import PACK_FROM_FILES


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_fsck_reports_corrupt_and_missing_by_path_and_snapshot(ws: Workspace) -> None:
    _write(ws.root, "good.txt", b"good")
    _write(ws.root, "dir/bad.txt", b"will be corrupted" * 10)
    _write(ws.root, "gone.txt", b"will go missing" * 10)
    info = ws.versions.snapshot()
    assert ws.versions.fsck().ok
    files = ws.versions.files(info.id)
    store = ws.versions.store
    bad = store.path_of(files["dir/bad.txt"].hash)
    bad.chmod(0o644)
    bad.write_bytes(b"R" + b"garbage")
    store.path_of(files["gone.txt"].hash).unlink()
    report = ws.versions.fsck()
    found = {(p.path, p.problem, p.snapshot) for p in report.problems}
    assert found == {("dir/bad.txt", "corrupt", info.id), ("gone.txt", "missing", info.id)}


def test_gc_deletes_only_unreferenced(ws: Workspace) -> None:
    _write(ws.root, "a.txt", b"a" * 1000)
    first = ws.versions.snapshot()
    stray, _ = ws.versions.store.put_bytes(b"nobody references me" * 50)
    pinned = ws.versions.put_file(ws.root / "a.txt")
    report = ws.versions.gc()
    assert report.deleted == 1 and not ws.versions.store.has(stray)
    assert ws.versions.store.has(pinned)
    assert ws.versions.fsck().ok
    assert ws.versions.read_file(first.id, "a.txt") == b"a" * 1000


def test_gc_stops_at_a_missing_tree_and_deletes_nothing(ws: Workspace) -> None:
    """A folder's tree gone from the cache (damage): the files below it cannot be listed, so a sweep
    would delete them unseen. gc stops with one line instead, and fsck names the snapshot."""
    from workbench.errors import WorkbenchError
    from workbench.versioning.trees import DIR, decode_tree

    _write(ws.root, "dir/only-here.bin", b"only referenced below dir/" * 100)
    info = ws.versions.snapshot()
    store = ws.versions.store
    root = ws.db.execute("SELECT root_tree FROM snapshots WHERE id = ?", (info.id,)).fetchone()[0]
    folder = next(ref for name, kind, _m, _s, ref in decode_tree(root, store.read_bytes(root))
                  if name == "dir" and kind == DIR)
    below = ws.versions.files(info.id)["dir/only-here.bin"].hash
    store.path_of(folder).unlink()
    with pytest.raises(WorkbenchError, match=r"gc stopped: folder tree .* is missing"):
        ws.versions.gc()
    assert store.has(below)
    assert any(p.problem == "missing" and p.snapshot == info.id for p in ws.versions.fsck().problems)
    done = run_workbench(ws.root, "gc")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "gc stopped" in done.stderr
    assert store.has(below)


def test_two_concurrent_snapshot_processes(ws: Workspace) -> None:
    for i in range(200):
        _write(ws.root, f"d{i % 7}/f{i}.bin", os.urandom(2000))
    procs = [subprocess.Popen([sys.executable, "-m", "workbench", "snapshot", "--json", "-m", f"p{n}"],
                              cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = {json.loads(out)["id"] for out, _ in outs}
    assert ids <= {s.id for s in ws.versions.log()}
    assert ws.versions.fsck().ok
    assert ws.versions.status() == []


def _digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if ".workbench" in Path(dirpath).relative_to(root).parts:
            continue
        for name in files:
            full = Path(dirpath) / name
            out[str(full.relative_to(root))] = hashlib.sha256(full.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize(("changed", "workers"),
                         [(25, "0"), (2 * PACK_FROM_FILES, "0"), (2 * PACK_FROM_FILES, "2")],
                         ids=["loose", "packed", "forked"])
def test_sigkill_during_snapshot_leaves_a_clean_store(ws: Workspace, tmp_path: Path, changed: int,
                                                      workers: str) -> None:
    """Each round changes ``changed`` files: few enough to be stored as loose objects, or enough
    for the snapshot to write packs (killed while writing or publishing them); ``forked``: the files
    are read by two forked workers, which outlive the killed snapshot for a moment."""
    rng = random.Random(7)
    root = ws.root
    for i in range(400):
        _write(root, f"data/part{i % 10}/f{i}.bin", rng.randbytes(rng.randint(1, 48) * 1024))
    _write(root, "big.bin", rng.randbytes(24 * 1024 * 1024))
    reported: dict[str, dict[str, str]] = {}
    kills = interrupted = 0
    took = 0.5  # how long an uninterrupted snapshot of one round's changes takes here (updated below)
    # At least 20 kills, and more (up to 60) until 8 have landed inside a snapshot: the machine's
    # speed, measured as it goes, can change under other load.
    while kills < 20 or (interrupted < 8 and kills < 60):
        # Change something each round, so every snapshot writes new objects.
        for i in rng.sample(range(400), changed):
            _write(root, f"data/part{i % 10}/f{i}.bin", rng.randbytes(rng.randint(1, 48) * 1024))
        with open(root / "big.bin", "r+b") as handle:
            handle.seek(rng.randrange(20 * 1024 * 1024))
            handle.write(rng.randbytes(300_000))
        expected = _digest_tree(root)
        proc = subprocess.Popen([sys.executable, "-m", "workbench", "snapshot", "--json"], cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, "WORKBENCH_INGEST_PROCESSES": workers})
        started = time.monotonic()
        # Kill somewhere inside the run (start-up included), sized to this machine's speed.
        time.sleep(rng.uniform(0.1, 1.0) * took)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        if proc.returncode == 0:
            took = max(0.2, time.monotonic() - started)
        kills += 1
        if proc.returncode == 0 and out:
            reported[json.loads(out)["id"]] = expected
        else:
            interrupted += 1
    assert interrupted >= 8, "the kills should land while snapshots are being written"
    final = run_workbench(root, "snapshot", "--json")
    assert final.returncode == 0, final.stderr
    reported[json.loads(final.stdout)["id"]] = _digest_tree(root)
    fsck = run_workbench(root, "fsck", "--json")
    assert fsck.returncode == 0 and json.loads(fsck.stdout)["ok"], fsck.stdout
    with Workspace.open(root) as again:
        assert again.versions.status() == []
        for n, (snap, expected) in enumerate(reported.items()):
            dest = tmp_path / f"restored{n}"
            again.versions.checkout(snap, dest)
            assert _digest_tree(dest) == expected
