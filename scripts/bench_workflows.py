"""Benchmark workflows side by side with DVC, and sweep throughput against the bare command.

1. A 20-stage pipeline (4 chains of 5 small Python stages), the same stages declared in
   ``workbench.yaml`` and ``dvc.yaml`` in two fresh folders. Both are run once; then with nothing
   changed (``repro`` no-op); then one input (of stage 12, mid-chain) changes: time to decide what
   is stale (``workbench repro --dry`` vs ``dvc status``) and to finish (``workbench repro`` vs
   ``dvc repro``). Each tool is timed as the command a user types (a fresh process).
2. A 50-run sweep of a quick script at parallelism 1 and 2: runs per minute, and overhead per run
   in ms over running the same 50 commands bare with the same parallelism.
3. Where a tracked run's time goes: cProfile of a few ``ws.runs.execute`` calls, grouped by phase.

DVC is never a runtime dependency: the script makes a venv for it (``--dvc-venv``, reused if it
exists) unless ``--dvc PATH`` points at a dvc binary, or ``--no-dvc`` skips it.

    .venv/bin/python scripts/bench_workflows.py [--runs 50] [--no-dvc]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHAINS, LENGTH = 4, 5
STAGE = textwrap.dedent("""\
    import hashlib, sys
    data = b"".join(open(p, "rb").read() for p in sys.argv[2:])
    open(sys.argv[1], "w").write(hashlib.sha256(data).hexdigest() + "\\n")
""")
QUICK = "import sys\nprint(f'loss: {float(sys.argv[1]) * 2}')\n"


def stages() -> list[tuple[str, list[str], str]]:
    """(name, inputs, output) for 4 chains of 5: stage i reads its own input file and the previous output."""
    out = []
    for chain in range(CHAINS):
        for pos in range(LENGTH):
            i = chain * LENGTH + pos
            inputs = [f"data/in{i:02d}.txt"] + ([f"out/s{i - 1:02d}.txt"] if pos else [])
            out.append((f"s{i:02d}", inputs, f"out/s{i:02d}.txt"))
    return out


def make_project(root: Path) -> None:
    (root / "data").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "stage.py").write_text(STAGE)
    for i in range(CHAINS * LENGTH):
        (root / "data" / f"in{i:02d}.txt").write_text(f"input {i}\n" * 100)


def write_workbench_yaml(root: Path) -> None:
    lines = ["stages:"]
    for name, inputs, output in stages():
        cmd = ["python", "stage.py", output, *inputs]
        lines += [f"  {name}:", f"    cmd: {' '.join(cmd)}", f"    inputs: [stage.py, {', '.join(inputs)}]",
                  f"    outputs: [{output}]"]
    (root / "workbench.yaml").write_text("\n".join(lines) + "\n")


def write_dvc_yaml(root: Path) -> None:
    lines = ["stages:"]
    for name, inputs, output in stages():
        cmd = ["python", "stage.py", output, *inputs]
        lines += [f"  {name}:", f"    cmd: {' '.join(cmd)}", "    deps:", "    - stage.py",
                  *[f"    - {p}" for p in inputs], "    outs:", f"    - {output}"]
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed


def ensure_dvc(args: argparse.Namespace) -> str | None:
    if args.no_dvc:
        return None
    if args.dvc:
        return str(args.dvc)
    venv = Path(args.dvc_venv)
    dvc = venv / "bin" / "dvc"
    if not dvc.exists():
        print(f"creating a venv with dvc in {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dvc>=3.50,<4"], check=True)
    return str(dvc)


def bench_pipeline(base: Path, dvc: str | None) -> None:
    wb = [sys.executable, "-m", "workbench"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    wb_root = base / "wb"
    make_project(wb_root)
    write_workbench_yaml(wb_root)
    timed([*wb, "init"], wb_root, env)
    rows: list[tuple[str, float, float | None]] = []
    dvc_root = base / "dvc"
    if dvc:
        make_project(dvc_root)
        write_dvc_yaml(dvc_root)
        timed([dvc, "init", "--no-scm", "-q"], dvc_root, env)
        timed([dvc, "config", "core.analytics", "false"], dvc_root, env)
    # dvc repro --dry --allow-missing would not decide the same question; 'dvc status' does.
    steps = [
        ("first run (20 stages run)", [*wb, "repro"], ["repro"]),
        ("no-op: decide (repro --dry | dvc status)", [*wb, "repro", "--dry"], ["status"]),
        ("no-op: repro", [*wb, "repro"], ["repro"]),
        ("CHANGE", [], []),
        ("1 input changed: decide (repro --dry | dvc status)", [*wb, "repro", "--dry"], ["status"]),
        ("1 input changed: repro (3 stages run)", [*wb, "repro"], ["repro"]),
    ]
    for label, wb_argv, dvc_args in steps:
        if label == "CHANGE":
            for root in (wb_root, dvc_root):
                if root.exists():
                    (root / "data" / "in12.txt").write_text("changed\n")
            continue
        wb_time = timed(wb_argv, wb_root, env)
        dvc_time = timed([dvc, *dvc_args], dvc_root, env) if dvc else None
        rows.append((label, wb_time, dvc_time))
    print("\n== 20-stage pipeline (4 chains x 5), wall time of the command ==")
    print(f"{'step':<52} {'workbench':>10} {'dvc':>10} {'dvc/wb':>8}")
    for label, wb_time, dvc_time in rows:
        ratio = f"{dvc_time / wb_time:8.2f}" if dvc_time else "       -"
        dvc_text = f"{dvc_time:9.3f}s" if dvc_time else "         -"
        print(f"{label:<52} {wb_time:9.3f}s {dvc_text} {ratio}")


def bench_sweep(base: Path, runs: int) -> None:
    root = base / "sweep"
    root.mkdir()
    (root / "quick.py").write_text(QUICK)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    timed([sys.executable, "-m", "workbench", "init"], root, env)
    values = ",".join(str(i) for i in range(runs))
    print(f"\n== sweep of {runs} runs of a quick script (python quick.py {{x}}) ==")
    print(f"{'parallel':>8} {'bare':>9} {'workbench':>10} {'runs/min':>9} {'bare runs/min':>14} "
          f"{'overhead/run':>13}")
    for parallel in (1, 2):
        argv_list = [[sys.executable, "quick.py", str(i)] for i in range(runs)]
        start = time.perf_counter()
        with cf.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda a: subprocess.run(a, cwd=root, capture_output=True, check=True), argv_list))
        bare = time.perf_counter() - start
        wb = timed([sys.executable, "-m", "workbench", "sweep", "--param", f"x={values}", "--parallel",
                    str(parallel), "--", sys.executable, "quick.py", "{x}"], root, env)
        # Overhead per run as one slot sees it: extra wall time spread over runs/parallel slots.
        overhead_ms = (wb - bare) / (runs / parallel) * 1000
        print(f"{parallel:>8} {bare:8.2f}s {wb:9.2f}s {runs / wb * 60:9.0f} {runs / bare * 60:14.0f} "
              f"{overhead_ms:11.0f}ms")


PHASES = {
    "snapshot before+after (versioning)": ("snapshot_or_none",),
    "host facts (environment capture)": ("host_facts",),
    "launch + wait for the process": ("launch", "_follow"),
    "finalize files (inputs/outputs, models)": ("finalize_files",),
    "create/end run rows": ("create_run", "end_run"),
}


def profile_runs(base: Path, count: int = 10) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from workbench.core.workspace import Workspace

    root = base / "profile"
    root.mkdir()
    (root / "quick.py").write_text(QUICK)
    ws, _ = Workspace.init(root)
    ws.runs.execute([sys.executable, "quick.py", "0"])  # warm imports
    bare_start = time.perf_counter()
    for i in range(count):
        subprocess.run([sys.executable, "quick.py", str(i)], cwd=root, capture_output=True, check=True)
    bare = (time.perf_counter() - bare_start) / count
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for i in range(count):
        ws.runs.execute([sys.executable, "quick.py", str(i)])
    profiler.disable()
    per_run = (time.perf_counter() - start) / count
    stats = pstats.Stats(profiler)
    found: dict[str, float] = {}
    for (filename, _, func), row in stats.stats.items():  # type: ignore[attr-defined]
        if "workbench" not in filename:
            continue
        for phase, names in PHASES.items():
            if func in names:
                found[phase] = max(found.get(phase, 0.0), 0.0) + row[3] / count
    print(f"\n== where one tracked run's time goes (ws.runs.execute in-process, mean of {count}) ==")
    print(f"{'bare command (subprocess.run)':<44} {bare * 1000:8.1f} ms")
    print(f"{'ws.runs.execute total':<44} {per_run * 1000:8.1f} ms  (profiled; cProfile adds some)")
    for phase, seconds in sorted(found.items(), key=lambda kv: -kv[1]):
        print(f"  {phase:<42} {seconds * 1000:8.1f} ms")
    child_start(root)
    ws.close()


def child_start(root: Path, repeats: int = 15) -> None:
    """The child Python's own start-up with tracking's sitecustomize, with and without its package report."""
    import statistics

    from workbench.tracking.runner import INJECT_DIR

    base = dict(os.environ)
    inject = {**base, "PYTHONPATH": str(INJECT_DIR), "WORKBENCH_EVENTS": str(root / "ev.jsonl"),
              "WORKBENCH_RUN_ID": "bench", "WORKBENCH_PROJECT": str(root)}
    variants = [("plain python quick.py", base), ("+ tracking sitecustomize", inject),
                ("+ sitecustomize, package report skipped", {**inject, "WORKBENCH_ENV_REPORTED": "1"})]
    print("  inside 'launch + wait': the child process itself (median of "
          f"{repeats}, interleaved)")
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(repeats):
        for name, env in variants:
            start = time.perf_counter()
            subprocess.run([sys.executable, "quick.py", "1"], cwd=root, env=env, capture_output=True)
            times[name].append(time.perf_counter() - start)
    for name, _ in variants:
        print(f"    {name:<42} {statistics.median(times[name]) * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--no-dvc", action="store_true")
    parser.add_argument("--dvc", default=None, help="path of a dvc binary to use")
    parser.add_argument("--profile-only", action="store_true", help="only the per-run cost breakdown")
    parser.add_argument("--dvc-venv", default=str(Path(tempfile.gettempdir()) / "workbench-bench-dvc"))
    args = parser.parse_args()
    dvc = None if args.profile_only else ensure_dvc(args)
    base = Path(tempfile.mkdtemp(prefix="wb-bench-workflows-"))
    try:
        if dvc:
            version = subprocess.run([dvc, "--version"], capture_output=True, text=True).stdout.strip()
            print(f"dvc {version}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
        if not args.profile_only:
            bench_pipeline(base, dvc)
            bench_sweep(base, args.runs)
        profile_runs(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
