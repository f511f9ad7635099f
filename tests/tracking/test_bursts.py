"""No metric event is lost for its size or its channel: a burst of 1,000,000 points of one key,
logged by a real script under a real ``workbench run`` process, is counted back exactly through the
events file (local, Docker) and through marked stdout lines in a pod's log (the Kubernetes double);
a line an older, unbounded writer would send (4 MiB) arrives too; a malformed line is counted on
the run and shown by ``workbench show``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from tests.executors.conftest import IMAGE, docker_client  # noqa: F401 - the fixture
from workbench.core.workspace import Workspace
from workbench.tracking.events import MARKER_BYTES, MAX_EVENT_LINE

POINTS = 1_000_000
OLD_POINTS = 131_072
"""Points of the one line an older writer sends (24 bytes a point, base64: 4 MiB)."""

SCRIPT = """\
import os, sys
from array import array
import workbench
from workbench.tracking.events import MARKER_BYTES, encode, pack_series

for i in range(POINTS):
    workbench.log_metric("loss", i * 0.5, step=i)
for i in range(1000):
    workbench.log_metric("acc", i / 1000, step=i)
# What a writer without the line bound sends: every point of a key in one line.
n = OLD_POINTS
line = encode(pack_series("old", array("q", range(n)), array("d", [s * 2.0 for s in range(n)]),
                          array("d", [1.7e9] * n)))
target = os.environ["WORKBENCH_EVENTS"]
if target == "@stdout":
    sys.stdout.flush()
    sys.stdout.buffer.write(MARKER_BYTES + line)
    sys.stdout.flush()
else:
    with open(target, "ab") as handle:
        handle.write(line)
print("done")
""".replace("OLD_POINTS", str(OLD_POINTS)).replace("POINTS", str(POINTS))


def _write_script(root: Path) -> None:
    (root / "burst.py").write_text(SCRIPT, encoding="utf-8")


def _show(root: Path, run: str = "latest") -> dict[str, Any]:
    done = run_workbench(root, "show", run, "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _check_burst(root: Path) -> str:
    """The latest run holds every point, exactly, and dropped nothing; returns its id."""
    shown = _show(root)
    assert shown["status"] == "succeeded", shown["reason"]
    assert shown["dropped_events"] == 0
    counts = {m["key"]: (m["count"], m["last_step"]) for m in shown["metric_summaries"]}
    assert counts["loss"] == (POINTS, POINTS - 1)
    assert counts["acc"] == (1000, 999)
    assert counts["old"] == (OLD_POINTS, OLD_POINTS - 1)
    ws = Workspace.open(root)
    try:
        loss = ws.runs.metric_series(shown["id"], "loss")
        assert len(loss.steps) == POINTS and loss.steps[0] == 0 and loss.steps[-1] == POINTS - 1
        assert loss.steps == list(range(POINTS))
        for step in (0, 1, 8191, 8192, 123_457, POINTS - 1):
            assert loss.values[step] == step * 0.5
        old = ws.runs.metric_series(shown["id"], "old")
        assert old.steps == list(range(OLD_POINTS)) and old.values[-1] == (OLD_POINTS - 1) * 2.0
        acc = ws.runs.metric_series(shown["id"], "acc")
        assert acc.values[0] == 0.0 and math.isclose(acc.values[999], 0.999)
    finally:
        ws.close()
    return str(shown["id"])


@pytest.mark.parametrize("buffer", ["compiled", "pure-python"])
def test_a_million_points_in_one_burst_arrive_through_a_local_run(ws: Workspace, buffer: str) -> None:
    _write_script(ws.root)
    env = {"WORKBENCH_PURE_PYTHON": "1"} if buffer == "pure-python" else {}
    done = run_workbench(ws.root, "run", "--", sys.executable, "burst.py", timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    run_id = _check_burst(ws.root)
    # The API kept every line it wrote within the bound (the one old-writer line aside).
    sizes = [len(line) + 1 for line in (ws.paths.runs / run_id / "events.jsonl").read_bytes().splitlines()]
    assert sum(size > MAX_EVENT_LINE for size in sizes) == 1 and len(sizes) > POINTS // 10_000


@pytest.mark.docker
def test_a_million_points_in_one_burst_arrive_from_a_container(
    ws: Workspace, docker_client: Any  # noqa: F811 - the fixture
) -> None:
    _write_script(ws.root)
    done = run_workbench(ws.root, "run", "--executor", "docker", "--image", IMAGE, "--",
                         "python3", "burst.py", timeout=600)
    assert done.returncode == 0, done.stderr
    _check_burst(ws.root)


def test_a_million_points_in_one_burst_arrive_through_a_pod_log(
    ws: Workspace, tmp_path: Path, kube: Iterator[Any]
) -> None:
    from tests.executors.kube_double import Controller, Story

    double = kube
    _write_script(ws.root)
    # The pod's log is what the real API prints with WORKBENCH_EVENTS=@stdout: run it so.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["WORKBENCH_EVENTS"] = "@stdout"
    printed = subprocess.run([sys.executable, "burst.py"], cwd=ws.root, env={**env, "PYTHONPATH": _here()},
                             capture_output=True, timeout=600, check=True).stdout
    lines = printed.decode().rstrip("\n").split("\n")
    marked = [line for line in lines if line.startswith(MARKER_BYTES.decode())]
    assert "done" in lines and len(marked) > POINTS // 10_000
    assert sum(len(line) + 1 > MAX_EVENT_LINE for line in marked) == 1  # the old writer's line only
    control = Controller(double, "ml", lambda job: Story(lines=lines))
    try:
        done = run_workbench(ws.root, "run", "--executor", "kubernetes", "--image", "registry.example/t:1",
                             "--namespace", "ml", "--", "python", "burst.py", timeout=600,
                             env={"KUBECONFIG": str(tmp_path / "kubeconfig")})
    finally:
        control.close()
    assert done.returncode == 0, done.stderr
    _check_burst(ws.root)


def _here() -> str:
    """The folder holding the ``workbench`` package under test (for a script run outside a run)."""
    import workbench

    return str(Path(workbench.__file__).resolve().parent.parent)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Any]:
    from tests.executors.kube_double import KubeDouble

    double = KubeDouble(tmp_path / "cluster")
    double.kubeconfig(tmp_path / "kubeconfig", "ml")
    yield double
    double.close()


BAD = """\
import os
import workbench
workbench.log_metric("kept", 1.0, step=0)
workbench.active_run().flush()
with open(os.environ["WORKBENCH_EVENTS"], "ab") as handle:
    handle.write(b'{"e":"metric","k":"cut-here\\n')                           # not JSON
    handle.write(b'{"e":"series","k":"loss","n":5,"sb":"","vb":"","tb":""}\\n')  # corrupt packed series
print('@@workbench@@ {"e":"metric","k":"kept","v":2', flush=True)             # not JSON, on stdout
workbench.log_metric("kept", 3.0, step=2)
"""


def test_a_malformed_event_line_is_counted_and_shown(ws: Workspace) -> None:
    (ws.root / "bad.py").write_text(BAD, encoding="utf-8")
    done = run_workbench(ws.root, "run", "--", sys.executable, "bad.py", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "dropped events: 3" in done.stderr  # the run's closing line says so too
    shown = _show(ws.root)
    assert shown["dropped_events"] == 3
    assert [m["count"] for m in shown["metric_summaries"] if m["key"] == "kept"] == [2]  # nothing else lost
    text = run_workbench(ws.root, "show", "latest")
    assert text.returncode == 0 and "dropped events: 3 (see workbench logs" in text.stdout
    logs = run_workbench(ws.root, "logs", "latest").stdout
    assert logs.count("ignored malformed event line") == 2 and "ignored bad series event" in logs
    # A clean run says nothing and counts 0.
    (ws.root / "ok.py").write_text("import workbench\nworkbench.log_metric('x', 1.0)\n", encoding="utf-8")
    assert run_workbench(ws.root, "run", "--", sys.executable, "ok.py").returncode == 0
    assert _show(ws.root)["dropped_events"] == 0
    assert "dropped" not in run_workbench(ws.root, "show", "latest").stdout


PARTIAL = """\
import os
os.environ["WORKBENCH_EVENTS"] = "@stdout"      # as in a pod: marked lines on stdout
import workbench
print("epoch 1 ", end="", flush=True)           # a partial line of output before the event lines
workbench.log_metric("x", 1.5, step=0)
workbench.log_param("p", 7)
print("done")
"""


def test_marked_lines_after_a_partial_line_of_output_are_not_lost(ws: Workspace) -> None:
    (ws.root / "partial.py").write_text(PARTIAL, encoding="utf-8")
    done = run_workbench(ws.root, "run", "--", sys.executable, "partial.py", timeout=300)
    assert done.returncode == 0, done.stderr
    shown = _show(ws.root)
    assert shown["params"]["p"] == 7 and shown["metrics"]["x"] == 1.5 and shown["dropped_events"] == 0
    logs = run_workbench(ws.root, "logs", "latest").stdout
    assert "epoch 1" in logs and "done" in logs and "@@workbench@@" not in logs
