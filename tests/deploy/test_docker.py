"""The local target in Docker, run the way OpenShift's restricted rules run a pod.

An arbitrary user id in group 0 (``1000770000:0``, no such user in the image), a read-only root file
system with only ``/tmp`` writable, all capabilities dropped, no privilege escalation, the model
folder mounted read-only: the server must still load the model and answer predictions. Needs a
Docker daemon and the offline base image ``workbench-python:bookworm`` (``scripts/docker_setup.sh``
starts the one and builds the other; this test runs it when the daemon answers but the image is
missing, and skips, saying why, only when Docker cannot run here).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import docker_unavailable
from tests.deploy.conftest import REQUEST, answers
from workbench.core.workspace import Workspace
from workbench.deploy import local
from workbench.deploy.types import ModelRef

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # no daemon, no socket, no permission
        docker_unavailable(
            f"Docker cannot run here ({type(exc).__name__}: {exc}); see scripts/docker_setup.sh")
    try:
        client.images.get(local.local_image())
    except Exception:
        setup = subprocess.run(
            ["bash", str(ROOT / "scripts" / "docker_setup.sh")], capture_output=True, text=True, timeout=600
        )
        if setup.returncode != 0:
            why = (setup.stdout + setup.stderr).strip().splitlines()
            docker_unavailable(
                f"cannot build {local.local_image()}: {why[-1] if why else 'docker_setup.sh failed'}")
    yield client
    client.close()


def test_arbitrary_uid_read_only_root_and_model(
    ws: Workspace,
    iris_models: tuple[ModelRef, ModelRef],
    serve_venv: Path,
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "docker")
    _, v2 = iris_models
    info = ws.deployments.deploy(v2, name="iris", timeout=120)
    try:
        assert (info.state, info.ready) == ("available", 1)
        (replica,) = _replicas(ws)
        assert replica.kind == "docker" and replica.container
        container = docker_client.containers.get(replica.container)
        attrs = container.attrs
        host = attrs["HostConfig"]
        assert attrs["Config"]["User"] == local.DOCKER_USER
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert not host.get("Privileged")
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        assert mounts["/mnt/models"]["RW"] is False

        # Inside: the arbitrary uid in group 0, nothing writable but /tmp.
        probe = (
            "import os\n"
            "print(os.getuid(), os.getgid())\n"
            "for path in ('/mnt/models/x', '/x', '/opt/workbench-serve/site-packages/x', '/tmp/x'):\n"
            "    try:\n"
            "        open(path, 'w').close(); print(path, 'writable')\n"
            "    except OSError as exc:\n"
            "        print(path, 'refused', exc.errno)\n"
        )
        code, out = container.exec_run(["python3", "-c", probe])
        lines = out.decode().split("\n")
        assert code == 0, out
        assert lines[0] == "1000770000 0"
        # EROFS (30), not just EACCES: the mounts and the root are read-only, whatever the uid.
        assert lines[1:5] == [
            "/mnt/models/x refused 30",
            "/x refused 30",
            "/opt/workbench-serve/site-packages/x refused 30",
            "/tmp/x writable",
        ]

        # The server answers, at the model-level readiness check and the infer endpoint.
        assert local.is_ready("iris", replica)
        assert answers(ws.deployments.predict("iris", REQUEST)) == [0, 2]
        snap = ws.deployments.metrics("iris")
        assert snap.replicas_scraped == 1 and snap.requests_total >= 1
    finally:
        replicas = _replicas(ws)
        ws.deployments.undeploy("iris")
    for r in replicas:
        assert local._container_state(r.container) == "missing"


def _replicas(ws: Workspace) -> list[local.Replica]:
    import json

    row = ws.db.execute("SELECT runtime FROM deployments WHERE name='iris'").fetchone()
    return [local.Replica.from_json(r) for r in json.loads(row[0]).get("replicas", [])]
