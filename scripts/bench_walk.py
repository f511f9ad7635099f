#!/usr/bin/env python3
"""Is a compiled directory scanner worth it for ``workbench status``? Measured, in one run.

    python scripts/bench_walk.py               # 10,000 files in 100 folders
    python scripts/bench_walk.py --files 100000

Times, on the same fresh tree, best and median of 7 runs each in one process (no start-up cost),
in 3 interleaved rounds (the best round of each is shown):

- ``os.scandir`` + ``DirEntry.stat``: the least a pure-Python walk can do (list, stat, recurse);
- ``workbench walk``: Workbench's own walk (``versioning.worktree.walk``): the same, plus the ignore
  rules and the stat index lookup that decides which files need hashing;
- ``scandir-rs`` (``Scandir(...).collect()`` with stat results): a Rust scanner from PyPI, installed
  into its own virtualenv (``~/.cache/workbench-bench/venv-walk``), never a dependency of workbench.

and prints each as a ratio of the pure-Python walk. A scanner that cannot be installed is reported
missing and the script exits non-zero after printing the rest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_store import load, peer_venv  # noqa: E402

RUNS = 7
ROUNDS = 3

TIMER = r"""
import json, os, statistics, sys, time
root, runs = sys.argv[1], int(sys.argv[2])

def py_walk(top):
    count, stack = 0, [top]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count

def rs_walk(top):
    import scandir_rs
    entries, _errors = scandir_rs.Scandir(top, return_type=scandir_rs.ReturnType.Ext).collect()
    return sum(1 for e in entries if e.is_file)

out = {}
for name, fn in (("python", py_walk), ("scandir-rs", rs_walk)):
    try:
        fn(root)
    except ImportError:
        continue
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        count = fn(root)
        times.append(time.perf_counter() - start)
    out[name] = [min(times), statistics.median(times), count]
print(json.dumps(out))
"""


def workbench_walk(root: Path, runs: int) -> tuple[float, float, int]:
    """Workbench's walk as ``status`` runs it: after a snapshot, every file vouched for by the index."""
    from workbench.core.workspace import Workspace
    from workbench.versioning.worktree import walk

    if not (root / ".workbench").exists():
        subprocess.run([sys.executable, "-m", "workbench", "init"], cwd=root, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "workbench", "snapshot"], cwd=root, check=True,
                       capture_output=True)
        time.sleep(0.2)  # past the racy window, so the index vouches for every file
        subprocess.run([sys.executable, "-m", "workbench", "status"], cwd=root, check=True,
                       capture_output=True)
    with Workspace.open(root) as ws:
        versions = ws.versions
        rules, index = versions._rules(), versions._index()
        times, todo_counts = [], []
        for _ in range(runs):
            todo: list[object] = []
            start = time.perf_counter()
            walk(str(root), rules, [], index.entries, frozenset(), todo, [])  # type: ignore[arg-type]
            times.append(time.perf_counter() - start)
            todo_counts.append(len(todo))
    assert set(todo_counts) == {0}, f"files left to hash after a snapshot: {todo_counts}"
    return min(times), statistics.median(times), len(index.entries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-walk-") as tmp:
        root = Path(tmp)
        for i in range(args.files):
            folder = root / f"d{i % 100:03d}"
            folder.mkdir(exist_ok=True)
            (folder / f"f{i}.txt").write_bytes(b"x" * (i % 512))
        print(f"walk of {args.files:,} files in 100 folders, {RUNS} runs each, in process; {load()}")
        timings: dict[str, list[float]] = {}
        ours = peer_venv("venv-walk", "scandir-rs>=2.9", "python")

        def keep(name: str, found: list[float]) -> None:  # the best round of each
            if name not in timings or found[0] < timings[name][0]:
                timings[name] = found

        for _ in range(ROUNDS):  # interleaved, so a swing in the machine's speed hits all three
            for python in (Path(sys.executable), ours):
                if python is None:
                    continue
                done = subprocess.run([str(python), "-c", TIMER, str(root), str(RUNS)], capture_output=True,
                                      text=True, check=True)
                for name, found in json.loads(done.stdout).items():
                    keep(name, found)
            keep("workbench walk", list(workbench_walk(root, RUNS)))
        base = timings["python"][0]
        for name in ("python", "workbench walk", "scandir-rs"):
            if name in timings:
                b, m, n = timings[name]
                print(f"  {name:<16} best {b * 1000:7.1f} ms  median {m * 1000:7.1f} ms  {int(n):>7} files  "
                      f"{b / base:5.2f}x os.scandir")
        print(f"  {load()}")
        if "scandir-rs" not in timings:
            print("scandir-rs could not be installed: no ratio against it")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
