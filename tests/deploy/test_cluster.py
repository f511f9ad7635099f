"""The cluster path against kmock (an in-process API server emulator) with scripted status changes.

kmock has no controllers: a small scripted "controller" coroutine plays the Job controller, the
Deployment controller and the kubelet, moving statuses through each rollout branch. The
synchronous kubernetes client runs in a thread beside the emulator's event loop.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client

from workbench.deploy import cluster as cluster_mod
from workbench.deploy import manifests
from workbench.deploy.cluster import ClusterTarget
from workbench.deploy.metrics import MetricsSampler
from workbench.deploy.types import DeploySpec, ModelRef
from workbench.errors import DeployError

NS = "ml"
MODEL = ModelRef(
    name="iris",
    version="2",
    hash="ab" * 32,
    framework="sklearn",
    framework_version="1.9.1",
    run_id="r-123",
    path="model.joblib",
)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_mod, "POLL", 0.05)


def target(emulator: kmock.KubernetesEmulator, kind: str = "kubernetes") -> ClusterTarget:
    # A real API server always knows the built-in kinds; kmock learns them when declared.
    for res, kind_name in (
        ("v1/pods", "Pod"),
        ("apps/v1/deployments", "Deployment"),
        ("batch/v1/jobs", "Job"),
        ("v1/configmaps", "ConfigMap"),
        ("v1/services", "Service"),
        ("v1/persistentvolumeclaims", "PersistentVolumeClaim"),
        ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget"),
        ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ):
        emulator.resources[res] = emulator.ResourceInfo(kind=kind_name, namespaced=True)
    config = client.Configuration(host=str(emulator.url).rstrip("/"))
    return ClusterTarget(client.ApiClient(config), NS, kind)


SHARED = {"storage_access": "ReadWriteMany"}
"""A model volume several replicas may mount (without one, or a remote to fetch from, 2 are refused)."""


def spec(replicas: int = 2) -> DeploySpec:
    return DeploySpec(
        name="iris",
        target="kubernetes",
        model=MODEL,
        replicas=replicas,
        namespace=NS,
        cpu="500m",
        memory="512Mi",
    )


def fetch(dest: Path) -> None:
    dest.write_bytes(b"model bytes" * 100)


def obj(emulator: kmock.KubernetesEmulator, res: str, name: str) -> Any:
    return emulator.objects[res, NS, name]


async def controller(
    emulator: kmock.KubernetesEmulator,
    pod_status: Callable[[int], dict[str, Any]] | None,
    dep_status: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Finish loader Jobs; give the Deployment a status and its pods the given status."""
    while True:
        for (res, ns, name), item in list(emulator.objects.items()):
            if item.deleted:
                continue
            raw = item.raw
            if res.plural == "jobs" and not raw.get("status"):
                item.patch({"status": {"succeeded": 1}})
            if res.plural == "deployments":
                item.patch({"status": dep_status(raw)})
                if pod_status is not None:
                    for i in range(int(raw["spec"]["replicas"])):
                        key = ("v1/pods", ns, f"{name}-pod-{i}")
                        if key not in emulator.objects:
                            emulator.objects[key] = {
                                "apiVersion": "v1",
                                "kind": "Pod",
                                "metadata": {
                                    "name": f"{name}-pod-{i}",
                                    "namespace": ns,
                                    "labels": raw["spec"]["selector"]["matchLabels"],
                                },
                            }
                        emulator.objects[key].patch({"status": pod_status(i)})
        await asyncio.sleep(0.02)


def healthy(raw: dict[str, Any]) -> dict[str, Any]:
    n = raw["spec"]["replicas"]
    return {
        "observedGeneration": raw["metadata"].get("generation", 0),
        "replicas": n,
        "updatedReplicas": n,
        "readyReplicas": n,
        "availableReplicas": n,
    }


async def run_with(
    emulator: kmock.KubernetesEmulator,
    dep_status: Callable[[dict[str, Any]], dict[str, Any]],
    pod_status: Callable[[int], dict[str, Any]] | None,
    fn: Callable[[], Any],
) -> Any:
    task = asyncio.create_task(controller(emulator, pod_status, dep_status))
    try:
        return await asyncio.to_thread(fn)
    finally:
        task.cancel()


async def test_deploy_applies_validated_objects_with_ssa(kmock: kmock.KubernetesEmulator) -> None:
    t = target(kmock)
    s = spec()
    objects = await asyncio.to_thread(t.render, s, 1, **SHARED)
    assert [o["kind"] for o in objects] == [
        "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget"
    ]
    status, endpoint = await run_with(kmock, healthy, None, lambda: t.apply(s, 1, objects, fetch, 5))
    assert status.state == "complete" and status.available == 2
    assert endpoint == f"http://iris.{NS}.svc:8080"
    dep = obj(kmock, "apps/v1/deployments", "iris").raw
    ann = dep["metadata"]["annotations"]
    assert ann["workbench.dev/artifact-hash"] == MODEL.hash and ann["workbench.dev/run"] == "r-123"
    pod = dep["spec"]["template"]["spec"]
    sec = pod["containers"][0]["securityContext"]
    assert sec["allowPrivilegeEscalation"] is False and sec["capabilities"] == {"drop": ["ALL"]}
    assert "runAsUser" not in pod["securityContext"] and "fsGroup" not in pod["securityContext"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/v2/models/iris/ready"
    assert pod["containers"][0]["volumeMounts"][0]["readOnly"] is True
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # Every write was server-side apply (or a create where the object was new).
    patches = list(kmock["patch"])
    assert patches and all(r.headers["Content-Type"] == "application/apply-patch+yaml" for r in patches)
    assert all(r.params.get("fieldManager") == "workbench" for r in patches)
    # The loader's ConfigMaps and Job are cleaned up after the copy.
    leftovers = [
        k for k, v in kmock.objects.items() if not v.deleted and k[0].plural in ("jobs", "configmaps")
    ]
    assert leftovers == []


async def test_scale_uses_the_scale_subresource(kmock: kmock.KubernetesEmulator) -> None:
    t = target(kmock)
    s = spec()
    objects = await asyncio.to_thread(t.render, s, 1, **SHARED)
    await run_with(kmock, healthy, None, lambda: t.apply(s, 1, objects, fetch, 5))
    status = await run_with(kmock, healthy, None, lambda: t.scale("iris", 4, 5))
    assert status.state == "complete" and status.desired == 4
    assert any(r.subresource == "scale" and r.name == "iris" for r in kmock["patch"])


def stuck(updated: int, available: int, **extra: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def status(raw: dict[str, Any]) -> dict[str, Any]:
        n = raw["spec"]["replicas"]
        return {
            "observedGeneration": raw["metadata"].get("generation", 0),
            "replicas": n,
            "updatedReplicas": updated,
            "availableReplicas": available,
            **extra,
        }

    return status


WAITING = {
    "containerStatuses": [
        {
            "name": "mlserver",
            "image": "docker.io/seldonio/mlserver:1.7.1-sklearn",
            "ready": False,
            "restartCount": 0,
            "state": {},
        }
    ]
}


def waiting(reason: str, message: str = "", **more: Any) -> Callable[[int], dict[str, Any]]:
    def status(i: int) -> dict[str, Any]:
        data = copy.deepcopy(WAITING)
        data["containerStatuses"][0]["state"] = {"waiting": {"reason": reason, "message": message}}
        data["containerStatuses"][0].update(more)
        return data

    return status


UNSCHEDULABLE = {
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ]
}
SCC = {
    "conditions": [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": 'pods "iris-7d" is forbidden: unable to validate against any security '
            "context constraint: [spec.containers[0].securityContext.runAsUser: Invalid "
            "value: 0: must be in the ranges: [1000770000, 1000779999]]",
        }
    ]
}
DEADLINE = {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}


@pytest.mark.parametrize(
    ("dep_status", "pod_status", "state", "words"),
    [
        (stuck(1, 0), None, "failed", "1 out of 2 new replicas have been updated"),
        (stuck(2, 1), None, "failed", "1 of 2 updated replicas are available"),
        (stuck(2, 0, **DEADLINE), None, "failed", "exceeded its progress deadline"),
        (
            stuck(2, 0),
            waiting("ImagePullBackOff", "Back-off pulling image"),
            "failed",
            "cannot pull image docker.io/seldonio/mlserver:1.7.1-sklearn",
        ),
        (
            stuck(2, 0),
            waiting(
                "CrashLoopBackOff",
                restartCount=5,
                lastState={"terminated": {"exitCode": 1, "reason": "Error"}},
            ),
            "failed",
            "keeps crashing (restarted 5 times, last exit code 1, Error)",
        ),
        (stuck(2, 0), lambda i: UNSCHEDULABLE, "failed", "cannot be scheduled: 0/3 nodes are available"),
        (stuck(0, 0, **SCC), None, "failed", "security rules refused the pods"),
        (healthy, None, "complete", "successfully rolled out"),
    ],
)
async def test_rollout_branches(
    kmock: kmock.KubernetesEmulator, dep_status: Any, pod_status: Any, state: str, words: str
) -> None:
    t = target(kmock)
    s = spec()
    objects = await asyncio.to_thread(t.render, s, 1, **SHARED)
    status, _ = await run_with(kmock, dep_status, pod_status, lambda: t.apply(s, 1, objects, fetch, 0.6))
    assert status.state == state
    text = " ".join([status.message, *status.reasons])
    assert words in text


async def test_spec_change_not_observed_yet_is_progressing(kmock: kmock.KubernetesEmulator) -> None:
    from workbench.deploy.rollout import deployment_status

    dep = {
        "metadata": {"name": "iris", "generation": 3},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2},
    }
    assert deployment_status(dep).message == "waiting for the deployment spec update to be observed"


async def test_openshift_route_and_kserve(kmock: kmock.KubernetesEmulator) -> None:
    kmock.resources["route.openshift.io/v1/routes"] = kmock.ResourceInfo(kind="Route", namespaced=True)
    t = target(kmock, "openshift")
    objects = await asyncio.to_thread(t.render, spec(), 1, **SHARED)
    assert [o["kind"] for o in objects][-1] == "Route"
    assert objects[-1]["spec"]["tls"]["termination"] == "edge"
    kmock.resources["serving.kserve.io/v1beta1/inferenceservices"] = kmock.ResourceInfo(
        kind="InferenceService", namespaced=True
    )
    t = target(kmock, "kubernetes")
    kinds = [o["kind"] for o in await asyncio.to_thread(t.render, spec(), 1, **SHARED)]
    assert kinds == ["PersistentVolumeClaim", "ServingRuntime", "InferenceService"]


async def test_missing_permission_is_named(kmock: kmock.KubernetesEmulator) -> None:
    (
        kmock["patch", kmock.resource("apps/v1/deployments")]
        << 403
        << (
            {
                "kind": "Status",
                "status": "Failure",
                "reason": "Forbidden",
                "code": 403,
                "message": 'deployments.apps "iris" is forbidden: User "dev" cannot patch resource '
                '"deployments" in API group "apps" in the namespace "ml"',
            }
        )
    )
    t = target(kmock)
    kmock.objects["apps/v1/deployments", NS, "iris"] = manifests.deployment(spec(), 1)
    with pytest.raises(DeployError) as err:
        await asyncio.to_thread(t.apply_object, manifests.deployment(spec(), 1))
    assert "missing permission: patch deployments.apps in namespace ml" in err.value.one_line()


def test_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(DeployError, match="no credentials"):
        ClusterTarget.connect("kubernetes")


async def test_predict_and_metrics_go_through_the_api_server_proxy(kmock: kmock.KubernetesEmulator) -> None:
    """From outside the cluster: infer via the Service proxy, metrics from every ready pod's proxy."""
    infer = f"/api/v1/namespaces/{NS}/services/iris:http/proxy/v2/models/iris/infer"
    kmock[f"post {infer}"] << {"model_name": "iris", "outputs": [{"name": "predict", "data": [2]}]}
    line = 'rest_server_requests_total{path="/v2/models/{model_name}/infer",status_code="%s"} %d\n'
    kmock[f"get /api/v1/namespaces/{NS}/pods/iris-pod-0:8082/proxy/metrics"] << (line % ("200", 5)).encode()
    kmock[f"get /api/v1/namespaces/{NS}/pods/iris-pod-1:8082/proxy/metrics"] << (line % ("500", 1)).encode()
    t = target(kmock)
    answer = await asyncio.to_thread(t.infer, "iris", {"inputs": []})
    assert answer["outputs"][0]["data"] == [2]
    dep = manifests.deployment(spec(), 1)
    kmock.objects["apps/v1/deployments", NS, "iris"] = dep
    labels = dep["spec"]["selector"]["matchLabels"]
    for i, ready in enumerate(("True", "True", "False")):
        kmock.objects["v1/pods", NS, f"iris-pod-{i}"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"iris-pod-{i}", "namespace": NS, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }
    texts = await asyncio.to_thread(t.metrics_texts, "iris")
    assert len(texts) == 2  # the pod that is not ready is not scraped
    snap = MetricsSampler().sample_texts("iris", texts)
    assert (snap.requests_total, snap.errors_total, snap.replicas_scraped) == (6, 1, 2)


def defaulted(raw: dict[str, Any]) -> dict[str, Any]:
    """A healthy status for a Deployment whose replicas an autoscaler owns (the API server's default: 1)."""
    return healthy({**raw, "spec": {**raw["spec"], "replicas": raw["spec"].get("replicas", 1)}})


def live(emulator: kmock.KubernetesEmulator, res: str) -> list[str]:
    return [k[2] for k, v in emulator.objects.items() if k[0] == res and not v.deleted]


async def test_autoscaler_then_manual_scale_then_a_fixed_count(kmock: kmock.KubernetesEmulator) -> None:
    """--min/--max-replicas make an HPA and leave replicas to it; scale N deletes it and sets N; a
    later revision without autoscaling leaves no HPA behind; undeploy removes the budget too."""
    t = target(kmock)
    s = DeploySpec(**{**spec().__dict__, "min_replicas": 2, "max_replicas": 6, "target_cpu": 60})
    objects = await asyncio.to_thread(t.render, s, 1, **SHARED)
    kinds = [o["kind"] for o in objects]
    assert kinds[-2:] == ["PodDisruptionBudget", "HorizontalPodAutoscaler"]
    status, _ = await run_with(kmock, defaulted, None, lambda: t.apply(s, 1, objects, fetch, 5))
    assert status.state == "complete"
    hpa = obj(kmock, "autoscaling/v2/horizontalpodautoscalers", "iris").raw
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"}
    assert "replicas" not in obj(kmock, "apps/v1/deployments", "iris").raw["spec"]

    status = await run_with(kmock, defaulted, None, lambda: t.scale("iris", 3, 5))
    assert status.desired == 3
    assert live(kmock, "autoscaling/v2/horizontalpodautoscalers") == []

    fixed = spec(replicas=1)
    objects = await asyncio.to_thread(t.render, fixed, 2)
    assert "PodDisruptionBudget" not in [o["kind"] for o in objects]  # one replica: nothing to keep up
    await run_with(kmock, healthy, None, lambda: t.apply(fixed, 2, objects, fetch, 5))
    assert live(kmock, "policy/v1/poddisruptionbudgets") == []
    assert live(kmock, "autoscaling/v2/horizontalpodautoscalers") == []
    await asyncio.to_thread(t.remove, "iris")
    assert live(kmock, "apps/v1/deployments") == []
