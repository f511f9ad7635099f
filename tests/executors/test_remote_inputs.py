"""A Docker run in a project with a default remote fetches its inputs from the remote inside the job
(workbench.remote.jobfetch), pushes its outputs there, and the host records them from the remote.

The remote is a ``file://`` folder (mounted into the container, as an NFS share would be). The proof
that the inputs come from the remote and not from the host: the host's staging (``checkout_snapshot``)
is made to fail, and a byte flipped in the remote's copy of an input fails the job with one line
while the host's own cache is intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from tests.executors.conftest import IMAGE
from workbench.core.workspace import Workspace
from workbench.executors.docker import container_name
from workbench.tracking.request import RunRequest

pytestmark = pytest.mark.docker

TRAIN = """\
import os
import workbench
rows = open("data/points.csv").read().split()
print("rows", len(rows), flush=True)
workbench.log_metric("rows", len(rows))
os.makedirs("out", exist_ok=True)
with open("out/total.txt", "w") as f:
    f.write(str(sum(int(r) for r in rows)))
if not os.path.lexists("out/link"):
    os.symlink("/etc/passwd", "out/link")
"""
POINTS = b"1\n2\n3\n4\n"


@pytest.fixture
def remote_ws(ws: Workspace, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Path]]:
    """A project with a ``file://`` default remote, whose host staging must not be used."""
    old = os.umask(0o002)  # the job runs as 1000:0 when we are root: the shared folder is group-writable
    share = tmp_path / "share"
    share.mkdir()
    ws.remote.add("origin", f"file://{share}")
    (ws.root / "data").mkdir()
    (ws.root / "data" / "points.csv").write_bytes(POINTS)
    (ws.root / "train.py").write_text(TRAIN)

    def no_staging(*_args: Any) -> None:
        raise AssertionError("the host staged the inputs; the job should have fetched them")

    monkeypatch.setattr("workbench.executors.docker.checkout_snapshot", no_staging)
    try:
        yield ws, share
    finally:
        os.umask(old)


def _object(share: Path, content: bytes) -> Path:
    digest = blake3.blake3(content).hexdigest()
    return share / "objects" / digest[:2] / digest[2:]


def test_a_docker_run_with_a_remote_fetches_its_inputs_from_the_remote(
        remote_ws: tuple[Workspace, Path], docker_client: Any) -> None:
    ws, share = remote_ws
    run = ws.runs.execute(RunRequest(("python3", "train.py"), executor="docker", image=IMAGE))
    assert run.status == "succeeded", run.reason
    assert ws.runs.metric_series(run.id, "rows").values == [4]
    assert run.executor_info["inputs_from"] == f"remote origin (file://{share})"
    # The host pushed the input snapshot's objects (not a bundle: `workbench push` sends the records).
    assert _object(share, POINTS).exists()
    assert not (share / "bundles").exists()
    # The job pushed its output and listed it; the host recorded it and copied it into the project.
    listing = json.loads((share / "jobs" / run.id / "outputs.json").read_text())
    assert [row[0] for row in listing["files"]] == ["out/total.txt"] and listing["links"] == ["out/link"]
    assert _object(share, b"10").exists()
    assert (ws.root / "out" / "total.txt").read_text() == "10"
    assert "out/total.txt" in {f.path for f in ws.runs.outputs(run.id)}
    # A link the job made is not brought back: recorded as refused, as with host staging.
    assert not (ws.root / "out" / "link").is_symlink()
    assert "out/link" in {e["path"] for e in ws.runs.refused_events(run.id)}
    # Inputs the job read are recorded as usual (zero-code capture inside the container).
    assert "data/points.csv" in {f.path for f in ws.runs.inputs(run.id)}
    # Nothing of the run is left on the host but its record.
    assert not (ws.paths.runs / run.id / "docker" / "work").exists()


def test_a_corrupted_object_on_the_remote_fails_the_job_in_one_line(
        remote_ws: tuple[Workspace, Path], docker_client: Any) -> None:
    ws, share = remote_ws
    ws.versions.snapshot("seed")
    ws.remote.push()  # the objects are there; flip a byte in the remote's copy of the input
    obj = _object(share, POINTS)
    data = bytearray(obj.read_bytes())
    data[-1] ^= 0x01
    obj.chmod(0o644)
    obj.write_bytes(bytes(data))
    run = ws.runs.execute(RunRequest(("python3", "train.py"), executor="docker", image=IMAGE))
    assert run.status == "failed"
    digest = blake3.blake3(POINTS).hexdigest()
    assert run.reason.startswith("cannot fetch the input snapshot ")
    assert f"object {digest[:12]} received from the remote does not match its hash" in run.reason
    assert "\n" not in run.reason
    assert not (ws.root / "out").exists()  # the command never ran


def test_a_missing_object_on_the_remote_fails_the_job_in_one_line(
        remote_ws: tuple[Workspace, Path], docker_client: Any) -> None:
    ws, share = remote_ws
    ws.versions.snapshot("seed")
    ws.remote.push()
    _object(share, POINTS).unlink()  # the bookkeeping says it is there: the host does not send it again
    run = ws.runs.execute(RunRequest(("python3", "train.py"), executor="docker", image=IMAGE))
    assert run.status == "failed"
    assert run.reason.startswith("cannot fetch the input snapshot ")
    assert "is missing from the remote" in run.reason


def test_remote_inputs_can_be_turned_off(remote_ws: tuple[Workspace, Path], docker_client: Any,
                                         monkeypatch: pytest.MonkeyPatch, cli: Any) -> None:
    ws, share = remote_ws
    from workbench.executors import staging

    staged: list[str] = []

    def stage(ws_: Workspace, snapshot: str, dest: Path) -> None:
        staged.append(snapshot)
        staging.checkout_snapshot(ws_, snapshot, dest)

    monkeypatch.setattr("workbench.executors.docker.checkout_snapshot", stage)
    result = cli(ws.root, "run", "--no-remote-inputs", "--executor", "docker", "--image", IMAGE, "--json",
                 "--", "python3", "train.py")
    assert result.code == 0, result.err
    run = ws.runs.get(json.loads(result.out)["id"])
    assert run.status == "succeeded", run.reason
    assert staged and "inputs_from" not in run.executor_info
    assert not (share / "jobs").exists()
    assert (ws.root / "out" / "total.txt").read_text() == "10"


def test_an_unreachable_remote_fails_the_launch_in_one_line(ws: Workspace, docker_client: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.errors import ExecutorError

    for key, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}.items():
        monkeypatch.setenv(key, value)
    ws.remote.add("origin", "s3://bucket/p", endpoint_url="http://127.0.0.1:9")  # nothing listens there
    (ws.root / "train.py").write_text(TRAIN)
    with pytest.raises(ExecutorError) as caught:
        ws.runs.execute(RunRequest(("python3", "train.py"), executor="docker", image=IMAGE))
    line = caught.value.one_line()
    assert line.startswith("cannot send the input snapshot to the remote origin: cannot reach ")
    assert "--no-remote-inputs" in line and "\n" not in line
    run = ws.runs.get("latest")  # recorded as failed, with the same line; no container was made
    assert run.status == "failed" and run.reason == line
    assert not docker_client.containers.list(all=True, filters={"name": container_name(run.id)})
