#!/usr/bin/env python3
"""Benchmark Workbench's start-up cost and its no-watcher ``status`` against git and DVC, in one run.

    python scripts/bench_startup.py               # 10,000 small files (a few seconds to set up)
    python scripts/bench_startup.py --files 2000  # a smaller tree
    python scripts/bench_startup.py --no-dvc      # skip DVC (no dvc/status ratio is printed then)
    python scripts/bench_startup.py --baseline ../main   # also time another checkout, interleaved

Each command runs as a whole process, as a user would type it, several times interleaved; the
median and the best are printed in milliseconds with the machine's load average:

- ``python -c pass`` (the bare interpreter) beside ``workbench run -- python -c pass``: the
  difference is what ``workbench run`` adds before and after the child (target: at most 60 ms),
  served by a warm recorder (docs/tracking.md, "Warm start"; the script starts one with a cold run
  and waits until it listens) and, beside it, cold (``WORKBENCH_WARM=0``: every import paid);
- ``workbench --version`` and ``workbench status`` on an empty project (target: under 80 ms);
- on a tree of N small files, snapshotted (and committed / ``dvc add``-ed for the peers), nothing
  changed: ``workbench status --no-watcher`` vs ``git status --porcelain`` vs ``dvc status -q``
  (targets: at least 10x faster than dvc, within 3x of git). The first ``status`` after the
  snapshot scans the folder and seals it (docs/store.md, "The status seal"); the timed ones are
  answered from the seal, as git answers from its index. Beside them: the same command with the
  seal's stat loop in Python instead of C (``WORKBENCH_PURE_PYTHON=1``), and with seals turned off
  (``WORKBENCH_STATUS_SEAL=0``, a full scan every time).

The peers are looked for beside this interpreter (``dvc`` in the same virtualenv) and on PATH. A
peer that cannot be found is reported as missing and the script exits non-zero after printing what it
could, never printing a ratio against nothing. Data lives in a fresh temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

# Children run as an installed package does: with cached bytecode.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV["WORKBENCH_WARM_IDLE"] = "60"  # the warm recorder this script starts leaves a minute after it
COLD = {"WORKBENCH_WARM": "0"}
GIT_ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


Command = tuple[list[str], Path, dict[str, str]]


def run(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run a command to completion; return its wall seconds (fails loudly)."""
    start = time.perf_counter()
    env = {**CHILD_ENV, **(env or {})}
    done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took


def interleaved(commands: dict[str, Command], rounds: int) -> dict[str, list[float]]:
    """Each command ``rounds`` times, round-robin, so that load swings hit all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv, cwd, env in commands.values():  # warm the page cache and the bytecode once
        run(argv, cwd, env)
    for _ in range(rounds):
        for name, (argv, cwd, env) in commands.items():
            times[name].append(run(argv, cwd, env))
    return times


def wb(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "workbench", *args]


def wait_for_recorder(cwd: Path, env: dict[str, str], python: str = sys.executable,
                      timeout: float = 30.0) -> bool:
    """Start a warm recorder with a cold run (if none serves these processes) and wait until it
    listens; False when none did within ``timeout`` (a checkout without warm start)."""
    code = "from workbench.cli import warm; print(warm.socket_name(warm.fingerprint())[1:].decode())"
    done = subprocess.run([python, "-c", code], cwd=cwd, env={**CHILD_ENV, **env}, capture_output=True,
                          text=True)
    if done.returncode != 0:
        return False
    name = "@" + done.stdout.strip()
    run(wb("run", "--", "true", python=python), cwd, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/unix", encoding="utf-8") as table:
            if any(line.split()[-1] == name for line in table if len(line.split()) >= 8):
                return True
        time.sleep(0.05)
    return False


def installed_python(work: Path) -> str:
    """A virtualenv holding this checkout as its built wheel, the way ``pip install`` leaves it (a
    development install runs setuptools' editable finder, ~13 ms, at every interpreter start). Its
    dependencies are reached through a ``.pth`` line to this interpreter's site-packages. Returns
    its python."""
    repo = Path(__file__).resolve().parent.parent
    src = work / "wheel-src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(repo / name, src / name)
    for name in ("workbench", "themes"):
        shutil.copytree(repo / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = work / "dist"
    build = subprocess.run([sys.executable, "-c",
                            f"from setuptools import build_meta as b; print(b.build_wheel({str(out)!r}))"],
                           cwd=src, capture_output=True, text=True)
    if build.returncode != 0:
        raise SystemExit(f"building the wheel failed:\n{build.stderr[-2000:]}")
    venv = work / "installed"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], work)
    python = str(venv / "bin" / "python")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site, deps = (Path(subprocess.run([exe, "-c", purelib], capture_output=True, text=True, check=True)
                       .stdout.strip()) for exe in (python, sys.executable))
    with zipfile.ZipFile(out / build.stdout.strip().splitlines()[-1]) as wheel:
        wheel.extractall(site)
    (site / "zz-workbench-bench-deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    run([python, "-m", "compileall", "-q", str(site / "workbench")], work)  # as pip does on install
    return python


def checkout_env(source: Path) -> dict[str, str]:
    """Children import workbench from ``source`` (a checkout) ahead of the installed one."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(source), os.environ.get("PYTHONPATH", "")) if p)}


def make_tree(root: Path, files: int) -> None:
    """``files`` small text files, 100 to a folder."""
    for i in range(files):
        folder = root / "data" / f"d{i // 100:04d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:06d}.txt").write_text(f"row {i}\n" * (1 + i % 50))


def clone(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


def dvc_bin() -> str | None:
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else shutil.which("dvc")


def report(label: str, samples: list[float]) -> float:
    med = statistics.median(samples)
    print(f"  {label:<56} median {med * 1000:7.1f} ms   best {min(samples) * 1000:7.1f} ms")
    return med


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000, help="files in the status tree (default 10,000)")
    ap.add_argument("--rounds", type=int, default=15, help="runs of each start-up command (default 15)")
    ap.add_argument("--no-dvc", action="store_true", help="do not time dvc status")
    ap.add_argument("--installed", action="store_true",
                    help="also time this checkout installed from its wheel (no editable finder)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout of workbench to time beside this one (rows marked 'baseline')")
    args = ap.parse_args()
    here = checkout_env(Path(__file__).resolve().parent.parent)
    base = checkout_env(args.baseline.resolve()) if args.baseline else None
    missing: list[str] = []
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, {load()}")

    with tempfile.TemporaryDirectory(prefix="wb-bench-startup-") as tmp:
        work = Path(tmp)
        # -- start-up --------------------------------------------------------------------------------
        empty = work / "empty"
        empty.mkdir()
        run(wb("init"), empty, here)
        run(wb("snapshot", "-m", "empty"), empty, here)
        # (label, interpreter, environment): this checkout in its development install, the baseline
        # checkout, and this checkout installed from its wheel (how users get it)
        setups = [("", sys.executable, here)]
        if base is not None:
            setups.append(("baseline: ", sys.executable, base))
        if args.installed:
            setups.append(("installed wheel: ", installed_python(work), {}))
        commands: dict[str, Command] = {}
        warm: dict[str, bool] = {}
        for label, python, env in setups:
            warm[label] = wait_for_recorder(empty, env, python)
            commands.update({
                f"{label}python -c pass": ([python, "-c", "pass"], empty, env),
                f"{label}workbench run -- python -c pass": (
                    wb("run", "--", python, "-c", "pass", python=python), empty, env),
                f"{label}workbench run (cold) -- python -c pass": (
                    wb("run", "--", python, "-c", "pass", python=python), empty, {**env, **COLD}),
                f"{label}workbench --version": (wb("--version", python=python), empty, env),
                f"{label}workbench status (empty project)": (wb("status", python=python), empty, env),
            })
        start = interleaved(commands, args.rounds)
        print(f"\nstart-up ({args.rounds} runs each, interleaved; {load()})")
        med = {name: report(name, samples) for name, samples in start.items()}
        for label, _, _ in setups:
            bare = med[f"{label}python -c pass"]
            added = med[f"{label}workbench run -- python -c pass"] - bare
            cold = med[f"{label}workbench run (cold) -- python -c pass"] - bare
            how = "with its warm recorder" if warm[label] else "(NO warm recorder started: cold)"
            print(f"  -> {label}workbench run {how} adds {added * 1000:.1f} ms to the bare command "
                  f"(target: at most 60 ms); cold, {cold * 1000:.1f} ms")
            for name in ("workbench --version", "workbench status (empty project)"):
                print(f"  -> {label}{name}: {med[label + name] * 1000:.1f} ms (target: under 80 ms)")
        # count back: every `workbench run` above (one to start each recorder, then a warm and a
        # cold one per round and the warm-up) is recorded, succeeded, with its command
        listed = subprocess.run(wb("runs", "--json", "--limit", "0"), cwd=empty, env={**CHILD_ENV, **here},
                                capture_output=True, text=True, check=True)
        runs = json.loads(listed.stdout)
        expected = len(setups) * (1 + 2 * (args.rounds + 1))
        succeeded = sum(1 for r in runs if r["status"] == "succeeded")
        print(f"  runs recorded: {len(runs)} of {expected}, {succeeded} succeeded")
        if len(runs) != expected or succeeded != expected:
            raise SystemExit("runs went missing or failed: the timings above are not of recorded runs")

        # -- status on N files ----------------------------------------------------------------------
        src = work / "src"
        t = time.perf_counter()
        make_tree(src, args.files)
        print(f"\nstatus, nothing changed, {args.files} files (made in {time.perf_counter() - t:.1f} s)")
        trees: dict[str, Command] = {}
        wbroot = work / "wb"
        clone(src, wbroot)
        run(wb("init"), wbroot, here)
        run(wb("snapshot", "-m", "bench"), wbroot, here)
        time.sleep(1.1)  # past the racy-timestamp window, as a user's later command would be
        run(wb("status", "--no-watcher"), wbroot, here)
        trees["workbench status --no-watcher"] = (wb("status", "--no-watcher"), wbroot, here)
        trees["workbench status --no-watcher (seal checked in Python)"] = (
            wb("status", "--no-watcher"), wbroot, {**here, "WORKBENCH_PURE_PYTHON": "1"})
        trees["workbench status --no-watcher (no seal: a full scan)"] = (
            wb("status", "--no-watcher"), wbroot, {**here, "WORKBENCH_STATUS_SEAL": "0"})
        if base is not None:
            trees["baseline: workbench status --no-watcher"] = (wb("status", "--no-watcher"), wbroot, base)
        if shutil.which("git"):
            groot = work / "git"
            clone(src, groot)
            run(["git", "init", "-q"], groot, GIT_ENV)
            run(["git", "add", "-A"], groot, GIT_ENV)
            run(["git", "commit", "-q", "-m", "bench"], groot, GIT_ENV)
            trees["git status --porcelain"] = (["git", "status", "--porcelain"], groot, GIT_ENV)
        else:
            missing.append("git")
        dvc = None if args.no_dvc else dvc_bin()
        if dvc:
            droot = work / "dvc"
            clone(src, droot)
            run([dvc, "init", "--no-scm", "-q"], droot)
            run([dvc, "config", "core.analytics", "false"], droot)
            run([dvc, "add", "-q", "data"], droot)
            trees["dvc status -q"] = ([dvc, "status", "-q"], droot, {})
        elif not args.no_dvc:
            missing.append("dvc")
        status = interleaved(trees, max(3, args.rounds // 3))
        print(f"  ({max(3, args.rounds // 3)} runs each, interleaved; {load()})")
        smed = {name: report(name, samples) for name, samples in status.items()}
        ours = smed["workbench status --no-watcher"]
        if "git status --porcelain" in smed:
            print(f"  -> workbench status is {ours / smed['git status --porcelain']:.1f}x git status's time "
                  f"(target: within 3x)")
        if "dvc status -q" in smed:
            print(f"  -> workbench status is {smed['dvc status -q'] / ours:.1f}x faster than dvc status "
                  f"(target: at least 10x)")
        if base is not None:
            print(f"  -> baseline status took {smed['baseline: workbench status --no-watcher'] / ours:.2f}x "
                  f"this checkout's time")
    print(f"\n{load()}")
    if missing:
        print(f"missing peers: {', '.join(missing)} (no ratio printed against them)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
