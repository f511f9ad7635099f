"""A cluster run in a project with an S3 default remote: the Job gets an init container that fetches the
input snapshot from the bucket (workbench.remote.jobfetch in the job's image), the command's container
pushes the outputs back, and the host collects them from the remote instead of a helper pod.

The kube double has no kubelet: the test plays it, running the init container's and the command's
commands from the created Job (paths mapped onto the double's volume folders) against a real
SeaweedFS. Every object created is validated against the official schemas (the ``double`` fixture).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import obstore
import pytest

from tests.executors.kube_double import Controller, KubeDouble, Story
from tests.executors.test_kubernetes import JOBS, NS, PODS, _executor, controller, double  # noqa: F401
from tests.remote.conftest import seaweed  # noqa: F401  (the fixture)
from tests.remote.servers import SECRET_KEY, Seaweed, s3_env, s3_store
from workbench.core.workspace import Workspace
from workbench.executors.base import LaunchSpec

COMMAND = ["python3", "-c", "open('out.txt', 'w').write(open('data.csv').read().upper())"]


def _setup(ws: Workspace, server: Seaweed, bucket: str, monkeypatch: pytest.MonkeyPatch) -> LaunchSpec:
    server.make_bucket(bucket)
    for key, value in s3_env(server.endpoint).items():
        monkeypatch.setenv(key, value)
    ws.remote.add("origin", f"s3://{bucket}/p")
    (ws.root / "data.csv").write_text("a,b\n1,2\n")
    snapshot = ws.versions.snapshot("input").id
    return LaunchSpec(job_id="run1", command=list(COMMAND), project_root=ws.root, input_snapshot=snapshot,
                      image="registry.example/train:1", env={"WORKBENCH_RUN_ID": "run1"})


def _wait_for_job(kube: KubeDouble) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while not kube.objects(JOBS):
        assert time.monotonic() < deadline, "no Job was created"
        time.sleep(0.02)
    return kube.objects(JOBS)[0]


def _env_value(kube: KubeDouble, entry: dict[str, Any]) -> str:
    """An env entry's value, reading a ``secretKeyRef`` from the double's Secret as a kubelet would."""
    if "value" in entry:
        return str(entry["value"])
    ref = entry["valueFrom"]["secretKeyRef"]
    secret = kube.http("GET", f"/api/v1/namespaces/{NS}/secrets/{ref['name']}")
    if ref["key"] in (secret.get("data") or {}):
        return base64.b64decode(secret["data"][ref["key"]]).decode()
    return str(secret["stringData"][ref["key"]])


def _kubelet(kube: KubeDouble, container: dict[str, Any], scratch: Path) -> subprocess.CompletedProcess[str]:
    """Run one container of the Job on this host, its paths mapped onto the double's volume folders."""
    volume = kube.volumes / NS / "wb-run1-ws"
    places = {"/opt/workbench/lib": volume / "lib", "/workbench/jobfetch": scratch / "jobfetch",
              "/workbench/home": scratch / "home", "/workspace": volume / "workspace"}
    for folder in places.values():
        folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile("|".join(re.escape(k) for k in places))

    def mapped(text: str) -> str:
        return pattern.sub(lambda m: str(places[m.group(0)]), text)

    env = {"PATH": os.environ["PATH"], **{e["name"]: mapped(_env_value(kube, e)) for e in container["env"]}}
    return subprocess.run(container["command"], env=env, cwd=mapped(container["workingDir"]),
                          capture_output=True, text=True, timeout=120)


def test_a_cluster_job_fetches_its_inputs_in_an_init_container(
        ws: Workspace, seaweed: Seaweed, double: KubeDouble,  # noqa: F811
        controller: Callable[[Story], Controller], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        tmp_path: Path) -> None:
    spec = _setup(ws, seaweed, "k8s-ok", monkeypatch)
    hold = threading.Event()
    controller(Story(lines=["working"], hold=hold))
    executor = _executor(ws)
    job = executor.launch(spec)
    body = _wait_for_job(double)
    pod = body["spec"]["template"]["spec"]
    init, main = pod["initContainers"][0], pod["containers"][0]
    assert init["command"][:5] == ["python3", "-S", "-m", "workbench.remote.jobfetch", "fetch"]
    assert main["command"][-len(COMMAND):] == COMMAND and "--no-fetch" in main["command"]
    assert init["securityContext"] == main["securityContext"]  # restricted, like the command's
    # The host staged the package and jobfetch's modules, not the snapshot.
    volume = double.volumes / NS / "wb-run1-ws"
    assert not (volume / "workspace" / "data.csv").exists()
    assert (volume / "lib" / "deps" / "obstore").is_dir()
    plan = json.loads(next(e["value"] for e in init["env"] if e["name"] == "WORKBENCH_JOBFETCH_PLAN"))
    assert SECRET_KEY not in json.dumps(plan)  # credentials are never in the plan,
    assert SECRET_KEY not in json.dumps(body)  # nor anywhere in the Job: they come from the run's Secret
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in main["env"] if "valueFrom" in e}
    assert refs["AWS_SECRET_ACCESS_KEY"] == "wb-run1-creds" and init["env"] == main["env"]

    fetched = _kubelet(double, init, tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert (volume / "workspace" / "data.csv").read_text() == "a,b\n1,2\n"
    ran = _kubelet(double, main, tmp_path)
    assert ran.returncode == 0, ran.stderr
    hold.set()
    assert job.wait().status == "succeeded"
    outputs = executor.output_folder(spec, job)
    assert outputs is not None and outputs.paths == ["out.txt"]
    assert (outputs.folder / "out.txt").read_text() == "A,B\n1,2\n"
    outputs.discard()
    listing = obstore.get(s3_store(seaweed.endpoint, "k8s-ok"), "p/jobs/run1/outputs.json").bytes()
    assert json.loads(bytes(listing))["files"][0][0] == "out.txt"
    assert job.describe()["inputs_from"] == "remote origin (s3://k8s-ok/p)"
    executor.cleanup("run1", NS)
    assert not double.objects(f"/api/v1/namespaces/{NS}/secrets")


def test_a_damaged_input_fails_the_cluster_job_with_the_init_containers_line(
        ws: Workspace, seaweed: Seaweed, double: KubeDouble,  # noqa: F811
        controller: Callable[[Story], Controller], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        tmp_path: Path) -> None:
    spec = _setup(ws, seaweed, "k8s-bad", monkeypatch)
    ws.remote.push()
    digest = blake3.blake3(b"a,b\n1,2\n").hexdigest()
    bucket = s3_store(seaweed.endpoint, "k8s-bad")
    obstore.put(bucket, f"p/objects/{digest[:2]}/{digest[2:]}", b"Rnot the bytes")
    hold = threading.Event()
    controller(Story(hold=hold, exit_code=97))
    job = _executor(ws).launch(spec)
    init = _wait_for_job(double)["spec"]["template"]["spec"]["initContainers"][0]
    fetched = _kubelet(double, init, tmp_path)
    assert fetched.returncode == 97
    line = fetched.stderr.strip().removeprefix("workbench: ")
    assert len(fetched.stderr.strip().splitlines()) == 1
    pod = double.objects(PODS)[0]["metadata"]["name"]  # what kubelet reports from the termination log
    double.patch(f"{PODS}/{pod}/status", {"status": {"initContainerStatuses": [
        {"name": "fetch-inputs", "state": {"terminated": {"exitCode": 97, "message": line}}}]}})
    hold.set()
    exit_ = job.wait()
    assert exit_.status == "failed"
    assert exit_.reason.startswith("cannot fetch the input snapshot ")
    assert f"object {digest[:12]} received from the remote does not match its hash" in exit_.reason
