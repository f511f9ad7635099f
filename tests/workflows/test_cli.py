"""The workflows commands as a user types them: output, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import run_workbench
from tests.workflows.conftest import write_project
from workbench.core.workspace import Workspace


def test_repro_dry_dag_and_repro(ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    write_project(ws.root)
    dry = cli(ws.root, "repro", "--dry")
    assert dry.code == 0
    assert "would run" in dry.out and "never run" in dry.out and "upstream 'repeat' will re-run" in dry.out

    dag = cli(ws.root, "dag", "--json")
    data = json.loads(dag.out)
    assert data["levels"] == [["upper"], ["repeat"], ["count"]]
    assert data["stages"][0]["status"]["state"] == "stale"

    done = cli(ws.root, "repro", "-j", "2")
    assert done.code == 0, done.err
    assert "pipeline succeeded" in done.out and "ran" in done.out

    drawn = cli(ws.root, "dag")
    assert "repeat" in drawn.out and "fresh" in drawn.out and "◀ upper" in drawn.out

    (ws.root / "params.yaml").write_text("k: 5\n")
    dry = cli(ws.root, "repro", "--dry", "--json")
    plan = {i["stage"]: i for i in json.loads(dry.out)}
    assert plan["repeat"]["reasons"] == ["command changed", "param 'k' changed 2 -> 5"]

    (ws.root / "count.py").write_text("import sys\nprint('oops')\nsys.exit(2)\n")
    failed = cli(ws.root, "repro", "--json")
    assert failed.code == 1
    result = json.loads(failed.out)
    assert result["failed_stage"] == "count" and "oops" in result["log_tail"]


def test_sweep_cli_and_sweeps_ranking(ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    (ws.root / "t.py").write_text("import sys\nprint(f'acc: {1 - abs(float(sys.argv[1]) - 0.5)}')\n")
    dry = cli(ws.root, "sweep", "--param", "x=0.1:0.9:0.4", "--dry", "--", sys.executable, "t.py", "{x}")
    assert dry.code == 0 and dry.out.splitlines()[1].endswith("t.py 0.5")
    run = cli(ws.root, "sweep", "--param", "x=0.1:0.9:0.4", "--parallel", "2", "-n", "sx", "--",
              sys.executable, "t.py", "{x}")
    assert run.code == 0, run.err
    listed = json.loads(cli(ws.root, "sweeps", "--json").out)
    assert listed[0]["name"] == "sx" and listed[0]["counts"] == {"succeeded": 3}
    ranked = json.loads(cli(ws.root, "sweeps", "sx", "--max", "--json").out)
    assert ranked["metric"] == "acc"
    assert ranked["ranking"][0]["params"]["x"] == 0.5
    shown = cli(ws.root, "sweeps", "sx", "--metric", "acc", "--max")
    assert shown.code == 0 and "ranked by acc" in shown.out and "params against acc" in shown.out


def test_bad_input_is_one_line_exit_2(ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    (ws.root / "workbench.yaml").write_text("stages:\n  a:\n    cmd: [python, x.py\n")
    result = cli(ws.root, "repro")
    assert result.code == 2
    assert result.err.startswith("error: workbench.yaml:") and "malformed YAML" in result.err
    assert len(result.err.strip().splitlines()) == 1
    for argv in (["--param", "lr=", "--", "t", "{lr}"], ["--param", "d=9:3", "--", "t", "{d}"],
                 ["--param", "lr=1,2", "--", "t"]):
        bad = cli(ws.root, "sweep", *argv)
        assert bad.code == 2 and bad.err.startswith("error: --param") and len(bad.err.splitlines()) == 1


def test_cycle_through_the_real_command(tmp_path: Path) -> None:
    run_workbench(tmp_path, "init")
    (tmp_path / "workbench.yaml").write_text(
        "stages:\n  a: {cmd: a, inputs: [b.txt], outputs: [a.txt]}\n"
        "  b: {cmd: b, inputs: [a.txt], outputs: [b.txt]}\n")
    result = run_workbench(tmp_path, "repro")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: workbench.yaml:2:3: cycle: a -> b -> a (stages depend on each "
                                     "other through their files; break the loop)")


# -- live processes: repro -v streams, Ctrl+C leaves a complete record ----------------------------
def _spawn(root: Path, *argv: str) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    """Start the real ``workbench`` and collect its stdout lines as they come (None at the end)."""
    proc = subprocess.Popen([sys.executable, "-m", "workbench", *argv], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "120"})
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _read_until(lines: queue.Queue[str | None], needle: str, seen: list[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not any(needle in line for line in seen):
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, f"output ended before {needle!r}: {seen}"
        seen.append(line)


WAITER = ("import pathlib, sys, time\nprint('tick 1', flush=True)\n"
          "while not pathlib.Path('go').exists():\n    time.sleep(0.05)\n"
          "print('tick 2', flush=True)\nopen(sys.argv[1], 'w').write('done')\n")


def test_repro_verbose_streams_each_stage_line_live(tmp_path: Path) -> None:
    """-v shows a stage's output while it runs: 'tick 1' arrives before the stage may finish."""
    run_workbench(tmp_path, "init")
    (tmp_path / "wait.py").write_text(WAITER)
    (tmp_path / "workbench.yaml").write_text(
        "stages:\n  slow: {cmd: python wait.py a.txt, inputs: [wait.py], outputs: [a.txt]}\n")
    proc, lines = _spawn(tmp_path, "repro", "-v")
    seen: list[str] = []
    try:
        _read_until(lines, "tick 1", seen)  # the stage is blocked until 'go' exists: this is live
        assert not any("tick 2" in line or "pipeline" in line for line in seen)
        (tmp_path / "go").touch()
        _read_until(lines, "pipeline succeeded", seen)
        code = proc.wait(120)
    finally:
        proc.kill() if proc.poll() is None else None
    assert code == 0
    streamed = [line for line in seen if "│" in line]
    assert streamed == ["slow │ tick 1", "slow │ tick 2"], seen
    order = [next(i for i, line in enumerate(seen) if needle in line)
             for needle in ("▶ slow", "slow │ tick 1", "slow │ tick 2", "● slow", "pipeline succeeded")]
    assert order == sorted(order), seen
    # Without -v the stage's output stays in its run's log.
    (tmp_path / "wait.py").write_text(WAITER + "# changed\n")
    quiet = run_workbench(tmp_path, "repro")
    assert quiet.returncode == 0 and "tick" not in quiet.stdout and "ran" in quiet.stdout


def test_ctrl_c_during_repro_skips_the_stages_not_started(tmp_path: Path) -> None:
    """SIGINT while a stage runs: exit 130, one line; the pipeline run is cancelled, the running
    stage cancelled with its run, and every stage not yet started written as skipped."""
    run_workbench(tmp_path, "init")
    (tmp_path / "wait.py").write_text(WAITER)
    (tmp_path / "workbench.yaml").write_text(
        "stages:\n"
        "  a: {cmd: python wait.py a.txt, inputs: [wait.py], outputs: [a.txt]}\n"
        "  b: {cmd: python wait.py b.txt, inputs: [a.txt], outputs: [b.txt]}\n"
        "  c: {cmd: python wait.py c.txt, inputs: [b.txt], outputs: [c.txt]}\n"
        "  d: {cmd: python wait.py d.txt, inputs: [wait.py], outputs: [d.txt]}\n")
    proc, lines = _spawn(tmp_path, "repro", "-v")
    seen: list[str] = []
    try:
        _read_until(lines, "│ tick 1", seen)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(240)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert code == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted: the pipeline was cancelled"

    with Workspace.open(tmp_path) as ws:
        latest = ws.workflows.pipeline_runs(1)[0]
        assert latest["status"] == "cancelled"
        stages = {s["stage"]: s for s in ws.workflows.pipeline_run(latest["id"])["stages"]}
        first = next(line.split()[1] for line in seen if line.startswith("▶"))
        assert stages[first]["status"] == "cancelled"
        assert ws.runs.get(stages[first]["run_id"]).status == "cancelled"
        others = {name: (s["status"], s["reason"]) for name, s in stages.items() if name != first}
        assert others == dict.fromkeys(set("abcd") - {first},
                                       ("skipped", "cancelled: the pipeline was interrupted"))
