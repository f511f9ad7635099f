"""Executors refuse what they cannot do, and never turn a value into access.

- The local executor applies ``--gpus N`` through ``CUDA_VISIBLE_DEVICES`` and refuses what it
  cannot honour (more GPUs than there are, ``--cpu``, ``--memory``) before the run is recorded.
- The Docker executor mounts the run's workspace, its run folder and the workbench package, nothing
  else: a host folder named in an environment value (``PYTHONPATH``...) reaches the container as
  text, not as a mount. Checked against the real daemon.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_bad_input import ENV, Case, check
from tests.conftest import run_workbench
from tests.executors.conftest import IMAGE, docker_client  # noqa: F401 - the fixture
from workbench.core.workspace import Workspace
from workbench.executors.base import LaunchSpec
from workbench.executors.docker import DockerExecutor

SHOW_GPUS = "import os; print('visible=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'))"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    assert run_workbench(root, "init").returncode == 0
    return root


def _runs(root: Path) -> list[dict[str, Any]]:
    result = run_workbench(root, "runs", "--json")
    assert result.returncode == 0, result.stderr
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


@pytest.mark.parametrize("options, needle", [
    (("--cpu", "2"), "cannot enforce --cpu (use --executor docker"),
    (("--memory", "1Gi"), "cannot enforce --memory (use --executor docker"),
    (("--cpu", "1", "--memory", "1Gi"), "cannot enforce --cpu and --memory"),
])
def test_local_refuses_cpu_and_memory_limits(project: Path, options: tuple[str, ...], needle: str) -> None:
    argv = ("run", *options, "--", "python", "-c", "pass")
    result = run_workbench(project, *argv, env=ENV)
    check(result, Case(argv))
    assert needle in result.stderr
    assert _runs(project) == [], "refused before anything is recorded"


def test_local_gpus_become_cuda_visible_devices(project: Path) -> None:
    env = {**ENV, "CUDA_VISIBLE_DEVICES": "3,5,7"}
    ok = run_workbench(project, "run", "--gpus", "2", "--", "python", "-c", SHOW_GPUS, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "visible=3,5" in ok.stdout
    every = run_workbench(project, "run", "--gpus", "all", "--", "python", "-c", SHOW_GPUS, env=env)
    assert every.returncode == 0 and "visible=3,5,7" in every.stdout
    none = run_workbench(project, "run", "--", "python", "-c", SHOW_GPUS, env=env)
    assert none.returncode == 0 and "visible=3,5,7" in none.stdout
    argv = ("run", "--gpus", "4", "--", "python", "-c", SHOW_GPUS)
    too_many = run_workbench(project, *argv, env=env)
    check(too_many, Case(argv))
    assert "--gpus 4: this machine has only 3 GPU(s) (3,5,7)" in too_many.stderr
    assert len(_runs(project)) == 3


def test_local_gpus_on_a_machine_without_any_is_refused(project: Path) -> None:
    argv = ("run", "--gpus", "1", "--", "python", "-c", SHOW_GPUS)
    result = run_workbench(project, *argv, env={**ENV, "CUDA_VISIBLE_DEVICES": ""})
    check(result, Case(argv))
    assert "--gpus 1: this machine has no GPU to give" in result.stderr
    assert _runs(project) == []


# -- Docker ----------------------------------------------------------------------------------------
PROBE = """\
import os
mounts = sorted({line.split()[4] for line in open("/proc/self/mountinfo")})
print("mounts=" + ",".join(m for m in mounts if m.startswith(("/opt", "/workspace", "/workbench", "/srv",
                                                                "/tmp", "/root", "/home", "/work"))))
print("value=" + os.environ["DATA_DIR"])
print("pythonpath=" + os.environ["PYTHONPATH"])
print("seen=" + str(os.path.exists(os.environ["DATA_DIR"])))
"""


@pytest.mark.docker
def test_docker_mounts_only_the_run_never_a_folder_named_in_the_environment(
    ws: Workspace, docker_client: Any, tmp_path: Path  # noqa: F811 - the fixture
) -> None:
    host = tmp_path / "host-secrets"
    host.mkdir()
    (host / "key.txt").write_text("must not reach the container\n")
    (ws.root / "probe.py").write_text(PROBE)
    executor = DockerExecutor(ws)
    spec = LaunchSpec(
        job_id=f"m{time.time_ns()}", command=["python3", "probe.py"], project_root=ws.root,
        input_snapshot=ws.versions.snapshot("mounts").id, image=IMAGE,
        env={"DATA_DIR": str(host), "PYTHONPATH": f"{host}:{ws.root}/src"},
    )
    kwargs = executor._container_kwargs(spec, IMAGE, tmp_path / "work", tmp_path / "meta", "1000:0")
    assert {v["bind"] for v in kwargs["volumes"].values()} == {
        "/workspace", "/workbench/run", "/opt/workbench/lib/workbench"}
    assert str(host) not in kwargs["volumes"]
    job = executor.launch(spec)
    lines = [line.decode() for _, line in job.lines()]
    exit_ = job.wait()
    assert exit_.status == "succeeded", lines
    out = dict(line.split("=", 1) for line in lines if "=" in line)
    assert out["mounts"] == "/opt/workbench/lib/workbench,/workbench/run,/workspace", out
    assert out["value"] == str(host)  # passed as a value, unchanged
    assert out["pythonpath"] == f"/opt/workbench/lib:{host}:/workspace/src"  # the project is mapped
    assert out["seen"] == "False"
