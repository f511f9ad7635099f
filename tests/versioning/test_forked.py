"""Small files read by forked workers: the same snapshot as a serial scan, failures reported the
same way, a dead worker's files read by the parent, nothing left running."""

from __future__ import annotations

import collections
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.host import cpus
from workbench.versioning import chunking, forked
from workbench.versioning.chunking import Ingested

FILES = 600


def _rel(i: int) -> str:
    return f"data/d{i % 7}/e{i % 3}/f{i:04d}.bin"


def _fill(root: Path, seed: int = 5) -> None:
    """Files of 0-20 KiB, some identical, one that looks like a secret, folders several deep."""
    rng = random.Random(seed)
    for i in range(FILES):
        path = root / _rel(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 10 == 0:
            body = b"the same bytes in many files\n" * 50
        else:
            body = rng.randbytes(rng.randint(0, 20 * 1024))
        path.write_bytes(body)
    (root / "data" / "notes.txt").write_text("-----BEGIN RSA PRIVATE KEY-----\nabc\n")


def _children() -> list[int]:
    """This process's live child processes (from /proc)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.append(int(entry))
    return found


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Workspace, Workspace]]:
    made = []
    for name in ("serial", "forked"):
        root = tmp_path / name
        root.mkdir()
        _fill(root)
        made.append(Workspace.init(root)[0])
    yield made[0], made[1]
    for ws in made:
        ws.close()


def _mishaps(monkeypatch: pytest.MonkeyPatch) -> None:
    """One file vanishes when read, one cannot be read, one is appended to while read."""
    real = chunking.ingest
    real_read = chunking._read_all

    def mishap(path: str, *args: object, **kwargs: object) -> Ingested:
        if path.endswith("f0003.bin") and os.path.exists(path):
            os.unlink(path)
        if path.endswith("f0004.bin"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    def growing(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("f0005.bin"):
            with open(os.readlink(f"/proc/self/fd/{fd}"), "ab") as handle:
                handle.write(b"x")
        return data

    monkeypatch.setattr(chunking, "ingest", mishap)
    monkeypatch.setattr(chunking, "_read_all", growing)


def _read_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files this process itself reads from now on (a worker's reads are not seen here)."""
    here: list[str] = []
    me = os.getpid()
    real = chunking.ingest

    def noting(path: str, *args: object, **kwargs: object) -> Ingested:
        if os.getpid() == me:
            here.append(os.path.basename(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chunking, "ingest", noting)
    return here


@pytest.mark.parametrize("batches", [forked.MAX_BATCHES, 7])
def test_forked_snapshot_is_the_serial_snapshot(two: tuple[Workspace, Workspace],
                                                monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    """One file per batch (600 files, up to 1,024 batches), or batches of 86 files and a shorter last."""
    serial, by_workers = two
    monkeypatch.setattr(forked, "MAX_BATCHES", batches)
    _mishaps(monkeypatch)
    here = _read_here(monkeypatch)
    monkeypatch.setenv(forked.ENV, "0")
    one = serial.versions.snapshot()
    monkeypatch.setenv(forked.ENV, "3")
    monkeypatch.setattr(forked, "PUBLISH_FILES", 50)  # several packs per worker
    del here[:]
    many = by_workers.versions.snapshot()
    # the workers read everything; this process only what they could not store (to report it)
    assert sorted(set(here)) == ["f0003.bin", "f0004.bin", "f0005.bin", "notes.txt"]
    assert many.root_tree == one.root_tree
    assert sorted(many.skipped) == sorted(one.skipped)
    reasons = dict(many.skipped)
    assert reasons[_rel(3)] == "vanished"
    assert reasons[_rel(4)].startswith("unreadable (Permission denied)")
    assert reasons[_rel(5)].startswith("changed while being read")
    assert reasons["data/notes.txt"].startswith("looks like a secret")
    assert many.files == one.files == FILES - 3
    assert many.new_bytes >= one.new_bytes  # identical files in two workers are stored twice
    monkeypatch.undo()
    assert by_workers.versions.fsck().ok
    for rel in map(_rel, (1, 70, 599)):
        assert by_workers.versions.read_file(many.id, rel) == (by_workers.root / rel).read_bytes()
    packs = os.listdir(by_workers.versions.store.root / "packs")
    assert all(name[:-5] + ".idx" in packs for name in packs if name.endswith(".pack"))
    assert len([n for n in packs if n.endswith(".idx")]) >= 3
    # the two left out (unreadable, changing) are readable and still now: the rest is as recorded
    assert {c.path: c.change for c in by_workers.versions.status()} == {_rel(4): "added", _rel(5): "added"}
    assert _children() == []


def test_a_worker_that_dies_leaves_its_files_to_the_parent(ws: Workspace,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(ws.root)
    parent = os.getpid()
    real = chunking.ingest

    calls: list[int] = []  # each worker counts its own (a fork's copy)

    def dies_midway(path: str, *args: object, **kwargs: object) -> Ingested:
        if os.getpid() != parent:
            calls.append(1)
            if len(calls) == 31:  # 20 published, 10 written into the pack of the next 20, not published
                os._exit(9)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chunking, "ingest", dies_midway)
    monkeypatch.setattr(forked, "PUBLISH_FILES", 20)
    monkeypatch.setenv(forked.ENV, "2")
    seen: list[tuple[int, int]] = []
    info = ws.versions.snapshot(progress=lambda done, total: seen.append((done, total)))
    monkeypatch.undo()
    assert info.files == FILES
    assert [p for p, _ in info.skipped] == ["data/notes.txt"]
    for rel in map(_rel, (1, 99, 100, 101, 103, 598)):
        assert ws.versions.read_file(info.id, rel) == (ws.root / rel).read_bytes()
    assert ws.versions.fsck().ok
    packs = ws.versions.store.root / "packs"

    def cut_short() -> list[str]:
        names = os.listdir(packs)
        return [n for n in names if n.endswith(".pack") and f"{n[:-5]}.idx" not in names]

    assert cut_short()  # the dead worker's last pack, never published
    ws.versions.gc()
    assert not cut_short()
    assert ws.versions.fsck().ok
    assert seen and seen[-1][0] == seen[-1][1]
    assert _children() == []


def test_a_worker_given_less_of_the_cpu_takes_fewer_batches(ws: Workspace, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker that takes the first batch is made slow (as one that shares its core with the
    parent's threads): the other takes most batches, the two end together, nothing is left over."""
    _fill(ws.root)
    here = _read_here(monkeypatch)
    parent = os.getpid()
    log = tmp_path / "reads.log"
    real = chunking.ingest
    slow: list[bool] = []

    def noting(path: str, *args: object, **kwargs: object) -> Ingested:
        if os.getpid() != parent:
            if not slow:  # this worker's first file: the worker that creates the flag is the slow one
                try:
                    os.close(os.open(tmp_path / "slow", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    slow.append(True)
                except FileExistsError:
                    slow.append(False)
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()}\n")
            if slow[0]:
                time.sleep(0.02)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chunking, "ingest", noting)
    monkeypatch.setenv(forked.ENV, "2")
    info = ws.versions.snapshot()
    assert info.files == FILES
    assert here == ["notes.txt"]
    counts = sorted(collections.Counter(log.read_text().split()).values())
    assert sum(counts) == FILES + 1  # every file once, none twice (the secret: read, then redone here)
    assert len(counts) == 2 and counts[0] * 3 < counts[1]
    assert ws.versions.fsck().ok
    assert _children() == []


def test_workers_forked_from_a_thread_do_the_work(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher and the TUI snapshot from a thread that is not the main one: the forked workers
    still read the files (the parent reads none of them)."""
    import threading

    _fill(ws.root)
    here = _read_here(monkeypatch)
    monkeypatch.setenv(forked.ENV, "2")
    got = []
    thread = threading.Thread(target=lambda: got.append(ws.versions.snapshot()))
    thread.start()
    thread.join()
    assert got and got[0].files == FILES
    assert here == ["notes.txt"]
    assert _children() == []


def test_a_refused_fork_leaves_the_files_to_the_parent(ws: Workspace,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The second fork fails (a process limit): the one worker takes every batch (the parent reads
    only the file the worker could not store, the secret)."""
    _fill(ws.root)
    here = _read_here(monkeypatch)
    real_fork, forks = os.fork, [0]

    def fork_once() -> int:
        forks[0] += 1
        if forks[0] > 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_fork()

    monkeypatch.setattr(forked.os, "fork", fork_once)
    monkeypatch.setenv(forked.ENV, "2")
    info = ws.versions.snapshot()
    assert forks[0] == 2
    assert info.files == FILES
    assert here == ["notes.txt"]
    assert ws.versions.fsck().ok
    assert _children() == []


def test_progress_only_grows_and_ends_at_the_total(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(ws.root)
    monkeypatch.setenv(forked.ENV, "2")
    monkeypatch.setattr(forked, "PROGRESS_FILES", 16)
    seen: list[tuple[int, int]] = []
    ws.versions.snapshot(progress=lambda done, total: seen.append((done, total)))
    assert len(seen) > 3
    dones = [d for d, _ in seen]
    assert dones == sorted(dones)
    assert dones[-1] == seen[-1][1] > 0


def test_a_failing_parent_stops_its_workers(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent fails while the workers still read: they are stopped and reaped, none is left."""
    _fill(ws.root)
    from workbench.versioning import worktree

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the parent fails")

    monkeypatch.setenv(forked.ENV, "2")
    monkeypatch.setattr(worktree, "_settle", broken)
    with pytest.raises(RuntimeError, match="the parent fails"):
        ws.versions.snapshot()
    assert _children() == []
    monkeypatch.undo()
    info = ws.versions.snapshot()
    assert info.files == FILES
    assert ws.versions.fsck().ok


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(forked.ENV, raising=False)
    monkeypatch.setattr(cpus, "cpu_budget", lambda: 4)
    assert forked.worker_count(100) == 0  # a fork costs more than so few files
    assert forked.worker_count(2 * forked.MIN_FILES_PER_WORKER) == 2
    assert forked.worker_count(100_000) == 4
    monkeypatch.setattr(cpus, "cpu_budget", lambda: 1)
    assert forked.worker_count(100_000) == 0  # one core: read in the process itself
    monkeypatch.setenv(forked.ENV, "0")
    assert forked.worker_count(100_000) == 0
    monkeypatch.setenv(forked.ENV, "3")
    assert forked.worker_count(2) == 2
    monkeypatch.setenv(forked.ENV, "nonsense")
    assert forked.worker_count(100_000) == 0


def test_workers_of_a_small_scan_write_loose_objects_as_the_parent_would(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan of fewer files than packs are made for writes loose objects, in the workers too."""
    for i in range(10):
        (ws.root / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    here = _read_here(monkeypatch)
    monkeypatch.setenv(forked.ENV, "2")
    info = ws.versions.snapshot()
    assert here == [] and info.files == 10
    store = ws.versions.store
    packs = store.root / "packs"
    assert not packs.exists() or not [n for n in os.listdir(packs) if n.endswith(".pack")]
    assert all(store.path_of(store_hash).exists()
               for store_hash in (ws.versions.hash_file(ws.root / f"f{i}.txt") for i in range(10)))
    assert ws.versions.fsck().ok


def test_a_lock_held_by_another_thread_at_the_fork_does_not_hang_a_worker(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread of the process (the TUI reading a packed object) holds the pack index's lock
    when the workers are forked: they use a lock of their own and finish."""
    import threading

    _fill(ws.root)
    store = ws.versions.store
    store.ensure_dirs()
    lock = store.packed._lock
    forked_both, release = threading.Event(), threading.Event()
    real_fork, forks = os.fork, [0]

    def counting_fork() -> int:
        pid = real_fork()
        if pid:
            forks[0] += 1
            if forks[0] == 2:
                forked_both.set()
        return pid

    def holder() -> None:
        with lock:
            forked_both.wait(30)
            release.wait(2)  # held while the workers run (the parent waits for it, the workers must not)

    monkeypatch.setattr(forked.os, "fork", counting_fork)
    monkeypatch.setattr(forked, "PUBLISH_FILES", 10)  # packs appear often: workers look at the index
    monkeypatch.setenv(forked.ENV, "2")
    here = _read_here(monkeypatch)
    holding = threading.Thread(target=holder)
    holding.start()
    got: list[object] = []
    snapshot = threading.Thread(target=lambda: got.append(ws.versions.snapshot()), daemon=True)
    snapshot.start()
    snapshot.join(60)
    release.set()
    holding.join()
    assert not snapshot.is_alive(), "the snapshot hung on a lock copied into its workers"
    assert got and here == ["notes.txt"]


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_die_with_a_killed_snapshot(ws: Workspace) -> None:
    """SIGKILL the snapshot process while its workers read: they go too (no orphan reads on), and
    the output pipe is closed at once (the workers hold none of it)."""
    import signal
    import subprocess
    import sys
    import time

    rng = random.Random(3)
    for i in range(6000):
        path = ws.root / "data" / f"d{i % 50}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(16 * 1024))
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "snapshot"], cwd=ws.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, forked.ENV: "2"})
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        workers = _children_of(proc.pid)
        time.sleep(0.005)
    if len(workers) < 2:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the snapshot ended or hung before forking two workers ({proc.returncode})")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # EOF on both pipes: no worker holds them
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(map(_alive, workers))
    again = subprocess.run([sys.executable, "-m", "workbench", "snapshot"], cwd=ws.root,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert ws.versions.fsck().ok


def test_a_worker_dies_when_the_thread_that_forked_it_ends() -> None:
    """PR_SET_PDEATHSIG: a process forks a would-be worker that would sleep 60 s, then exits; the
    worker goes within seconds instead of reading on for nobody."""
    import time

    read_fd, write_fd = os.pipe()
    middle = os.fork()
    if middle == 0:  # the snapshot process, about to be killed
        try:
            me = os.getpid()
            worker = os.fork()
            if worker == 0:
                try:
                    forked._die_with(me)
                    time.sleep(60)
                finally:
                    os._exit(0)
            os.write(write_fd, str(worker).encode())
            time.sleep(0.2)  # the worker has asked the kernel by now
        finally:
            os._exit(0)
    os.close(write_fd)
    worker = int(os.read(read_fd, 32))
    os.close(read_fd)
    os.waitpid(middle, 0)
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(worker)
