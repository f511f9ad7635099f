"""Library capture from a Docker job: MLflow pointed at the job's run folder by its sitecustomize and
read on the host afterwards; TensorBoard event files read from the job's own folder.

The offline test image has Python but neither MLflow nor TensorBoard, so the store and the event
file are made here by the real libraries (MLflow's client, tensorboardX) and the job puts them where
its libraries would have written them: what is tested is the plumbing between container and host.
Needs the Docker daemon and the offline image of tests/executors (skipped with the reason if not).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.executors.conftest import IMAGE, docker_client  # noqa: F401 - the fixture
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

pytestmark = pytest.mark.docker

JOB = """\
import os, shutil
uri = os.environ["MLFLOW_TRACKING_URI"]
assert uri == "/workbench/run/mlflow", uri
assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
shutil.copytree("seed/store", uri)
for artifacts in __import__("glob").glob(uri + "/*/*/artifacts"):
    os.symlink("/etc/hostname", artifacts + "/leak.txt")  # never read on the host
    os.symlink("/etc/hostname", artifacts + "/../params/leak")
os.makedirs("tb/run1")
shutil.copy("seed/events.bin", "tb/run1/events.out.tfevents.1.job")
print("done")
"""


def _seed(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    tensorboardX = pytest.importorskip("tensorboardX")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=str(folder / "store"))
    run = client.create_run("0", run_name="in-container")
    client.log_param(run.info.run_id, "batch", "64")
    for step in range(20):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    client.set_tag(run.info.run_id, "where", "docker")
    (folder / "notes.txt").write_text("kept\n", encoding="utf-8")
    client.log_artifact(run.info.run_id, str(folder / "notes.txt"))
    client.set_terminated(run.info.run_id)
    del mlflow
    writer = tensorboardX.SummaryWriter(str(folder / "tb"))
    for step in range(25):
        writer.add_scalar("acc", step / 25.0, step)
    writer.close()
    shutil.copy(next((folder / "tb").glob("*tfevents*")), folder / "events.bin")
    shutil.rmtree(folder / "tb")
    (folder / "notes.txt").unlink()


def test_a_docker_jobs_mlflow_and_tensorboard_logging_is_captured(
    ws: Workspace, docker_client: Any, monkeypatch: pytest.MonkeyPatch  # noqa: F811 - the fixture
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (ws.root / "seed").mkdir()
    _seed(ws.root / "seed", monkeypatch)
    (ws.root / "job.py").write_text(JOB, encoding="utf-8")

    run = ws.runs.execute(RunRequest(["python3", "job.py"], executor="docker", image=IMAGE))
    assert run.status == "succeeded", run.reason
    assert run.params["batch"] == 64 and run.tags["where"] == "docker"
    assert "leak" not in run.params
    loss = ws.runs.metric_series(run.id, "loss")
    assert loss.steps == list(range(20)) and loss.values == [1.0 / (s + 1) for s in range(20)]
    acc = ws.runs.metric_series(run.id, "acc")
    assert acc.steps == list(range(25)) and acc.values == pytest.approx([s / 25 for s in range(25)])
    outputs = {item.path: item for item in ws.runs.outputs(run.id)}
    assert outputs["mlflow-artifacts/notes.txt"].hash
    assert "mlflow-artifacts/leak.txt" not in outputs
    assert "tb/run1/events.out.tfevents.1.job" in outputs
    assert (ws.paths.runs / run.id / "docker" / "meta" / "mlflow").is_dir()
