#!/usr/bin/env python3
"""Benchmark the auto-versioning watcher (``workbench watch``) as a real process.

1. Latency: from a file's write to its snapshot being committed (the watcher's ``snapshot`` JSON
   line, printed right after the commit), median and p95 over N edits, one edit at a time, on a
   small project and on the large one.
2. Idle CPU: the watcher's CPU use (psutil, user + system, of the whole process) over a quiet
   window on a project of 100,000 files, once its start-up catch-up is done.

Targets (issue 3): latency under the quiet interval + 300 ms; idle CPU under 1% of one core.

    python scripts/bench_watch.py [--files 100000] [--edits 100] [--big-edits 20] [--quiet 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

# Children run as an installed package does: with cached bytecode (a dev shell may disable it).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def sh(cwd: Path, *argv: str) -> None:
    subprocess.run([sys.executable, "-m", "workbench", *argv], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, env=CHILD_ENV)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def inotify_watches(pid: int) -> int:
    """Inotify watches the process holds (Linux /proc)."""
    total = 0
    base = Path(f"/proc/{pid}/fdinfo")
    for info in base.iterdir():
        try:
            total += sum(1 for line in info.read_text().splitlines() if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


def folders(root: Path) -> int:
    return 1 + sum(len(dirs) for _dirpath, dirs, _files in os.walk(root))


def make_project(root: Path, files: int) -> None:
    root.mkdir(parents=True)
    per_dir = 100
    for d in range((files + per_dir - 1) // per_dir):
        folder = root / f"d{d // 100:03d}" / f"s{d % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(min(per_dir, files - d * per_dir)):
            (folder / f"f{i:03d}.txt").write_text(f"file {d} {i}\n")
    sh(root, "init")
    sh(root, "snapshot", "-m", "baseline")


class Watch:
    def __init__(self, root: Path, quiet: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "watch", "--json", "--quiet", str(quiet), "--no-prune"],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=CHILD_ENV)
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            arrived = time.time()
            with self.cond:
                self.events.append((arrived, json.loads(line)))
                self.cond.notify_all()

    def wait(self, kind: str, start: int, path: str | None = None, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for arrived, ev in self.events[start:]:
                    if ev["event"] == kind and (path is None or path in ev["paths"]):
                        return arrived
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"no {kind} event (rc={self.proc.poll()})")
                self.cond.wait(1)

    def settle(self, quiet: float) -> None:
        """Wait for the catch-up snapshot (or its absence) and a quiet moment."""
        self.wait("started", 0)
        time.sleep(quiet + 1.0)
        last = -1
        while last != len(self.events):
            last = len(self.events)
            time.sleep(quiet + 0.5)

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def latency(root: Path, edits: int, quiet: float) -> list[float]:
    watch = Watch(root, quiet)
    try:
        watch.settle(quiet)
        out: list[float] = []
        target = root / "edited.txt"
        for i in range(edits):
            mark = len(watch.events)
            t0 = time.time()
            target.write_text(f"edit {i}\n")
            out.append(watch.wait("snapshot", mark, "edited.txt") - t0)
            time.sleep(0.05)
        return out
    finally:
        watch.stop()


def idle_cpu(root: Path, seconds: float, quiet: float) -> tuple[float, float, int]:
    watch = Watch(root, quiet)
    try:
        t0 = time.monotonic()
        watch.wait("started", 0)
        startup = time.monotonic() - t0
        watch.settle(quiet)
        proc = psutil.Process(watch.proc.pid)
        before = proc.cpu_times()
        w0 = time.monotonic()
        time.sleep(seconds)
        after = proc.cpu_times()
        wall = time.monotonic() - w0
        used = (after.user - before.user) + (after.system - before.system)
        return 100.0 * used / wall, startup, inotify_watches(watch.proc.pid)
    finally:
        watch.stop()


def summary(name: str, values: list[float], quiet: float) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    med = statistics.median(values)
    target = quiet + 0.3
    ok = "meets" if p95 < target else "misses"
    return (f"{name}: median {med * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms over {len(values)} edits "
            f"(target < quiet {quiet:g} s + 300 ms = {target * 1000:.0f} ms: p95 {ok} it)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000, help="files in the large project")
    parser.add_argument("--small-files", type=int, default=1_000, help="files in the small project")
    parser.add_argument("--edits", type=int, default=100, help="edits timed on the small project")
    parser.add_argument("--big-edits", type=int, default=20, help="edits timed on the large project")
    parser.add_argument("--quiet", type=float, default=1.0, help="the watcher's quiet interval")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU window")
    args = parser.parse_args()
    print(f"workbench watch benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        small = Path(tmp) / "small"
        t = time.monotonic()
        make_project(small, args.small_files)
        print(f"small project: {args.small_files} files "
              f"(made and snapshotted in {time.monotonic() - t:.1f} s)")
        print(summary(f"latency, {args.small_files} files", latency(small, args.edits, args.quiet),
                      args.quiet))
        big = Path(tmp) / "big"
        t = time.monotonic()
        make_project(big, args.files)
        print(f"large project: {args.files} files (made and snapshotted in {time.monotonic() - t:.1f} s)")
        cpu, startup, watches = idle_cpu(big, args.idle_seconds, args.quiet)
        ok = "meets" if cpu < 1.0 else "misses"
        print(f"idle CPU, {args.files} files: {cpu:.2f}% of one core over {args.idle_seconds:g} s "
              f"(target < 1%: {ok} it); watcher start-up {startup:.1f} s")
        print(f"inotify watches: {watches} for the {folders(big) - folders(big / '.workbench')} project "
              f"folders (a recursive watch of everything would take {folders(big)}, .workbench included)")
        if args.big_edits:
            print(summary(f"latency, {args.files} files", latency(big, args.big_edits, args.quiet),
                          args.quiet))
    print(f"done; {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
