"""Connection check and capability discovery for the cluster of the current kubeconfig context.

One pass over the API server's discovery documents (``/version``, ``/apis``) says what the cluster
offers: OpenShift (routes, security context constraints), KServe (InferenceService), Kubeflow
training operators (PyTorchJob ...), Prometheus-operator monitoring (ServiceMonitor), the NVIDIA GPU
operator, and how many GPUs each node can hand out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.executors.k8s_client import KubeApi, KubeApiError, explain, load
from workbench.host.gpus import NodeGpus, cluster_gpu_capacity

CAPABILITIES: dict[str, tuple[str, str]] = {
    "openshift": ("route.openshift.io", "OpenShift routes"),
    "openshift_security": ("security.openshift.io", "OpenShift security context constraints"),
    "kserve": ("serving.kserve.io", "KServe InferenceService"),
    "kubeflow_training": ("kubeflow.org", "Kubeflow training operator (PyTorchJob, TFJob ...)"),
    "kubeflow_trainer": ("trainer.kubeflow.org", "Kubeflow Trainer (TrainJob)"),
    "monitoring": ("monitoring.coreos.com", "Prometheus operator monitoring (ServiceMonitor)"),
    "gpu_operator": ("nvidia.com", "NVIDIA GPU operator"),
    "knative": ("serving.knative.dev", "Knative serving"),
}


@dataclass
class ClusterInfo:
    server: str
    context: str
    namespace: str
    version: str
    capabilities: dict[str, bool] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    gpu_nodes: list[NodeGpus] = field(default_factory=list)
    gpu_nodes_visible: bool = True
    """False when listing nodes is forbidden to this user (GPU capacity unknown)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpu_nodes"] = [n.to_dict() for n in self.gpu_nodes]
        data["capability_names"] = {k: v[1] for k, v in CAPABILITIES.items()}
        return data


def discover(api: KubeApi | None = None) -> ClusterInfo:
    """Connect, then read the discovery documents; a one-line ExecutorError if the cluster is not
    reachable or rejects the credentials."""
    if api is None:
        client, target = load()
        api = KubeApi(client, target)
    target = api.target
    try:
        version = api.get("/version")
        groups_doc = api.get("/apis")
    except KubeApiError as exc:
        raise explain(exc, "connecting", target) from None
    groups = sorted(str(g.get("name", "")) for g in groups_doc.get("groups") or [])
    capabilities = {key: group in groups for key, (group, _) in CAPABILITIES.items()}
    info = ClusterInfo(
        server=target.server, context=target.context, namespace=target.namespace,
        version=str(version.get("gitVersion", "")), capabilities=capabilities, groups=groups,
    )
    try:
        nodes = api.get("/api/v1/nodes").get("items") or []
        pods = api.get("/api/v1/pods", fieldSelector="status.phase=Running").get("items") or []
        info.gpu_nodes = cluster_gpu_capacity(nodes, pods)
    except KubeApiError as exc:
        if exc.status in (0, 401):
            raise explain(exc, "listing nodes", target) from None
        info.gpu_nodes_visible = False
    return info
