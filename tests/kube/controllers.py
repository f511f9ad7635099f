"""A cluster for tests: the API-server double plus nodes and the controllers a real cluster runs.

:class:`ClusterDouble` extends :class:`tests.executors.kube_double.KubeDouble` (kmock's emulator in a
thread, reached over HTTP through a kubeconfig like any API server) with one control thread that
plays, each tick, what a cluster's control plane does for the objects Workbench makes:

* the node lifecycle controller: a node that stops reporting is NotReady and tainted
  ``node.kubernetes.io/unreachable:NoExecute``; after ``eviction_delay`` its pods are evicted;
  pods bound to a deleted node are garbage-collected;
* the Job controller (one pod per Job, ``Complete``/``Failed`` conditions, pods go with the Job);
* the Deployment controller (pods labelled ``pod-template-hash``; a rolling update honouring
  ``maxSurge``/``maxUnavailable``; replacements for evicted pods; the status ``kubectl rollout
  status`` reads), and the garbage collector for pods of deleted Deployments;
* the scheduler (:mod:`tests.kube.scheduler`): binds pods to nodes or marks them Unschedulable;
* the attach/detach controller: a ReadWriteOnce claim in use on one node cannot attach on another:
  the pod stays ``ContainerCreating`` with a ``FailedAttachVolume`` Multi-Attach event, as on a
  real cluster with block storage; ReadOnlyMany/ReadWriteMany claims attach anywhere;
* each node's kubelet (:mod:`tests.kube.kubelet`): the fake one reports pods running and ready at
  once; the Docker one runs them as real containers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock

from tests.executors.kube_double import KubeDouble, stamp
from tests.kube import scheduler
from tests.kube.kubelet import FakeKubelet, Kubelet

Obj = dict[str, Any]
KINDS = {
    "v1/pods": "Pod", "v1/persistentvolumeclaims": "PersistentVolumeClaim", "v1/nodes": "Node",
    "v1/events": "Event", "v1/configmaps": "ConfigMap", "v1/secrets": "Secret", "v1/services": "Service",
    "apps/v1/deployments": "Deployment", "batch/v1/jobs": "Job",
    "policy/v1/poddisruptionbudgets": "PodDisruptionBudget",
    "autoscaling/v2/horizontalpodautoscalers": "HorizontalPodAutoscaler",
}
CLUSTER_SCOPED = {"v1/nodes"}
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def template_hash(template: Obj) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


class ClusterDouble(KubeDouble):
    """The API-server double with nodes, a scheduler, controllers and a kubelet per node."""

    def __init__(self, root: Path, namespace: str = "ml", *,
                 kubelet: Callable[[ClusterDouble, str], Kubelet] = FakeKubelet,
                 eviction_delay: float = 0.0, tick: float = 0.03) -> None:
        super().__init__(root)
        for res, kind in KINDS.items():
            self.emulator.resources[res] = kmock.ResourceInfo(kind=kind, namespaced=res not in CLUSTER_SCOPED)
        self.ns = namespace
        self.make_kubelet = kubelet
        self.kubelets: dict[str, Kubelet] = {}
        self.eviction_delay = eviction_delay
        self.tick_seconds = tick
        self.started: dict[str, str] = {}
        """uid of each pod a kubelet started -> its node (its claims stay attached there)."""
        self.started_pods: dict[str, Obj] = {}
        self.not_ready_since: dict[str, float] = {}
        self.warned: set[tuple[str, str]] = set()
        self.errors: list[str] = []
        self.spec_seen: dict[str, str] = {}
        self.turn = 0
        self.gateway = ""
        """The pod network's gateway, the host as pods see it (set where pods get a network)."""
        self.timeline: list[tuple[float, str, str]] = []
        """(monotonic time, pod, what its kubelet reported): where a slow test spent its time."""
        self.now: dict[str, list[Obj]] = {}
        """The tick's snapshot of the objects (see :meth:`snapshot`)."""
        self.lock = threading.Lock()
        self._halt = threading.Event()
        self._control = threading.Thread(target=self._run, name="cluster-control", daemon=True)
        self._control.start()

    # -- the test's handles ---------------------------------------------------------------------
    def add_node(self, name: str, **kw: Any) -> None:
        """Register a Ready node (see :func:`tests.kube.scheduler.make_node` for the options)."""
        with self.lock:
            self.kubelets[name] = self.make_kubelet(self, name)
        self.http("POST", "/api/v1/nodes", scheduler.make_node(name, **kw))

    def fail_node(self, name: str) -> None:
        """The server dies: its kubelet stops (containers killed) and stops posting status."""
        with self.lock:
            kubelet = self.kubelets.pop(name, None)
        if kubelet is not None:
            kubelet.fail()
        self.patch(f"/api/v1/nodes/{name}/status", {"status": {"conditions": [
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
             "message": "Kubelet stopped posting node status."}]}})

    def delete_node(self, name: str) -> None:
        with self.lock:
            kubelet = self.kubelets.pop(name, None)
        if kubelet is not None:
            kubelet.fail()
        self.http("DELETE", f"/api/v1/nodes/{name}")

    def snapshot(self) -> dict[str, list[Obj]]:
        """Copies of the live objects by plural, read on the server's loop (HTTP lists cost ~15 ms each
        through kmock: a tick reads once, then writes through HTTP so watches see every change)."""
        return asyncio.run_coroutine_threadsafe(self.read_objects(), self.loop).result(30)

    def pods(self, selector: dict[str, str] | None = None) -> list[Obj]:
        found = self.snapshot().get("pods", [])
        return [p for p in found if all(labels_of(p).get(k) == v for k, v in (selector or {}).items())]

    def events(self, reason: str | None = None) -> list[Obj]:
        found = self.snapshot().get("events", [])
        return [e for e in found if reason is None or e.get("reason") == reason]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Poll ``check`` until it answers something true; fail naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            answer = check()
            if answer:
                return answer
            if self.errors:
                raise AssertionError(f"the cluster double failed: {self.errors}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        self._halt.set()
        self._control.join(30)
        with self.lock:
            kubelets, self.kubelets = list(self.kubelets.values()), {}
        for kubelet in kubelets:
            kubelet.close()
        super().close()

    async def serve_proxy(self, request: aiohttp.web.BaseRequest,
                          body: bytes) -> aiohttp.web.StreamResponse | None:
        from tests.kube.proxy import serve_proxy

        return await serve_proxy(self, request, body)

    async def read_objects(self) -> dict[str, list[Obj]]:
        """Copies of the namespace's live objects and the nodes, by plural (on the server's loop)."""
        out: dict[str, list[Obj]] = {}
        for (res, ns, _), obj in list(self.emulator.objects.items()):
            if not obj.deleted and (ns == self.ns or res.plural == "nodes"):
                out.setdefault(str(res.plural), []).append(json.loads(json.dumps(obj.raw)))
        return out

    def after_write(self, path: str) -> None:
        """A Deployment's spec changed (apply, patch, the scale subresource): a new generation, so a
        client waits until the controller has observed it (kmock keeps no generation)."""
        parts = path.strip("/").split("/")
        if len(parts) < 7 or parts[:3] != ["apis", "apps", "v1"] or parts[5] != "deployments":
            return
        if len(parts) > 7 and parts[7] != "scale":
            return  # the status subresource: no new generation
        for (res, ns, name), obj in self.emulator.objects.items():
            if res.plural == "deployments" and ns == parts[4] and name == parts[6] and not obj.deleted:
                spec = json.dumps(obj.raw.get("spec"), sort_keys=True)
                if self.spec_seen.get(name) != spec:
                    self.spec_seen[name] = spec
                    meta = obj.raw.get("metadata") or {}
                    obj.patch({"metadata": {"generation": int(meta.get("generation") or 0) + 1}})

    # -- exec goes to the pod's kubelet ---------------------------------------------------------
    async def serve_exec(self, request: aiohttp.web.BaseRequest, namespace: str,
                         pod: str) -> aiohttp.web.StreamResponse:
        found = await asyncio.to_thread(self.http, "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}")
        kubelet = self.kubelets.get(str(found.get("spec", {}).get("nodeName", "")))
        if kubelet is None or not kubelet.runs_exec:
            return await super().serve_exec(request, namespace, pod)
        return await kubelet.serve_exec(request, found)

    # -- the control loop -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self.tick()
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 409):  # an object went meanwhile: the next tick sees it
                    self.errors.append(f"HTTP {exc.code} {exc.url}")
            except Exception as exc:  # recorded: wait_for fails the test with it
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._halt.wait(self.tick_seconds)

    def tick(self) -> None:
        base = f"/api/v1/namespaces/{self.ns}"
        self.now = self.snapshot()
        nodes = self.now.get("nodes", [])
        self._lifecycle(nodes)
        self.now = self.snapshot()  # without the evicted pods
        for claim in self.now.get("persistentvolumeclaims", []):
            if (claim.get("status") or {}).get("phase") != "Bound":
                self.patch(f"{base}/persistentvolumeclaims/{name_of(claim)}/status",
                           {"status": {"phase": "Bound", "accessModes": claim["spec"]["accessModes"]}})
        self._jobs()
        self._deployments()
        self.now = self.snapshot()
        pods = self.now.get("pods", [])
        self._reap({p["metadata"].get("uid", name_of(p)) for p in pods})
        self._schedule(pods, nodes)
        self.now = self.snapshot()
        self._start(self.now.get("pods", []))

    def _lifecycle(self, nodes: list[Obj]) -> None:
        live = {name_of(n) for n in nodes}
        now = time.monotonic()
        for node in nodes:
            name = name_of(node)
            if scheduler.node_ready(node):
                self.not_ready_since.pop(name, None)
                continue
            since = self.not_ready_since.setdefault(name, now)
            taints = (node.get("spec") or {}).get("taints") or []
            if not any(t.get("key") == UNREACHABLE["key"] for t in taints):
                self.patch(f"/api/v1/nodes/{name}", {"spec": {"taints": [*taints, dict(UNREACHABLE)]}})
            for pod in self.now.get("pods", []):  # MarkPodsNotReady: out of the Services' endpoints
                if pod["spec"].get("nodeName") == name and ready(pod):
                    conditions = [{**c, "status": "False"} if c.get("type") == "Ready" else c
                                  for c in pod["status"]["conditions"]]
                    self.patch(f"/api/v1/namespaces/{self.ns}/pods/{name_of(pod)}/status",
                               {"status": {"conditions": conditions}})
            if now - since >= self.eviction_delay:
                for pod in self.now.get("pods", []):
                    if pod["spec"].get("nodeName") == name and not finished(pod):
                        self._delete_pod(pod, "evicted: node not ready")
        for pod in self.now.get("pods", []):  # the pod garbage collector: pods of a node that is gone
            if pod["spec"].get("nodeName") and pod["spec"]["nodeName"] not in live:
                self._delete_pod(pod, "node deleted")

    def _reap(self, present: set[str]) -> None:
        """Pods deleted by anyone (the product, a Job's deletion): their kubelet stops them."""
        for uid in [u for u in self.started if u not in present]:
            with self.lock:
                node = self.started.pop(uid, None)
                pod = self.started_pods.pop(uid, None)
                kubelet = self.kubelets.get(node or "")
            if kubelet is not None and pod is not None:
                kubelet.stop(pod)

    def _delete_pod(self, pod: Obj, why: str) -> None:
        uid = pod["metadata"].get("uid", name_of(pod))
        with self.lock:
            node = self.started.pop(uid, None)
            self.started_pods.pop(uid, None)
            kubelet = self.kubelets.get(node or "")
        if kubelet is not None:
            kubelet.stop(pod)
        try:
            self.http("DELETE", f"/api/v1/namespaces/{self.ns}/pods/{name_of(pod)}")
        except urllib.error.HTTPError:
            pass

    def _new_pod(self, owner: Obj, kind: str, extra_labels: dict[str, str]) -> None:
        template = owner["spec"]["template"]
        name = f"{name_of(owner)}-{extra_labels.get('pod-template-hash', '')[:5]}{secrets.token_hex(3)}"
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name.replace("--", "-"), "namespace": self.ns, "uid": secrets.token_hex(8),
                "creationTimestamp": stamp(),
                "labels": {**(template.get("metadata") or {}).get("labels", {}), **extra_labels},
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": kind,
                                     "name": name_of(owner), "uid": owner["metadata"].get("uid", "")}],
            },
            "spec": json.loads(json.dumps(template["spec"])),
            "status": {"phase": "Pending"},
        }
        self.http("POST", f"/api/v1/namespaces/{self.ns}/pods", pod)

    def _owned(self, kind: str, owner: str) -> list[Obj]:
        return [p for p in self.now.get("pods", [])
                if any(r.get("kind") == kind and r.get("name") == owner
                       for r in p["metadata"].get("ownerReferences") or [])]

    def _orphans(self, kind: str, present: set[str]) -> None:
        for pod in self.now.get("pods", []):
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == kind and ref.get("name") not in present:
                    self._delete_pod(pod, f"{kind} deleted")

    def _jobs(self) -> None:
        path = f"/apis/batch/v1/namespaces/{self.ns}/jobs"
        jobs = self.now.get("jobs", [])
        self._orphans("Job", {name_of(j) for j in jobs})
        for job in jobs:
            status = job.get("status") or {}
            if any(c.get("status") == "True" for c in status.get("conditions") or []):
                continue
            pods = self._owned("Job", name_of(job))
            if not pods:
                self._new_pod(job, "Job", {"job-name": name_of(job)})
                continue
            pod = pods[0]
            if finished(pod):
                ok = pod["status"]["phase"] == "Succeeded"
                condition = ({"type": "Complete", "status": "True"} if ok else
                             {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                              "message": "Job has reached the specified backoff limit"})
                self.patch(f"{path}/{name_of(job)}/status", {"status": {
                    "conditions": [condition], "succeeded" if ok else "failed": 1, "active": 0}})
            elif not status.get("active"):
                self.patch(f"{path}/{name_of(job)}/status", {"status": {"active": 1, "startTime": stamp()}})

    def _deployments(self) -> None:
        path = f"/apis/apps/v1/namespaces/{self.ns}/deployments"
        deployments = self.now.get("deployments", [])
        self._orphans("Deployment", {name_of(d) for d in deployments})
        for dep in deployments:
            spec = dep["spec"]
            want = int(spec.get("replicas", 1))
            current = template_hash(spec["template"])
            pods = [p for p in self._owned("Deployment", name_of(dep)) if not finished(p)]
            new = [p for p in pods if labels_of(p).get("pod-template-hash") == current]
            old = [p for p in pods if p not in new]
            rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
            surge = int(rolling.get("maxSurge", 1))
            unavailable = int(rolling.get("maxUnavailable", 0))
            creating = max(0, min(want - len(new), want + surge - len(pods)))
            for _ in range(creating):
                self._new_pod(dep, "Deployment", {"pod-template-hash": current})
            # Old pods go once enough new ones are available (never below want - maxUnavailable).
            new_ready = sum(1 for p in new if ready(p))
            keep_old = max(0, want - unavailable - new_ready)
            going = sorted(old, key=ready)[: max(0, len(old) - keep_old)]
            going += sorted(new, key=ready)[: max(0, len(new) - want)]
            for pod in going:
                self._delete_pod(pod, "rolling update or scale down")
            if creating or going:
                continue  # the status is written from the next tick's snapshot, never a stale one
            up = sum(1 for p in pods if ready(p))
            updated = sum(1 for p in pods if labels_of(p).get("pod-template-hash") == current)
            status = {"observedGeneration": int(dep["metadata"].get("generation", 0)), "replicas": len(pods),
                      "updatedReplicas": updated, "readyReplicas": up, "availableReplicas": up,
                      "unavailableReplicas": max(0, len(pods) - up)}
            if {k: (dep.get("status") or {}).get(k) for k in status} != status:
                self.patch(f"{path}/{name_of(dep)}/status", {"status": status})

    def _schedule(self, pods: list[Obj], nodes: list[Obj]) -> None:
        bound: dict[str, list[Obj]] = {}
        for pod in pods:
            if pod["spec"].get("nodeName") and not finished(pod):
                bound.setdefault(pod["spec"]["nodeName"], []).append(pod)
        for pod in pods:
            if pod["spec"].get("nodeName") or finished(pod):
                continue
            node, message = scheduler.choose_node(pod, nodes, bound)
            path = f"/api/v1/namespaces/{self.ns}/pods/{name_of(pod)}"
            if node is None:
                condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                             "message": message}
                if condition not in (pod.get("status") or {}).get("conditions", []):
                    self.patch(f"{path}/status", {"status": {"phase": "Pending", "conditions": [condition]}})
                    self._event(pod, "FailedScheduling", message)
                continue
            pod["spec"]["nodeName"] = node
            bound.setdefault(node, []).append(pod)
            self.patch(path, {"spec": {"nodeName": node}})
            self.patch(f"{path}/status", {"status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True"}]}})

    def _event(self, pod: Obj, reason: str, message: str) -> None:
        if (name_of(pod), reason) in self.warned:
            return
        self.warned.add((name_of(pod), reason))
        self.http("POST", f"/api/v1/namespaces/{self.ns}/events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name_of(pod)}.{secrets.token_hex(4)}", "namespace": self.ns},
            "involvedObject": {"kind": "Pod", "name": name_of(pod), "namespace": self.ns},
            "reason": reason, "message": message, "type": "Warning", "firstTimestamp": stamp()[:19] + "Z"})

    def _attached(self, pods: list[Obj]) -> dict[str, dict[str, list[str]]]:
        """claim -> node -> names of the started, unfinished pods using it there."""
        out: dict[str, dict[str, list[str]]] = {}
        for pod in pods:
            node = self.started.get(pod["metadata"].get("uid", name_of(pod)))
            if node is None or finished(pod):
                continue
            for volume in pod["spec"].get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    out.setdefault(claim, {}).setdefault(node, []).append(name_of(pod))
        return out

    def _start(self, pods: list[Obj]) -> None:
        claims = {name_of(c): c for c in self.now.get("persistentvolumeclaims", [])}
        attached = self._attached(pods)
        for pod in pods:
            uid = pod["metadata"].get("uid", name_of(pod))
            node = pod["spec"].get("nodeName")
            if not node or uid in self.started or finished(pod):
                continue
            blocked = ""
            for volume in pod["spec"].get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if not claim:
                    continue
                modes = ((claims.get(claim) or {}).get("spec") or {}).get("accessModes") or []
                elsewhere = {n: users for n, users in attached.get(claim, {}).items() if n != node}
                if claim not in claims:
                    blocked = f'persistentvolumeclaim "{claim}" not found'
                elif elsewhere and not {"ReadWriteMany", "ReadOnlyMany"} & set(modes):
                    users = sorted(u for names in elsewhere.values() for u in names)
                    blocked = (f'Multi-Attach error for volume "pvc-{claim}" Volume is already used by '
                               f"pod(s) {', '.join(users)}")
            if blocked:
                self._waiting(pod, blocked)
                continue
            with self.lock:
                kubelet = self.kubelets.get(node)
                if kubelet is None:
                    continue  # the node's kubelet is gone: the lifecycle controller deals with it
                self.started[uid] = node
                self.started_pods[uid] = pod
            for volume in pod["spec"].get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    attached.setdefault(claim, {}).setdefault(node, []).append(name_of(pod))
            kubelet.start(pod)

    def _waiting(self, pod: Obj, message: str) -> None:
        reason = "FailedAttachVolume" if "Multi-Attach" in message else "FailedMount"
        self._event(pod, reason, message)
        statuses = [{"name": c["name"], "image": c.get("image", ""), "ready": False, "restartCount": 0,
                     "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
                    for c in pod["spec"]["containers"]]
        if (pod.get("status") or {}).get("containerStatuses") != statuses:
            self.patch(f"/api/v1/namespaces/{self.ns}/pods/{name_of(pod)}/status",
                       {"status": {"phase": "Pending", "containerStatuses": statuses}})
