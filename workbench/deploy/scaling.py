"""How a cluster deployment spreads, survives node drains, autoscales and lands on GPU nodes.

* Replicas carry ``topologySpreadConstraints`` across nodes (``kubernetes.io/hostname``, max skew 1,
  ``ScheduleAnyway`` so a one-node cluster still schedules them) and, across zones where the
  cluster labels them, the same with ``topology.kubernetes.io/zone``.
* A ``PodDisruptionBudget`` keeps all but one replica up through voluntary disruptions (a node
  drain) whenever two or more replicas are asked for.
* ``deploy --min-replicas A --max-replicas B [--target-cpu P]`` renders a
  ``HorizontalPodAutoscaler`` (autoscaling/v2, CPU utilisation, default 70 %); the Deployment then
  leaves ``replicas`` to it. ``scale N`` deletes the autoscaler and sets a manual count.
* A replica asking for GPUs tolerates the ``nvidia.com/gpu`` taint GPU node pools carry.
"""

from __future__ import annotations

from typing import Any

from workbench.deploy.types import DeploySpec
from workbench.errors import UsageError

Obj = dict[str, Any]
DEFAULT_TARGET_CPU = 70
AUTOSCALE_CPU_REQUEST = "250m"
"""An autoscaler measures utilisation against the CPU request: one is set when --cpu is not given."""
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def autoscaled(spec: DeploySpec) -> bool:
    return spec.max_replicas > 0


def check_autoscale(min_replicas: int, max_replicas: int, target_cpu: int) -> None:
    """Refuse a bad autoscaling request in one line before anything is rendered."""
    if not (min_replicas or max_replicas or target_cpu):
        return
    if max_replicas < 1:
        raise UsageError("--max-replicas is needed to autoscale", "e.g. --min-replicas 2 --max-replicas 6")
    if not 1 <= (min_replicas or 1) <= max_replicas:
        raise UsageError(
            f"--min-replicas must be between 1 and --max-replicas ({max_replicas}), got {min_replicas}",
            "e.g. --min-replicas 2 --max-replicas 6",
        )
    if target_cpu and not 1 <= target_cpu <= 100:
        raise UsageError(f"--target-cpu is a percentage of the CPU request, got {target_cpu}",
                         "give 1 to 100 (default 70)")


def pod_placement(spec: DeploySpec, selector: dict[str, str]) -> Obj:
    """The pod template's spread constraints and (with GPUs) tolerations."""
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    placement: Obj = {"topologySpreadConstraints": spread}
    if spec.gpus:
        placement["tolerations"] = [dict(GPU_TOLERATION)]
    return placement


def disruption_budget(spec: DeploySpec, meta: Obj, selector: dict[str, str]) -> Obj | None:
    """At most one replica down at a time in a drain, when there are two or more to keep."""
    if max(spec.replicas, spec.max_replicas, spec.min_replicas) < 2:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
    }


def autoscaler(spec: DeploySpec, meta: Obj) -> Obj | None:
    if not autoscaled(spec):
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.min_replicas or 1,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization",
                                   "averageUtilization": spec.target_cpu or DEFAULT_TARGET_CPU},
                    },
                }
            ],
        },
    }
