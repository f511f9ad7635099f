"""The runs commands as a user types them: run, runs, show, metrics, logs, compare, lineage, models, rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace

TRAIN = """
import argparse, pickle
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
a = p.parse_args()
data = open("data.csv").read()
for step in range(3):
    print(f"step={step} loss={a.lr * (3 - step)}")
from sklearn.dummy import DummyRegressor
with open("model.pkl", "wb") as f:
    pickle.dump(DummyRegressor(strategy="constant", constant=a.lr).fit([[0]], [0]), f)
"""


@pytest.fixture
def project(ws: Workspace, project_dir: Path) -> Path:
    (project_dir / "train.py").write_text(TRAIN, encoding="utf-8")
    (project_dir / "data.csv").write_text("a,b\n", encoding="utf-8")
    return project_dir


def _json(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_run_then_inspect_everything(project: Path) -> None:
    live = run_workbench(project, "run", "-n", "small", "--tag", "kind=test", "--", sys.executable,
                         "train.py", "--lr", "0.1")
    assert live.returncode == 0, live.stderr
    assert "step=0 loss=" in live.stdout and "succeeded" in live.stderr
    first = _json(run_workbench(project, "run", "--json", "--", sys.executable, "train.py", "--lr", "0.2"))
    assert isinstance(first, dict) and first["status"] == "succeeded" and first["params"] == {"lr": 0.2}
    assert first["models"][0]["name"] == "model"

    runs = _json(run_workbench(project, "runs", "--json", "--filter", "lr<0.15", "--sort=-lr"))
    assert isinstance(runs, list) and [r["name"] for r in runs] == ["small"]
    assert runs[0]["metrics"]["loss"] == pytest.approx(0.1) and runs[0]["tags"] == {"kind": "test"}
    table = run_workbench(project, "runs")
    assert "small" in table.stdout and "succeeded" in table.stdout
    narrow = run_workbench(project, "runs", env={"COLUMNS": "40"})  # ids whole, to copy into show
    assert runs[0]["id"] in narrow.stdout and first["id"] in narrow.stdout
    for sort in (["--sort", "lr:desc"], ["--sort", "lr", "--desc"], ["--sort=-lr"], ["--sort", "lr"]):
        ordered = _json(run_workbench(project, "runs", "--json", *sort))
        assert isinstance(ordered, list)
        expected = [0.1, 0.2] if sort == ["--sort", "lr"] else [0.2, 0.1]
        assert [r["params"]["lr"] for r in ordered] == expected, sort
    wrong = run_workbench(project, "runs", "--sort", "-lr")
    assert wrong.returncode == 2 and "--sort KEY:desc" in wrong.stderr and len(wrong.stderr.splitlines()) == 1

    shown = _json(run_workbench(project, "show", "small", "--json"))
    assert isinstance(shown, dict)
    assert [f["path"] for f in shown["inputs"]] == ["data.csv", "train.py"]
    assert "model.pkl" in [f["path"] for f in shown["outputs"]] and shown["environment"]["python"]

    series = _json(run_workbench(project, "metrics", "small", "loss", "--json"))
    assert isinstance(series, dict) and series["steps"] == [0, 1, 2] and series["total"] == 3
    keys = _json(run_workbench(project, "metrics", "small", "--json"))
    assert isinstance(keys, list) and keys[0]["key"] == "loss" and keys[0]["count"] == 3
    chart = run_workbench(project, "metrics", "small", "loss", "--plot")  # a pipe: no colour codes
    assert chart.returncode == 0 and "loss: 3 points, last" in chart.stdout and "step" in chart.stdout
    assert any("\u2800" <= ch <= "\u28ff" for ch in chart.stdout) and "\x1b[" not in chart.stdout
    every = run_workbench(project, "metrics", "small", "--plot")  # no KEY: a chart per metric
    assert every.returncode == 0 and every.stdout.count("points, last") == len(keys)

    logs = run_workbench(project, "logs", "small")
    assert logs.stdout.splitlines()[0].startswith("step=0 loss=")
    compared = _json(run_workbench(project, "compare", "small", "latest", "--json"))
    assert isinstance(compared, dict) and compared["params"] == {"lr": [0.1, 0.2]}
    overlaid = run_workbench(project, "compare", "small", "latest", "--plot", "loss")
    assert overlaid.returncode == 0 and "loss, 2 runs" in overlaid.stdout
    ids = [r["id"][:10] for r in compared["runs"]]
    assert f"•• {ids[0]}" in overlaid.stdout and f"xx {ids[1]}" in overlaid.stdout  # marks, no colours
    assert "\x1b[" not in overlaid.stdout
    unknown = run_workbench(project, "compare", "small", "latest", "--plot", "nope")
    assert unknown.returncode == 2 and unknown.stdout == "" and "no metric 'nope'" not in unknown.stderr
    assert "none of these runs has a metric 'nope' (their metrics: loss)" in unknown.stderr

    tagged = run_workbench(project, "models", "tag", "model:2", "production")
    assert tagged.returncode == 0, tagged.stderr
    models = _json(run_workbench(project, "models", "--json"))
    assert isinstance(models, list) and models[0]["aliases"] == {"production": 2}
    tree = _json(run_workbench(project, "lineage", "model@production", "--json"))
    assert isinstance(tree, dict) and tree["kind"] == "model"
    run_node = tree["children"][0]
    assert run_node["details"]["params"] == {"lr": 0.2}
    assert {c["label"] for c in run_node["children"]} == {"data.csv", "train.py"}
    text_tree = run_workbench(project, "lineage", "model.pkl")
    assert "data.csv" in text_tree.stdout

    rerun = _json(run_workbench(project, "rerun", "small", "--json"))
    assert isinstance(rerun, dict) and rerun["parent_run"] == shown["id"] and rerun["status"] == "succeeded"


def test_exit_status_is_passed_through(project: Path) -> None:
    result = run_workbench(project, "run", "--", sys.executable, "-c", "import sys; sys.exit(7)")
    assert result.returncode == 7 and "failed" in result.stderr


@pytest.mark.parametrize("argv", [
    ("run",), ("run", "--"), ("run", "--", "no-such-command-xyz"), ("show", "nope"),
    ("runs", "--filter", "lr >"), ("models", "tag", "model", "prod"), ("metrics", "nope", "loss"),
    ("compare", "one"), ("lineage", "missing.bin"),
])
def test_bad_input_is_one_line_exit_2(project: Path, argv: tuple[str, ...]) -> None:
    result = run_workbench(project, *argv)
    assert result.returncode == 2, (argv, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_cancels_the_run(project: Path) -> None:
    # The job would sleep for 10 minutes: ending well within the wait below means it was cancelled
    # (no elapsed-time budget: a loaded machine is slow, not wrong).
    script = "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "run", "--", sys.executable, "-c", script], cwd=project,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
    runs = _json(run_workbench(project, "runs", "--json"))
    assert isinstance(runs, list) and runs[0]["status"] == "cancelled"


def test_logs_follow_ends_with_the_run(project: Path) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "workbench", "run", "-n", "slow", "--", sys.executable, "-c",
         "import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.3)"],
        cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while run_workbench(project, "runs", "--json").stdout.strip() in ("", "[]"):
        assert time.monotonic() < deadline, "the run never appeared"
        time.sleep(0.1)
    follow = run_workbench(project, "logs", "slow", "--follow")
    runner.wait(120)
    assert follow.returncode == 0
    assert follow.stdout.splitlines() == [f"tick {i}" for i in range(4)]
