"""The scheduling rules of the cluster double, as pure functions over plain Kubernetes dicts.

What kube-scheduler's default plugins decide for the pods Workbench makes, no more:

* NodeUnschedulable / node readiness: a cordoned or NotReady node takes no new pod;
* NodeAffinity (``nodeSelector`` only);
* TaintToleration: a ``NoSchedule``/``NoExecute`` taint must be tolerated (``Exists`` or ``Equal``);
* NodeResourcesFit: the sum of the requests of the pods bound to a node, plus this pod's, within the
  node's allocatable CPU, memory, pods and extended resources (``nvidia.com/gpu``; an extended
  resource's request defaults to its limit, as the API server defaults it);
* PodTopologySpread: skew = matching pods in the candidate's ``topologyKey`` domain plus one, minus
  the fewest in any domain of the nodes that pass the selector and taints (both policies ``Honor``);
  over ``maxSkew``, ``DoNotSchedule`` filters the node out, ``ScheduleAnyway`` only scores it lower;
* scoring: least skew first, then least requested CPU share, then the node's name (deterministic).

Volume access modes are *not* a scheduling rule, as on a real cluster: a ReadWriteOnce claim used
on a second node is the attach controller's Multi-Attach failure (see :mod:`tests.kube.controllers`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

Obj = dict[str, Any]
HOSTNAME = "kubernetes.io/hostname"
_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(text: str | int | float, resource: str = "") -> int:
    """A quantity in base units: millicores for ``cpu``, bytes or a count otherwise."""
    raw = str(text).strip()
    match = re.fullmatch(r"([0-9.]+)(m|[kMGT]i?|)", raw)
    if not match:
        raise ValueError(f"bad quantity {raw!r}")
    number, suffix = float(match.group(1)), match.group(2)
    value = number / 1000 if suffix == "m" else number * _SUFFIX[suffix]
    return round(value * 1000) if resource == "cpu" else round(value)


def pod_requests(pod: Obj) -> Counter[str]:
    """What the pod asks for, summed over its containers (init containers: the largest, as kube does)."""
    spec = pod.get("spec") or {}
    total: Counter[str] = Counter()
    for container in spec.get("containers") or []:
        total.update(_container_requests(container))
    for init in spec.get("initContainers") or []:
        for name, value in _container_requests(init).items():
            total[name] = max(total[name], value)
    total["pods"] = 1
    return total


def _container_requests(container: Obj) -> Counter[str]:
    resources = container.get("resources") or {}
    requests = dict(resources.get("requests") or {})
    for name, value in (resources.get("limits") or {}).items():
        requests.setdefault(name, value)  # the API server defaults a missing request to the limit
    return Counter({name: quantity(value, name) for name, value in requests.items()})


def allocatable(node: Obj) -> Counter[str]:
    status = node.get("status") or {}
    found = status.get("allocatable") or status.get("capacity") or {}
    return Counter({name: quantity(value, name) for name, value in found.items()})


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def tolerates(pod: Obj, taint: Obj) -> bool:
    for tol in (pod.get("spec") or {}).get("tolerations") or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol["key"] == taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def labels_match(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector (``matchLabels`` and ``matchExpressions`` In/NotIn/Exists/DoesNotExist)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists") != (key in labels) and op in ("Exists", "DoesNotExist"):
            return False
    return True


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _skews(pod: Obj, node: Obj, eligible: list[Obj], bound: dict[str, list[Obj]]) -> list[tuple[Obj, int]]:
    """(constraint, skew if the pod went to ``node``) for each spread constraint of the pod."""
    out = []
    for constraint in (pod.get("spec") or {}).get("topologySpreadConstraints") or []:
        key = constraint["topologyKey"]
        if key not in _labels(node):
            continue
        counts: Counter[str] = Counter()
        for other in eligible:
            domain = _labels(other).get(key)
            if domain is None:
                continue
            counts[domain] += sum(1 for p in bound.get(other["metadata"]["name"], [])
                                  if labels_match(constraint.get("labelSelector") or {}, _labels(p)))
        mine = _labels(node)[key]
        counts[mine] += 0  # the candidate's own domain counts even when it holds no pod yet
        out.append((constraint, counts[mine] + 1 - min(counts.values())))
    return out


def choose_node(pod: Obj, nodes: list[Obj], bound: dict[str, list[Obj]]) -> tuple[str | None, str]:
    """The node the pod goes to, or None and the scheduler's message (``0/3 nodes are available: ...``).

    ``bound`` maps each node's name to the live pods bound to it."""
    spec = pod.get("spec") or {}
    wanted = pod_requests(pod)
    reasons: Counter[str] = Counter()
    fits: list[Obj] = []
    eligible: list[Obj] = []  # nodes the spread counts: those passing nodeSelector and taints
    for node in nodes:
        name, node_spec = node["metadata"]["name"], node.get("spec") or {}
        if any(_labels(node).get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            reasons["node(s) didn't match Pod's node affinity/selector"] += 1
            continue
        untolerated = [t for t in node_spec.get("taints") or []
                       if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, t)]
        if untolerated:
            t = untolerated[0]
            reasons[f"node(s) had untolerated taint {{{t['key']}: {t.get('value', '')}}}"] += 1
            continue
        eligible.append(node)
        if node_spec.get("unschedulable") or not node_ready(node):
            reasons["node(s) were unschedulable" if node_spec.get("unschedulable")
                    else "node(s) were not ready"] += 1
            continue
        used: Counter[str] = Counter()
        for other in bound.get(name, []):
            used.update(pod_requests(other))
        room = allocatable(node)
        short = [r for r, amount in wanted.items() if amount and used[r] + amount > room.get(r, 0)]
        if short:
            reasons[f"Insufficient {short[0]}" if short[0] != "pods" else "Too many pods"] += 1
            continue
        fits.append(node)
    placed: list[tuple[tuple[int, float, str], Obj]] = []
    for node in fits:
        skews = _skews(pod, node, eligible, bound)
        if any(c.get("whenUnsatisfiable") == "DoNotSchedule" and skew > int(c["maxSkew"])
               for c, skew in skews):
            reasons["node(s) didn't match pod topology spread constraints"] += 1
            continue
        used_cpu = sum(pod_requests(p)["cpu"] for p in bound.get(node["metadata"]["name"], []))
        share = used_cpu / max(1, allocatable(node)["cpu"])
        placed.append(((sum(skew for _, skew in skews), share, node["metadata"]["name"]), node))
    if placed:
        return min(placed, key=lambda item: item[0])[1]["metadata"]["name"], ""
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return None, f"0/{len(nodes)} nodes are available: {detail or 'no nodes registered'}."


def make_node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110, gpus: int = 0,
              zone: str = "zone-a", labels: dict[str, str] | None = None,
              taints: list[Obj] | None = None) -> Obj:
    """A Ready Node object; a GPU node carries the ``nvidia.com/gpu`` NoSchedule taint GPU pools have."""
    room = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    if gpus:
        room["nvidia.com/gpu"] = str(gpus)
    all_taints = list(taints or [])
    if gpus:
        all_taints.append({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {HOSTNAME: name, "topology.kubernetes.io/zone": zone,
                                              "kubernetes.io/os": "linux", **(labels or {})}},
        "spec": {"taints": all_taints} if all_taints else {},
        "status": {"capacity": dict(room), "allocatable": dict(room),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
    }
