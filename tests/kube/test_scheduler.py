"""The cluster double's scheduling rules, on plain dicts: selectors, taints, resources, spread."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kube.scheduler import choose_node, make_node, quantity

SPREAD = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
          "labelSelector": {"matchLabels": {"app": "a"}}}


def pod(name: str = "p", *, cpu: str = "500m", gpus: int = 0, spread: str = "",
        **spec: Any) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    resources = {"requests": {"cpu": cpu}, "limits": limits}
    body: dict[str, Any] = {"containers": [{"name": "c", "resources": resources}], **spec}
    if spread:
        body["topologySpreadConstraints"] = [{**SPREAD, "whenUnsatisfiable": spread}]
    if gpus:
        body["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"name": name, "labels": {"app": "a"}}, "spec": body}


def test_quantities() -> None:
    assert (quantity("500m", "cpu"), quantity("2", "cpu"), quantity("512Mi"), quantity("1G")) == (
        500, 2000, 512 * 2**20, 10**9)
    with pytest.raises(ValueError):
        quantity("lots")


def test_gpu_taint_keeps_cpu_pods_off_and_gpu_pods_need_a_gpu_node() -> None:
    nodes = [make_node("gpu-1", gpus=1), make_node("cpu-1")]
    assert choose_node(pod(), nodes, {}) == ("cpu-1", "")
    assert choose_node(pod(gpus=1), nodes, {})[0] == "gpu-1"
    # The one GPU is taken: the second GPU pod waits, with the scheduler's reasons.
    node, why = choose_node(pod(gpus=1), nodes, {"gpu-1": [pod("first", gpus=1)]})
    assert node is None
    assert why == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    assert choose_node(pod(cpu="5"), nodes, {})[1] == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: present}.")


def test_node_selector_cpu_and_readiness() -> None:
    nodes = [make_node("a", cpu="1", labels={"pool": "big"}), make_node("b", cpu="8")]
    assert choose_node(pod(nodeSelector={"pool": "big"}), nodes, {})[0] == "a"
    full = {"a": [pod("x", cpu="800m")]}
    assert "1 Insufficient cpu" in choose_node(pod(nodeSelector={"pool": "big"}), nodes, full)[1]
    nodes[1]["status"]["conditions"][0]["status"] = "Unknown"
    assert choose_node(pod(), nodes, {})[0] == "a"
    assert "1 node(s) were not ready" in choose_node(pod(cpu="2"), nodes, {})[1]


def test_topology_spread() -> None:
    nodes = [make_node(n) for n in ("a", "b", "c")]
    bound: dict[str, list[dict[str, Any]]] = {}
    for i in range(6):  # ScheduleAnyway scores: one per node in turn
        chosen = choose_node(pod(f"p{i}", spread="ScheduleAnyway"), nodes, bound)[0]
        assert chosen is not None
        bound.setdefault(chosen, []).append(pod(f"p{i}"))
    assert sorted(len(v) for v in bound.values()) == [2, 2, 2]
    # DoNotSchedule filters: with room only on a node that already has two more, the pod waits.
    crowded = {"a": [pod("1"), pod("2")], "b": [], "c": []}
    tight = [make_node("a"), make_node("b", cpu="100m"), make_node("c", cpu="100m")]
    node, why = choose_node(pod(spread="DoNotSchedule"), tight, crowded)
    assert node is None and "1 node(s) didn't match pod topology spread constraints" in why
    assert choose_node(pod(spread="ScheduleAnyway"), tight, crowded)[0] == "a"
