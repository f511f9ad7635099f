"""The workflows commands as a user types them: output, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
import sys
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
