"""Logging libraries captured under ``workbench run`` without code changes (issue 17).

Real MLflow (mlflow-skinny), real ``torch.utils.tensorboard`` and ``tensorboardX``, run through the
real ``workbench`` CLI as a separate process; every point is counted back with its step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is in the test extra")

MLFLOW_SCRIPT = """
import os, tempfile
import mlflow

mlflow.log_param("lr", 0.05)
mlflow.log_param("optimizer", "adam")
for step in range(40):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=7)
mlflow.log_metric("lr_now", 0.5)   # no step: MLflow stores step 0
mlflow.log_metric("lr_now", 0.25)
mlflow.log_metric("lr_now", 0.125)
mlflow.set_tag("team", "vision")
with tempfile.TemporaryDirectory() as folder:   # an artifact whose source is gone after the run
    path = os.path.join(folder, "report.txt")
    with open(path, "w") as handle:
        handle.write("confusion: none\\n")
    mlflow.log_artifact(path, artifact_path="reports")
print("uri", mlflow.get_tracking_uri())
"""


def _run(cwd: Path, script: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    (cwd / "train.py").write_text(textwrap.dedent(script), encoding="utf-8")
    result = run_workbench(cwd, "run", "--json", "--", sys.executable, "train.py", env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    run: dict[str, Any] = json.loads(result.stdout)
    return run


def _series(cwd: Path, run_id: str, key: str) -> dict[str, Any]:
    """One stored series, every point (read in-process: a CLI process per key costs seconds)."""
    ws = Workspace.open(cwd)
    try:
        found = ws.runs.metric_series(run_id, key)
    finally:
        ws.close()
    assert not found.downsampled
    return {"steps": found.steps, "values": found.values, "times": found.times}


def _logs(cwd: Path, run_id: str) -> str:
    ws = Workspace.open(cwd)
    try:
        return "\n".join(line.text for line in ws.runs.log_lines(run_id))
    finally:
        ws.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    Workspace.init(root)[0].close()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


def test_mlflow_calls_become_the_runs_own(project: Path) -> None:
    run = _run(project, MLFLOW_SCRIPT)
    run_id = run["id"]
    assert run["status"] == "succeeded"
    assert run["params"]["lr"] == 0.05 and run["params"]["optimizer"] == "adam"
    assert run["tags"]["team"] == "vision"
    assert not any(key.startswith("mlflow.") for key in run["tags"])  # MLflow's own tags stay out

    loss = _series(project, run_id, "loss")
    assert loss["steps"] == list(range(40))
    assert loss["values"] == [1.0 / (step + 1) for step in range(40)]
    assert loss["times"] == sorted(loss["times"]) and loss["times"][0] >= run["started_at"] - 1
    for key, value in (("acc", 0.9), ("f1", 0.8)):
        point = _series(project, run_id, key)
        assert point["steps"] == [7] and point["values"] == [value]
    stepless = _series(project, run_id, "lr_now")  # logged three times without a step
    assert stepless["steps"] == [0, 1, 2] and stepless["values"] == [0.5, 0.25, 0.125]

    # The artifact is a run output whose bytes are in the blob cache (its source file is gone).
    outputs = {item["path"]: item for item in run["outputs"]}
    artifact = outputs["mlflow-artifacts/reports/report.txt"]
    assert artifact["source"] == "mlflow" and artifact["hash"]
    ws = Workspace.open(project)
    try:
        dest = project.parent / "exported.txt"
        ws.versions.export_object(artifact["hash"], dest)
        assert dest.read_text(encoding="utf-8") == "confusion: none\n"
    finally:
        ws.close()

    # MLflow wrote into the run's own folder, never into the project's tree.
    assert not (project / "mlruns").exists() and not (project / "mlflow.db").exists()
    assert (project / ".workbench" / "runs" / run_id / "mlflow").is_dir()
    # A pod's interpreter may lack PyYAML: the flat reader of meta.yaml agrees with YAML on it.
    import yaml

    from workbench.tracking.mlflow_store import _flat_yaml

    metas = list((project / ".workbench" / "runs" / run_id / "mlflow").glob("**/meta.yaml"))
    assert len(metas) == 2
    for meta in metas:
        full, flat = yaml.safe_load(meta.read_text()), _flat_yaml(meta.read_text())
        for key in ("name", "run_id", "run_name", "start_time", "lifecycle_stage"):
            assert flat.get(key) == full.get(key)
    logs = _logs(project, run_id)
    assert ("captured from the run's own MLflow store: 1 MLflow run(s), 2 params, 4 metrics (45 points),"
            " 1 artifacts") in logs


def test_a_users_own_local_store_is_left_alone_and_read(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "their-mlruns"
    env = {"MLFLOW_TRACKING_URI": f"file://{store}", "MLFLOW_ALLOW_FILE_STORE": "true"}
    script = """
    import mlflow
    mlflow.set_experiment("exp")
    with mlflow.start_run(run_name="outer"):
        mlflow.log_param("depth", 3)
        mlflow.log_metric("m", 1.0, step=1)
        with mlflow.start_run(run_name="inner", nested=True):
            mlflow.log_metric("m", 2.0, step=1)
    """
    run = _run(project, script, env)
    # Two MLflow runs in the window: each key carries its MLflow run's name.
    assert {m["key"]: m["last"] for m in run["metric_summaries"]} == {"outer/m": 1.0, "inner/m": 2.0}
    assert run["params"] == {"outer/depth": 3}
    assert not (project / ".workbench" / "runs" / run["id"] / "mlflow").exists()  # theirs, not ours
    assert len([p for p in store.glob("*/*/meta.yaml")]) == 2

    # Runs of their store that started before (or after) the Workbench run are not its own.
    from workbench.tracking.capture_mlflow import local_store, read_store

    found = local_store(env["MLFLOW_TRACKING_URI"])
    assert found == ("file", store)
    assert [r.name for r in read_store(*found)] == ["outer", "inner"]
    assert read_store(*found, since=run["ended_at"] + 1) == []
    assert read_store(*found, until=run["started_at"] - 1) == []


TB_SCRIPT = """
import numpy as np
from torch.utils.tensorboard import SummaryWriter
import tensorboardX

torch_writer = SummaryWriter("tb/torch")
for step in range(0, 300, 3):
    torch_writer.add_scalar("train/loss", 1.0 / (step + 1), step)
torch_writer.add_scalars("cmp", {"a": 1.5, "b": 2.5}, 10)
torch_writer.add_scalar("new_style", 4.25, 5, new_style=True)
torch_writer.add_histogram("weights", np.arange(10.0), 0)
torch_writer.add_text("note", "not a scalar", 0)
torch_writer.close()

x_writer = tensorboardX.SummaryWriter("tb/x")
for step in range(50):
    x_writer.add_scalar("acc", step / 50.0, step)
x_writer.add_image("img", np.zeros((3, 4, 4)), 0)
x_writer.close()
"""


def test_tensorboard_scalars_become_series(project: Path) -> None:
    pytest.importorskip("tensorboard", reason="torch.utils.tensorboard needs the tensorboard package")
    pytest.importorskip("tensorboardX")
    run = _run(project, TB_SCRIPT)
    run_id = run["id"]
    assert run["status"] == "succeeded"
    summaries = {m["key"]: m for m in run["metric_summaries"]}
    assert set(summaries) == {"torch/train/loss", "torch/cmp_a/cmp", "torch/cmp_b/cmp", "torch/new_style",
                              "x/acc"}
    loss = _series(project, run_id, "torch/train/loss")
    assert loss["steps"] == list(range(0, 300, 3))
    assert loss["values"] == pytest.approx([1.0 / (s + 1) for s in range(0, 300, 3)], rel=1e-6)  # float32
    assert all(t >= run["started_at"] - 1 for t in loss["times"])
    acc = _series(project, run_id, "x/acc")
    assert acc["steps"] == list(range(50)) and acc["values"] == pytest.approx([s / 50 for s in range(50)])
    assert summaries["torch/cmp_a/cmp"]["last"] == 1.5 and summaries["torch/cmp_b/cmp"]["last_step"] == 10
    assert summaries["torch/new_style"]["last"] == 4.25 and summaries["torch/new_style"]["last_step"] == 5
    logs = _logs(project, run_id)
    assert "captured from TensorBoard: 5 series (153 points) from 4 event file(s)" in logs


BAR_AND_TB = """
import sys
import workbench
from torch.utils.tensorboard import SummaryWriter

writer = SummaryWriter("lightning_logs/version_0")
for epoch in range(3):
    for batch in range(20):
        step = epoch * 20 + batch
        writer.add_scalar("train_loss", 1.0 / (step + 1), step)  # what Lightning's logger writes
        workbench.log_metric("lr", 0.1, step=step)
        writer.add_scalar("lr", 0.1, step)
    # ... and its progress bar, left on screen at the end of each epoch
    print(f"Epoch {epoch}: 100%|##| 20/20 [00:01<00:00, v_num=0, train_loss={1.0 / (step + 1):.3f}, "
          f"lr=0.1, acc={0.5 + epoch / 10}]")
writer.close()
"""


def test_a_librarys_series_replaces_the_same_key_read_from_the_output(project: Path) -> None:
    """Lightning draws ``train_loss`` in its bar at each epoch and writes it to TensorBoard at every
    step: the run holds TensorBoard's series alone (not both merged), says so, and keeps what only
    the bar showed (``acc``); a key the script also logged through Workbench (``lr``) keeps all."""
    pytest.importorskip("tensorboard", reason="torch.utils.tensorboard needs the tensorboard package")
    run = _run(project, BAR_AND_TB)
    run_id = run["id"]
    assert run["status"] == "succeeded"
    assert set(run["metrics"]) == {"train_loss", "lr", "acc"}  # no v_num
    loss = _series(project, run_id, "train_loss")
    assert loss["steps"] == list(range(60))
    assert loss["values"] == pytest.approx([1.0 / (s + 1) for s in range(60)], rel=1e-6)
    assert _series(project, run_id, "acc")["steps"] == [0, 1, 2]
    assert len(_series(project, run_id, "lr")["steps"]) == 60
    logs = _logs(project, run_id)
    assert "metric train_loss: the series TensorBoard recorded replaces the one read from the output" in logs
    assert "metric lr:" not in logs and "metric acc:" not in logs


def test_a_run_using_neither_leaves_no_trace(project: Path) -> None:
    """Nothing read, nothing imported on either side, no folder made."""
    probe = textwrap.dedent("""
        import sys
        from workbench.core.workspace import Workspace
        from workbench.tracking.request import RunRequest
        from pathlib import Path
        ws = Workspace.open(Path(sys.argv[1]))
        run = ws.runs.execute(RunRequest([sys.executable, "-c", "import sys; print(sorted(m for m in "
            "sys.modules if 'mlflow' in m or 'tensorboard' in m))"]))
        print(run.status, [m for m in sys.modules if m.startswith(("workbench.tracking.capture_mlflow",
              "mlflow", "tensorboard", "torch"))])
        print(run.id)
    """)
    result = subprocess.run([sys.executable, "-c", probe, str(project)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert result.returncode == 0, result.stderr
    status, run_id = result.stdout.splitlines()[-2:]
    assert status == "succeeded []"
    assert not (project / ".workbench" / "runs" / run_id / "mlflow").exists()
    logs = _logs(project, run_id)
    assert "[]" in logs and "captured" not in logs


def test_event_files_cut_or_garbled_keep_what_came_before(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A record cut short at the end (a writer still running or killed) ends the file quietly; a
    garbled record header stops the reading there with an error, after every point before it."""
    import struct

    tensorboardX = pytest.importorskip("tensorboardX")
    from workbench.tracking import capture_tb
    from workbench.tracking.capture_tb import EventFileError, read_scalars, series_of

    writer = tensorboardX.SummaryWriter(str(tmp_path / "logs"))
    for step in range(30):
        writer.add_scalar("loss", 30.0 - step, step)
    writer.close()
    event = next((tmp_path / "logs").glob("*tfevents*"))
    data = event.read_bytes()
    whole = list(read_scalars(event))
    assert [(tag, step, value) for tag, step, _, value in whole] == [
        ("loss", step, 30.0 - step) for step in range(30)]

    monkeypatch.setattr(capture_tb, "_MAP_FROM", 0)  # a large file is memory-mapped: same points
    assert list(read_scalars(event)) == whole
    monkeypatch.undo()

    cut = tmp_path / "cut" / "events.out.tfevents.1.cut"
    cut.parent.mkdir()
    cut.write_bytes(data[:-5])
    assert list(read_scalars(cut)) == whole[:-1]

    starts, pos = [], 0  # the byte offset of each record
    while pos < len(data):
        starts.append(pos)
        pos += 8 + 4 + struct.unpack_from("<Q", data, pos)[0] + 4
    garbled = bytearray(data)
    garbled[starts[12] + 1] ^= 0xFF  # the length of record 12
    bad = tmp_path / "bad" / "events.out.tfevents.1.bad"
    bad.parent.mkdir()
    bad.write_bytes(bytes(garbled))
    before = [point for point in whole if point[1] < 11]  # record 0 holds the file version
    got: list[Any] = []
    with pytest.raises(EventFileError):
        for point in read_scalars(bad):
            got.append(point)
    assert got == before
    warnings: list[str] = []
    series = series_of([("bad/events.out.tfevents.1.bad", bad)], warnings)
    assert series["loss"].steps == list(range(11)) and "bad record header" in warnings[0]


def test_a_pods_mlflow_logging_comes_back_as_marked_events(tmp_path: Path) -> None:
    """A job whose only channel is its log (a Kubernetes pod: ``WORKBENCH_EVENTS=@stdout``): its
    sitecustomize sends MLflow to the temporary folder and prints the store as marked event lines at
    exit; a real ingester turns them into the run's params, tags and every point."""
    from workbench.store.db import connect
    from workbench.tracking.events import MARKER_BYTES
    from workbench.tracking.ingest import Ingester
    from workbench.tracking.records import create_run
    from workbench.tracking.runner import INJECT_DIR

    scratch = tmp_path / "podtmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"PYTHONPATH": os.pathsep.join([str(INJECT_DIR), str(Path(__file__).resolve().parents[2])]),
                "WORKBENCH_EVENTS": "@stdout", "WORKBENCH_RUN_ID": "podrun1", "TMPDIR": str(scratch),
                "WORKBENCH_CAPTURE_MLFLOW": "1"})
    (tmp_path / "train.py").write_text(textwrap.dedent(MLFLOW_SCRIPT), encoding="utf-8")
    result = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.splitlines()
    assert f"uri {scratch}/workbench-mlflow-podrun1".encode() in lines
    marked = [line for line in lines if line.startswith(MARKER_BYTES)]
    assert marked and all(len(line) < 256 * 1024 for line in marked)

    root = tmp_path / "proj"
    root.mkdir()
    ws, _ = Workspace.init(root)
    try:
        create_run(ws.db, "podrun1", name="pod", command=["python", "train.py"], executor="kubernetes")
        conn = connect(ws.paths.db)
        ingester = Ingester(conn, "podrun1", root)
        ingester.feed_lines(marked)
        ingester.flush()
        conn.close()
        assert ingester.bad_lines == 0
        run = ws.runs.get("podrun1")
        assert run.params["lr"] == 0.05 and run.tags["team"] == "vision"
        loss = ws.runs.metric_series("podrun1", "loss")
        assert loss.steps == list(range(40)) and loss.values == [1.0 / (s + 1) for s in range(40)]
        assert ws.runs.metric_series("podrun1", "lr_now").values == [0.5, 0.25, 0.125]
    finally:
        ws.close()


def test_which_tracking_uris_are_read(tmp_path: Path) -> None:
    """Unset: the run's own store, given to a local job directly; a local store of the user's: read
    from the run's start, never redirected; a server: left alone, nothing read."""
    from workbench.tracking import libcapture
    from workbench.tracking.capture_mlflow import local_store

    run_dir, cwd = tmp_path / "run", tmp_path / "work"
    env, capture = libcapture.plan({}, run_dir, cwd, 100.0, local=True)
    assert env == {"WORKBENCH_CAPTURE_MLFLOW": "1", "MLFLOW_TRACKING_URI": str(run_dir / "mlflow"),
                   "MLFLOW_ALLOW_FILE_STORE": "true"}
    assert capture.store == ("file", run_dir / "mlflow") and capture.since is None
    env, capture = libcapture.plan({}, run_dir, cwd, 100.0, local=False)  # the sitecustomize decides
    assert env == {"WORKBENCH_CAPTURE_MLFLOW": "1"}
    enclosing = {"MLFLOW_TRACKING_URI": "/p/.workbench/runs/outer/mlflow", "WORKBENCH_CAPTURE_MLFLOW": "1"}
    env, capture = libcapture.plan(enclosing, run_dir, cwd, 100.0, local=True)  # a run inside a run
    assert env["MLFLOW_TRACKING_URI"] == str(run_dir / "mlflow") and capture.since is None
    env, capture = libcapture.plan({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, run_dir, cwd, 100.0, True)
    assert env == {} and capture.store == ("sqlite", cwd / "mlflow.db") and capture.since == 99.0
    env, capture = libcapture.plan({"MLFLOW_TRACKING_URI": "https://mlflow.example"}, run_dir, cwd, 1.0, True)
    assert env == {} and capture.store is None
    assert local_store("file:///srv/ml%20runs") == ("file", Path("/srv/ml runs"))
    assert local_store("sqlite:////abs/x.db") == ("sqlite", Path("/abs/x.db"))
    assert local_store("databricks") is None and local_store("databricks://profile") is None
