"""The Kubernetes executor against the kmock-based API-server double (tests/executors/kube_double.py).

Every object the executor creates is validated against the official schemas (kubernetes-validate,
strict) as it arrives at the double.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.executors.kube_double import Controller, KubeDouble, Story, status_doc
from workbench.core.workspace import Workspace
from workbench.errors import ExecutorError
from workbench.executors import k8s_job
from workbench.executors.base import LaunchSpec, SideChannel
from workbench.executors.kubernetes import KubernetesExecutor

NS = "ml"
IMAGE = "registry.example/train:1"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
PODS = f"/api/v1/namespaces/{NS}/pods"
PVCS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeDouble]:
    kube = KubeDouble(tmp_path / "cluster")
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", NS)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube.invalid = []  # type: ignore[attr-defined]

    def validate(method: str, path: str, body: bytes) -> None:
        if method == "POST" and body and "selfsubjectaccessreviews" not in path:
            try:
                kubernetes_validate.validate(json.loads(body), "1.33.0", strict=True)
            except Exception as exc:
                kube.invalid.append(f"{path}: {exc}")  # type: ignore[attr-defined]

    kube.faults.append(lambda m, p, b: validate(m, p, b))
    yield kube
    kube.close()
    assert not kube.invalid, kube.invalid  # type: ignore[attr-defined]


@pytest.fixture
def controller(double: KubeDouble) -> Iterator[Callable[[Story], Controller]]:
    made: list[Controller] = []

    def make(story: Story) -> Controller:
        control = Controller(double, NS, lambda job: story)
        made.append(control)
        return control

    yield make
    for control in made:
        control.close()


def _executor(ws: Workspace) -> KubernetesExecutor:
    # pending_timeout is how long an unschedulable pod may wait: short, a test waits for it to fail.
    return KubernetesExecutor(ws, poll=0.05, ready_timeout=60, pending_timeout=0.3)


def _spec(ws: Workspace, **kw: Any) -> LaunchSpec:
    (ws.root / "train.py").write_text("print('hi')\n")
    (ws.root / "data.csv").write_text("a,b\n1,2\n")
    snapshot = ws.versions.snapshot("input").id
    return LaunchSpec(
        job_id=kw.pop("job_id", "run1"),
        command=["python", "train.py", "--lr", "0.1"],
        project_root=ws.root,
        input_snapshot=snapshot,
        image=IMAGE,
        env={"WORKBENCH_RUN_ID": "run1", "WORKBENCH_PROJECT": str(ws.root)},
        side=SideChannel("WORKBENCH_EVENTS", ws.root / "x.jsonl", "@stdout", b"@@workbench@@ "),
        **kw,
    )


def _left_over(double: KubeDouble, wait: float = 60.0) -> list[str]:
    """Objects of ours still on the cluster once the double's garbage collector has had up to ``wait``
    seconds to delete them (returns as soon as none are left)."""
    deadline = time.monotonic() + wait
    while True:
        names = [
            o["metadata"]["name"]
            for path in (JOBS, PODS, PVCS)
            for o in double.objects(path)
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "workbench"
        ]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


def test_a_job_runs_streams_events_and_brings_outputs_back(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    controller(
        Story(
            lines=[
                "epoch=1 loss=0.5",
                '@@workbench@@ {"e":"metric","k":"acc","v":0.9}',
                '@@workbench@@ {"e":"output","path":"/workspace/models/m.pt"}',
                "done",
            ],
            writes={"models/m.pt": b"weights"},
        )
    )
    executor = _executor(ws)
    spec = _spec(ws, gpus=None, cpu="2", memory="1Gi")
    job = executor.launch(spec)
    out = list(job.lines())
    exit_ = job.wait()
    assert ("stdout", b"epoch=1 loss=0.5") in out
    assert ("event", b'{"e":"metric","k":"acc","v":0.9}') in out
    # As the job saw it: the caller confines it to the executor's workspace (tracking.confine).
    assert ("event", b'{"e":"output","path":"/workspace/models/m.pt"}') in out
    assert executor.workspace == "/workspace"
    assert (exit_.status, exit_.exit_code) == ("succeeded", 0)
    # The snapshot (not the live folder) was staged into the volume, with the workbench package.
    volume = double.volumes / NS / "wb-run1-ws"
    assert (volume / "workspace" / "train.py").read_text() == "print('hi')\n"
    assert (volume / "lib" / "workbench" / "tracking" / "api.py").exists()
    assert executor.collect_outputs(spec, job) == ["models/m.pt"]
    assert (ws.root / "models" / "m.pt").read_bytes() == b"weights"
    assert _left_over(double) == []
    facts = job.describe()
    assert facts["job"] == "wb-run1" and facts["namespace"] == NS and facts["pod"] == "wb-run1-abcde"


def test_the_pod_spec_fits_openshift_restricted(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    double.http(
        "POST",
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "gpu1"},
            "status": {"allocatable": {"nvidia.com/gpu": "4"}},
        },
    )
    hold = threading.Event()
    controller(Story(hold=hold))
    executor = _executor(ws)
    job = executor.launch(_spec(ws, gpus=2, memory="2g"))
    body = double.http("GET", f"{JOBS}/wb-run1")
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert body["spec"]["backoffLimit"] == 0
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert "runAsUser" not in json.dumps(body) and "fsGroup" not in json.dumps(body)
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2", "memory": "2Gi"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["WORKBENCH_EVENTS"] == "@stdout" and env["HOME"].startswith("/workbench/home")
    assert env["WORKBENCH_PROJECT"] == "/workspace"  # the project root as the pod sees it
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/workspace", env["HOME"], "/tmp"} <= mounts
    hold.set()
    assert job.wait().status == "succeeded"


@pytest.mark.parametrize(
    ("story", "words"),
    [
        (
            Story(exit_code=137, terminated_reason="OOMKilled"),
            "OOMKilled: the pod ran out of memory (limit 1Gi)",
        ),
        (Story(exit_code=1, job_failure="DeadlineExceeded"), "DeadlineExceeded: the Job ran longer"),
        (
            Story(exit_code=2),
            "BackoffLimitExceeded: the pod failed and the Job allows no more retries; exited with code 2",
        ),
        (
            Story(
                stuck=True,
                pending=[
                    {
                        "containerStatuses": [
                            {
                                "name": "run",
                                "state": {
                                    "waiting": {
                                        "reason": "ImagePullBackOff",
                                        "message": "Back-off pulling image",
                                    }
                                },
                            }
                        ]
                    }
                ],
            ),
            "ImagePullBackOff: image pull",
        ),
        (
            Story(
                stuck=True,
                pending=[
                    {
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                            }
                        ]
                    }
                ],
            ),
            "Unschedulable: no node has a free NVIDIA GPU",
        ),
    ],
)
def test_failures_are_recorded_in_words(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller], story: Story, words: str
) -> None:
    controller(story)
    executor = _executor(ws)
    job = executor.launch(_spec(ws, memory="1Gi"))
    list(job.lines())
    exit_ = job.wait()
    assert exit_.status == "failed"
    assert exit_.reason.startswith(words), exit_.reason
    executor.collect_outputs(_spec(ws, memory="1Gi"), job)
    assert _left_over(double) == []


def test_the_jobs_reason_is_awaited_after_the_pod_fails(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    """The pod fails first and the Job controller writes the Job's reason after it: the reason is
    the Job's even when that comes a second late (a loaded machine: "exited with code 2" before)."""
    controller(Story(exit_code=2, condition_after=1.0))
    executor = _executor(ws)
    job = executor.launch(_spec(ws))
    list(job.lines())
    exit_ = job.wait()
    assert exit_.status == "failed"
    assert exit_.reason == ("BackoffLimitExceeded: the pod failed and the Job allows no more retries;"
                            " exited with code 2")
    executor.collect_outputs(_spec(ws), job)


def test_without_the_jobs_reason_the_pods_words_are_used(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Job controller writes a reason: once the wait for it is over, the pod's own words."""
    monkeypatch.setattr(k8s_job, "JOB_REASON_GRACE", 0.5)
    controller(Story(exit_code=3, condition_after=None))
    executor = _executor(ws)
    job = executor.launch(_spec(ws))
    list(job.lines())
    exit_ = job.wait()
    assert (exit_.status, exit_.reason) == ("failed", "exited with code 3")
    executor.collect_outputs(_spec(ws), job)


def test_log_follow_resumes_after_drops_without_loss_or_duplicates(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    events = [f'@@workbench@@ {{"e":"metric","k":"loss","v":{i}}}' for i in range(40)]
    controller(Story(lines=events, drop_after=[5, 12, 3]))
    executor = _executor(ws)
    job = executor.launch(_spec(ws))
    got = [line for channel, line in job.lines() if channel == "event"]
    assert got == [e.removeprefix("@@workbench@@ ").encode() for e in events]
    assert job.follower is not None and job.follower.reconnects >= 3
    assert job.wait().status == "succeeded"


def test_same_timestamp_lines_are_counted_across_a_reconnect(double: KubeDouble) -> None:
    from workbench.executors.k8s_logs import LogFollower

    same = "2026-01-01T00:00:01.000000000Z"
    log = ["2026-01-01T00:00:00.5Z a", f"{same} b", f"{same} c", f"{same} d", "2026-01-01T00:00:02Z e"]
    calls: list[str | None] = []

    def fetch(since: str | None, follow: bool) -> Iterator[bytes]:
        calls.append(since)
        lines = log if since is None else [x for x in log if x[:19] >= since[:19]]
        cut = 3 if len(calls) == 1 else len(lines)  # the first connection drops after 3 lines
        for line in lines[:cut]:
            yield (line + "\n").encode()

    follower = LogFollower(fetch, ended=lambda: len(calls) >= 2, retry_delay=0)
    assert list(follower.lines()) == [b"a", b"b", b"c", b"d", b"e"]
    assert calls[1] == "2026-01-01T00:00:01Z"


def test_cancel_deletes_the_job_with_its_pods_and_the_volume(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    hold = threading.Event()
    controller(Story(lines=["working"], hold=hold))
    executor = _executor(ws)
    job = executor.launch(_spec(ws))
    deadline = time.monotonic() + 60
    while not double.objects(PODS):
        assert time.monotonic() < deadline, "the Job's pod never appeared"
        time.sleep(0.02)
    job.cancel()
    job.cancel()
    assert job.wait().status == "cancelled"
    deletes = [path for method, path in double.requests if method == "DELETE"]
    assert f"{JOBS}/wb-run1" in deletes
    assert _left_over(double) == []
    hold.set()


def test_missing_kubeconfig_is_one_line(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ExecutorError, match="no kubeconfig found") as info:
        _executor(ws).check(LaunchSpec("r", ["true"], ws.root, "", image=IMAGE))
    assert "oc login" in info.value.one_line()


def test_expired_credentials_are_one_line(ws: Workspace, double: KubeDouble) -> None:
    double.faults.insert(0, lambda m, p, b: (401, status_doc(401, "Unauthorized", "Unauthorized")))
    with pytest.raises(ExecutorError, match="rejected the credentials") as info:
        _executor(ws).launch(_spec(ws))
    assert "log in again" in info.value.one_line()
    assert not (ws.paths.runs / "run1").exists()


def test_forbidden_namespace_names_the_missing_permission(ws: Workspace, double: KubeDouble) -> None:
    def review(method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]] | None:
        if "selfsubjectaccessreviews" in path:
            spec = json.loads(body)["spec"]["resourceAttributes"]
            allowed = spec["resource"] != "jobs"
            return 201, {**json.loads(body), "status": {"allowed": allowed}}
        return None

    double.faults.insert(0, review)
    with pytest.raises(ExecutorError) as info:
        _executor(ws).launch(_spec(ws))
    assert info.value.one_line().startswith(
        "permission denied: missing permission to create jobs.batch in namespace ml"
    )
    assert not any(m == "POST" and "selfsubject" not in p for m, p in double.requests)


def test_a_403_on_create_names_the_permission_and_cleans_up(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    controller(Story())
    message = (
        'jobs.batch is forbidden: User "alice" cannot create resource "jobs" in API group "batch" '
        'in the namespace "ml"'
    )
    double.faults.insert(
        0, lambda m, p, b: (403, status_doc(403, "Forbidden", message)) if m == "POST" and p == JOBS else None
    )
    with pytest.raises(ExecutorError) as info:
        _executor(ws).launch(_spec(ws))
    assert "missing permission to create jobs.batch in namespace ml" in info.value.one_line()
    assert _left_over(double) == []  # the volume and the staging pod were removed again


def test_quota_exceeded_is_one_line_and_cleans_up(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    controller(Story())
    message = (
        'jobs.batch "wb-run1" is forbidden: exceeded quota: compute, requested: limits.memory=64Gi, '
        "used: limits.memory=0, limited: limits.memory=16Gi"
    )
    double.faults.insert(
        0, lambda m, p, b: (403, status_doc(403, "Forbidden", message)) if m == "POST" and p == JOBS else None
    )
    with pytest.raises(ExecutorError, match="quota exceeded while creating the Job") as info:
        _executor(ws).launch(_spec(ws, memory="64Gi"))
    assert "--memory" in info.value.one_line()
    assert _left_over(double) == []


def test_no_gpu_nodes_is_refused_before_anything_is_created(ws: Workspace, double: KubeDouble) -> None:
    double.http(
        "POST",
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "cpu1"},
            "status": {"allocatable": {"cpu": "8"}},
        },
    )
    with pytest.raises(ExecutorError, match=r"no node in the cluster offers nvidia\.com/gpu"):
        _executor(ws).launch(_spec(ws, gpus=1))
    assert _left_over(double) == []


def test_cluster_discovery_and_gpu_capacity(double: KubeDouble) -> None:
    from workbench.executors.cluster import discover

    double.emulator.resources["route.openshift.io/v1/routes"] = {}
    double.emulator.resources["serving.kserve.io/v1beta1/inferenceservices"] = {}
    double.http(
        "POST",
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "gpu1", "labels": {"nvidia.com/gpu.product": "NVIDIA-H100"}},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}, "capacity": {"nvidia.com/gpu": "8"}},
        },
    )
    double.http(
        "POST",
        f"{PODS}",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {
                "nodeName": "gpu1",
                "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "3"}}}],
            },
            "status": {"phase": "Running"},
        },
    )
    info = discover()
    assert info.capabilities["openshift"] and info.capabilities["kserve"]
    assert not info.capabilities["kubeflow_training"]
    assert [(n.node, n.allocatable, n.requested, n.free, n.product) for n in info.gpu_nodes] == [
        ("gpu1", 8, 3, 5, "NVIDIA-H100")
    ]
