"""Cluster deployments on a double with nodes: where replicas land, and why one shared
ReadWriteOnce model volume fails on several nodes while per-pod fetching works.

The product's own ClusterTarget applies the rendered objects to :class:`tests.kube.controllers.
ClusterDouble` (the API server with a scheduler, Deployment/Job controllers, the attach controller
and a fake kubelet per node) and waits for the rollout the way ``kubectl rollout status`` does.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.deploy.test_cluster import MODEL, NS, fetch
from tests.kube.controllers import ClusterDouble, ready
from workbench.deploy import cluster as cluster_mod
from workbench.deploy import delivery as fetching
from workbench.deploy import manifests
from workbench.deploy.cluster import ClusterTarget
from workbench.deploy.delivery import Delivery
from workbench.deploy.types import DeploySpec

SELECTOR = {"app.kubernetes.io/name": "iris"}
FETCHED = Delivery(remote="origin", bucket="models", key="team/serving/sha256/" + "cd" * 32,
                   sha256="cd" * 32, size=1000, endpoint_url="http://127.0.0.1:1")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ClusterDouble]:
    monkeypatch.setattr(cluster_mod, "POLL", 0.05)
    double = ClusterDouble(tmp_path / "cluster", NS)
    for name in ("node-a", "node-b", "node-c"):
        double.add_node(name, cpu="2", zone="zone-" + name[-1])
    double.add_node("gpu-1", cpu="8", gpus=1)
    yield double
    double.close()
    assert not double.errors, double.errors


def target(double: ClusterDouble) -> ClusterTarget:
    return ClusterTarget(client.ApiClient(client.Configuration(host=double.url)), NS, "kubernetes")


def spec(replicas: int = 3, **kw: object) -> DeploySpec:
    return DeploySpec(name="iris", target="kubernetes", model=MODEL, replicas=replicas, namespace=NS,
                      cpu="500m", memory="512Mi", **kw)  # type: ignore[arg-type]


def placement(double: ClusterDouble) -> Counter[str]:
    return Counter(p["spec"].get("nodeName", "") for p in double.pods(SELECTOR))


def test_replicas_fetching_their_model_spread_over_nodes_and_gpus_land_on_gpu_nodes(
        cluster: ClusterDouble) -> None:
    t = target(cluster)
    s = spec(3)
    status, _ = t.apply(s, 1, t.render(s, 1, FETCHED), fetch, 20, credentials={})
    assert status.state == "complete", status
    # One per CPU node (the spread constraint); none on the tainted GPU node.
    assert placement(cluster) == Counter({"node-a": 1, "node-b": 1, "node-c": 1})
    assert cluster.events("FailedAttachVolume") == []

    # Scaling to 5: the spread keeps the skew at most 1 (the 2-CPU nodes hold 4 x 500m each).
    assert t.scale("iris", 5, 20).state == "complete"
    assert sorted(placement(cluster).values()) == [1, 2, 2] and "gpu-1" not in placement(cluster)

    # A GPU replica tolerates the taint and lands where a GPU is; a second has none left.
    g = spec(1, gpus=1)
    status, _ = t.apply(g, 2, t.render(g, 2, FETCHED), fetch, 20, credentials={})
    assert status.state == "complete" and placement(cluster) == Counter({"gpu-1": 1})
    t.scale("iris", 2, 1)
    waiting = cluster.wait_for("a GPU pod that cannot be scheduled", lambda: [
        p for p in cluster.pods(SELECTOR) if not p["spec"].get("nodeName")
        and any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", []))])
    message = next(c["message"] for c in waiting[0]["status"]["conditions"] if c["type"] == "PodScheduled")
    assert message.startswith("0/4 nodes are available: ") and "4 Insufficient nvidia.com/gpu" in message
    assert "cannot be scheduled: 0/4 nodes are available" in " ".join(t.status("iris").reasons)


def test_one_readwriteonce_volume_for_three_replicas_hangs_on_multi_attach(
        cluster: ClusterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old design (every replica mounts one RWO claim), with its guard switched off: the pods on
    the second and third node never start, as on a real cluster with block storage."""
    monkeypatch.setattr(fetching, "check_volume", lambda *a: None)
    t = target(cluster)
    s = spec(3)
    objects = t.render(s, 1)
    assert objects[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    status, _ = t.apply(s, 1, objects, fetch, 2)
    assert status.state == "failed"  # it never completes; how it fails is below

    def split() -> Any:
        pods = cluster.pods(SELECTOR)
        stuck = [p for p in pods if not ready(p)]
        attached = len(cluster.events("FailedAttachVolume")) == 2
        return (pods, stuck) if len(pods) == 3 and len(stuck) == 2 and attached else None

    pods, stuck = cluster.wait_for("one ready pod and two stuck on Multi-Attach", split)
    cluster.wait_for("the rollout status to count 1 available", lambda: t.status("iris").available == 1)
    assert len({p["spec"]["nodeName"] for p in pods}) == 3  # spread over the three CPU nodes
    assert all(p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
               for p in stuck)
    events = cluster.events("FailedAttachVolume")
    assert {e["involvedObject"]["name"] for e in events} == {p["metadata"]["name"] for p in stuck}
    assert all(e["message"].startswith('Multi-Attach error for volume "pvc-iris-models" Volume is already '
                                       "used by pod(s) iris-") for e in events)

    # The same claim as ReadWriteMany (an NFS-like class) attaches on every node.
    t.remove("iris")
    cluster.wait_for("the pods to go", lambda: not cluster.pods(SELECTOR))
    t.delete("v1", "PersistentVolumeClaim", manifests.pvc_name(s))
    status, _ = t.apply(s, 2, t.render(s, 2, storage_access="ReadWriteMany"), fetch, 20)
    assert status.state == "complete" and len(placement(cluster)) == 3


def test_a_failed_node_s_replicas_are_rescheduled_on_the_others(cluster: ClusterDouble) -> None:
    t = target(cluster)
    s = spec(3)
    status, _ = t.apply(s, 1, t.render(s, 1, FETCHED), fetch, 20, credentials={})
    assert status.state == "complete" and status.ready == 3
    before = {p["metadata"]["name"] for p in cluster.pods(SELECTOR)}

    cluster.fail_node("node-b")  # the server dies: NotReady, tainted unreachable, its pod evicted
    node = cluster.wait_for("node-b tainted unreachable", lambda: next(
        (n for n in cluster.snapshot()["nodes"] if n["metadata"]["name"] == "node-b"
         and any(x["key"] == "node.kubernetes.io/unreachable" for x in n["spec"].get("taints", []))), None))
    assert node["status"]["conditions"][0]["status"] == "Unknown"
    recovered = cluster.wait_for("3 ready replicas again, none on node-b", lambda: (
        (st := t.status("iris")).ready == 3 and st.state == "complete"
        and "node-b" not in (where := placement(cluster)) and sum(where.values()) == 3 and st))
    assert recovered.desired == 3 and sum(placement(cluster).values()) == 3
    after = {p["metadata"]["name"] for p in cluster.pods(SELECTOR)}
    assert len(after - before) == 1  # one replacement; the two healthy replicas were left alone

    # A node removed from the cluster: its pods are collected and replaced too; with one CPU node
    # left, the replicas share it (the spread is ScheduleAnyway) and the tainted GPU node stays empty.
    cluster.delete_node("node-c")
    cluster.wait_for("3 ready replicas on node-a", lambda: (
        t.status("iris").ready == 3 and placement(cluster) == Counter({"node-a": 3})))


def test_a_new_revision_rolls_out_without_dropping_below_the_replica_count(cluster: ClusterDouble) -> None:
    """maxSurge 1, maxUnavailable 0: one new pod at a time, an old one goes only once a new one is ready."""
    t = target(cluster)
    s = spec(3)
    assert t.apply(s, 1, t.render(s, 1, FETCHED), fetch, 20, credentials={})[0].state == "complete"
    first = {p["metadata"]["labels"]["pod-template-hash"] for p in cluster.pods(SELECTOR)}
    seen: list[tuple[int, int]] = []  # (ready pods, all pods) through the rollout
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            pods = cluster.pods(SELECTOR)
            seen.append((sum(1 for p in pods if ready(p)), len(pods)))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    moved = Delivery(**{**FETCHED.__dict__, "sha256": "ef" * 32})
    status, _ = t.apply(s, 2, t.render(s, 2, moved), fetch, 20, credentials={})
    done.set()
    watcher.join(10)
    assert status.state == "complete" and status.updated == 3
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in cluster.pods(SELECTOR)}
    assert len(hashes) == 1 and hashes.isdisjoint(first) and len(cluster.pods(SELECTOR)) == 3
    assert seen and min(r for r, _ in seen) >= 3 and max(n for _, n in seen) <= 4
