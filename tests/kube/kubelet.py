"""Kubelets for the cluster double: the interface, pod status documents, and a fake that runs nothing.

A kubelet is handed each pod bound to its node once the pod's volumes can attach (``start``), is told
when the pod goes (``stop``), and dies with its node (``fail``: nothing more is reported). It reports
through the API server's ``pods/{name}/status`` like a real one. :class:`FakeKubelet` reports every
pod running and ready at once (a ``restartPolicy: Never`` pod then succeeds), for tests about
placement; :class:`tests.kube.docker_kubelet.DockerKubelet` runs the containers for real.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from tests.executors.kube_double import stamp

if TYPE_CHECKING:
    import aiohttp.web

    from tests.kube.controllers import ClusterDouble

Obj = dict[str, Any]


class Kubelet(Protocol):
    runs_exec: bool
    """True when ``pods/exec`` runs in the pod's container (else the double's host-folder stand-in)."""

    def start(self, pod: Obj) -> None: ...
    def stop(self, pod: Obj) -> None: ...
    def fail(self) -> None: ...
    def close(self) -> None: ...
    async def serve_exec(self, request: aiohttp.web.BaseRequest, pod: Obj) -> aiohttp.web.StreamResponse: ...


def now() -> str:
    return stamp()[:19] + "Z"


def running(name: str, image: str, ready: bool, restarts: int = 0) -> Obj:
    return {"name": name, "image": image, "ready": ready, "started": True, "restartCount": restarts,
            "state": {"running": {"startedAt": now()}}}


def terminated(name: str, image: str, code: int, reason: str = "", message: str = "") -> Obj:
    state: Obj = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"),
                  "finishedAt": now()}
    if message:
        state["message"] = message
    return {"name": name, "image": image, "ready": False, "started": False, "restartCount": 0,
            "state": {"terminated": state}}


def waiting(name: str, image: str, reason: str, message: str = "") -> Obj:
    state: Obj = {"reason": reason}
    if message:
        state["message"] = message
    return {"name": name, "image": image, "ready": False, "started": False, "restartCount": 0,
            "state": {"waiting": state}}


def conditions(initialized: bool, is_ready: bool) -> list[Obj]:
    def cond(kind: str, ok: bool) -> Obj:
        return {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now()}

    return [cond("PodScheduled", True), cond("Initialized", initialized),
            cond("ContainersReady", is_ready), cond("Ready", is_ready)]


class FakeKubelet:
    """Every pod runs and is ready at once; a pod that never restarts then succeeds."""

    runs_exec = False

    def __init__(self, cluster: ClusterDouble, node: str) -> None:
        self.cluster = cluster
        self.node = node

    def start(self, pod: Obj) -> None:
        spec, name = pod["spec"], pod["metadata"]["name"]
        inits = [terminated(c["name"], c.get("image", ""), 0) for c in spec.get("initContainers") or []]
        role = (pod["metadata"].get("labels") or {}).get("workbench.dev/role")
        done = spec.get("restartPolicy") in ("Never", "OnFailure") and role not in ("stage", "collect")
        status: Obj = {
            "phase": "Succeeded" if done else "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.1",
            "startTime": now(), "conditions": conditions(True, not done),
            "containerStatuses": [terminated(c["name"], c.get("image", ""), 0) if done
                                  else running(c["name"], c.get("image", ""), True)
                                  for c in spec["containers"]],
        }
        if inits:
            status["initContainerStatuses"] = inits
        self.cluster.patch(f"/api/v1/namespaces/{self.cluster.ns}/pods/{name}/status", {"status": status})
        if done:
            self.cluster.end_log(name)

    def stop(self, pod: Obj) -> None:
        pass

    def fail(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def serve_exec(self, request: aiohttp.web.BaseRequest, pod: Obj) -> aiohttp.web.StreamResponse:
        raise NotImplementedError("the fake kubelet leaves exec to the double's host-folder stand-in")
