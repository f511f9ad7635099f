"""The Docker executor against a real daemon and the offline image workbench-python:bookworm."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.executors.conftest import IMAGE
from workbench.core.workspace import Workspace
from workbench.errors import ExecutorError
from workbench.executors.base import LaunchSpec
from workbench.executors.docker import DockerExecutor, container_name
from workbench.tracking.request import RunRequest

pytestmark = pytest.mark.docker

TRAIN = """\
import argparse, os, pickle
import workbench
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
data = open("data/points.csv").read().split()
for epoch in range(3):
    loss = 1.0 / (epoch + 1)
    print(f"epoch={epoch} loss={loss}", flush=True)
    workbench.log_metric("acc", 0.5 + epoch / 10, step=epoch)
os.makedirs("models", exist_ok=True)
with open("models/model.pkl", "wb") as f:
    pickle.dump({"lr": args.lr, "n": len(data), "uid": os.getuid()}, f)
workbench.log_model("models/model.pkl", name="model")  # a pickled dict is no model by its bytes alone
print("done as uid", os.getuid())
"""


def _project(ws: Workspace) -> None:
    (ws.root / "data").mkdir()
    (ws.root / "data" / "points.csv").write_text("1\n2\n3\n")
    (ws.root / "train.py").write_text(TRAIN)


def test_training_in_a_container_lands_in_the_run_record(ws: Workspace, docker_client: Any) -> None:
    _project(ws)
    lines: list[bytes] = []
    run = ws.runs.execute(RunRequest(["python3", "train.py", "--lr", "0.05"], executor="docker", image=IMAGE),
                          on_line=lambda channel, line: lines.append(line))
    assert run.status == "succeeded", run.reason
    assert run.exit_code == 0
    assert run.params["lr"] == 0.05
    assert set(ws.runs.metric_keys(run.id)) >= {"loss", "acc"}
    assert ws.runs.metric_series(run.id, "acc").values == pytest.approx([0.5, 0.6, 0.7])
    # The model came back into the project, was recorded as an output and registered.
    assert (ws.root / "models" / "model.pkl").exists()
    assert "models/model.pkl" in {f.path for f in ws.runs.outputs(run.id)}
    assert "model" in {m.name for m in ws.runs.models()}
    # Provenance: the image id is recorded; the job ran as a non-root user.
    assert run.executor_info["image_id"].startswith("sha256:")
    assert any(line.startswith(b"done as uid") and not line.endswith(b" 0") for line in lines)
    # Nothing is left behind: no container, no per-run workspace.
    assert not docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={run.id}"})
    assert not (ws.paths.runs / run.id / "docker" / "work").exists()


def _spec(ws: Workspace, command: list[str], **kw: Any) -> LaunchSpec:
    return LaunchSpec(job_id=f"t{time.time_ns()}", command=command, project_root=ws.root,
                      input_snapshot=ws.versions.snapshot("test").id, image=IMAGE, **kw)


def test_a_crashing_container_is_failed_with_its_exit_code(ws: Workspace, docker_client: Any) -> None:
    (ws.root / "crash.py").write_text("import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    executor = DockerExecutor(ws)
    spec = _spec(ws, ["python3", "crash.py"])
    job = executor.launch(spec)
    out = list(job.lines())
    exit_ = job.wait()
    assert ("stdout", b"about to fail") in out
    assert (exit_.status, exit_.exit_code, exit_.reason) == ("failed", 3, "exited with code 3")


def test_cancel_stops_and_removes_the_container(ws: Workspace, docker_client: Any) -> None:
    # An hour-long job: its container gone (asserted below) means the cancel stopped it.
    (ws.root / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(3600)\n")
    executor = DockerExecutor(ws)
    spec = _spec(ws, ["python3", "slow.py"])
    job = executor.launch(spec)
    seen: list[bytes] = []

    def consume() -> None:
        for _, line in job.lines():
            seen.append(line)

    reader = threading.Thread(target=consume)
    reader.start()
    deadline = time.monotonic() + 90
    while b"started" not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
    job.cancel()
    job.cancel()  # safe twice
    reader.join(120)
    exit_ = job.wait()
    assert exit_.status == "cancelled"
    assert b"started" in seen
    assert not docker_client.containers.list(all=True, filters={"name": container_name(spec.job_id)})


def test_unreachable_daemon_is_one_line_before_anything_is_created(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{ws.root}/no-such.sock")
    executor = DockerExecutor(ws)
    spec = LaunchSpec(job_id="r1", command=["true"], project_root=ws.root, input_snapshot="", image=IMAGE)
    with pytest.raises(ExecutorError) as info:
        executor.check(spec)
    assert "Docker daemon not reachable" in info.value.one_line()
    assert "\n" not in info.value.one_line()
    assert not (ws.paths.runs / "r1").exists()


def test_missing_image_is_one_line(ws: Workspace, docker_client: Any) -> None:
    executor = DockerExecutor(ws)
    run_id = f"r{time.time_ns()}"  # the daemon is shared by other test sessions: a unique name
    spec = LaunchSpec(job_id=run_id, command=["true"], project_root=ws.root, input_snapshot="",
                      image="workbench-no-such-image:1")
    with pytest.raises(ExecutorError, match="not found on the Docker host") as info:
        executor.launch(spec)
    assert "docker pull" in info.value.one_line()
    assert not docker_client.containers.list(all=True, filters={"name": container_name(run_id)})
    assert not (ws.paths.runs / run_id).exists()


def test_gpus_become_device_requests(ws: Workspace, docker_client: Any, tmp_path: Path) -> None:
    executor = DockerExecutor(ws)
    for gpus, count in ((2, 2), ("all", -1)):
        # Unique: the daemon is shared with other test sessions, and a create that timed out on a
        # loaded machine can still have made its container (a fixed name then conflicts next time).
        spec = LaunchSpec(job_id=f"g{count}-{time.time_ns()}", command=["true"], project_root=ws.root,
                          input_snapshot="", image=IMAGE, gpus=gpus, cpu="1.5", memory="256Mi")
        kwargs = executor._container_kwargs(spec, IMAGE, tmp_path, tmp_path, "1000:0")
        container = docker_client.containers.create(**kwargs)  # created, never started (no GPU here)
        try:
            host = docker_client.api.inspect_container(container.id)["HostConfig"]
            assert host["DeviceRequests"][0]["Count"] == count
            assert host["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
            assert host["NanoCpus"] == 1_500_000_000
            assert host["Memory"] == 256 * 2**20
            assert host["CapDrop"] == ["ALL"]
        finally:
            container.remove(force=True)
