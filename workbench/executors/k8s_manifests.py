"""The Kubernetes objects a cluster run creates, as plain dicts (validated in tests against the
official schemas).

Every pod is fit for OpenShift's ``restricted-v2`` security constraints and the upstream
``restricted`` Pod Security Standard: no fixed user id (the platform assigns one), non-root, every
capability dropped, no privilege escalation, the runtime's default seccomp profile, and every
directory the job writes (the workspace, HOME, /tmp) on a mounted volume. A run owns:

* a PersistentVolumeClaim holding ``workspace/`` (the input snapshot, then the outputs), ``lib/``
  (the workbench package, for the tracking API) and ``run/`` (the staging marker);
* short-lived *helper* pods that mount it while files are streamed in and out through exec;
* the ``batch/v1`` Job that runs the command, with ``backoffLimit: 0`` so a failed attempt is never
  silently retried (events would be ingested twice).
"""

from __future__ import annotations

import re
from typing import Any

from workbench.executors.resources import k8s_memory

GPU_RESOURCE = "nvidia.com/gpu"
LABEL_RUN = "workbench.dev/run-id"
LABEL_ROLE = "workbench.dev/role"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
WORKSPACE = "/workspace"
LIB = "/opt/workbench/lib"
HOME = "/workbench/home"
MOUNT_STAGE = "/stage"
STAGED_MARKER = f"{MOUNT_STAGE}/run/staged"


def dns_name(run_id: str, suffix: str = "") -> str:
    """A DNS-1123 name for a run's object: lowercase, at most 63 characters."""
    base = re.sub(r"[^a-z0-9-]", "-", run_id.lower()).strip("-") or "run"
    name = f"wb-{base}"[: 63 - len(suffix)].rstrip("-")
    return f"{name}{suffix}"


def label_value(run_id: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)[:63]
    return value.strip("-_.") or "run"


def labels(run_id: str, role: str) -> dict[str, str]:
    return {LABEL_RUN: label_value(run_id), LABEL_ROLE: role, LABEL_MANAGED: "workbench"}


def pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pvc(run_id: str, namespace: str, size_bytes: int, storage_class: str | None = None) -> dict[str, Any]:
    """The run's workspace volume, at least 1 GiB and twice the staged bytes (room for outputs)."""
    gib = max(1, -(-2 * size_bytes // 2**30))
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{gib}Gi"}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": dns_name(run_id, "-ws"), "namespace": namespace,
                     "labels": labels(run_id, "workspace")},
        "spec": spec,
    }


def credentials_secret(run_id: str, namespace: str, values: dict[str, str]) -> dict[str, Any]:
    """The run's remote credentials as a Secret its pods read through ``secretKeyRef`` (kept out of
    the Job's spec, which anyone who may read Jobs or pods sees in plain text)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": dns_name(run_id, "-creds"), "namespace": namespace,
                     "labels": labels(run_id, "credentials")},
        "stringData": dict(values),
    }


def helper_pod(run_id: str, namespace: str, image: str, role: str) -> dict[str, Any]:
    """A pod that only holds the run's volume at /stage while files are streamed in or out."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": dns_name(run_id, f"-{role}"), "namespace": namespace,
                     "labels": labels(run_id, role)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "activeDeadlineSeconds": 3600,
            "securityContext": pod_security(),
            "containers": [{
                "name": role,
                "image": image,
                "command": ["sh", "-c", "sleep 3600"],
                "securityContext": container_security(),
                "env": [{"name": "HOME", "value": "/tmp"}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"memory": "256Mi"}},
                "volumeMounts": [{"name": "stage", "mountPath": MOUNT_STAGE},
                                 {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [
                {"name": "stage", "persistentVolumeClaim": {"claimName": dns_name(run_id, "-ws")}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


def job(run_id: str, namespace: str, image: str, command: list[str], env: dict[str, str], *,
        workdir: str = ".", cpu: str | None = None, memory: str | None = None, gpus: int = 0,
        deadline_seconds: int | None = None) -> dict[str, Any]:
    """The batch/v1 Job that runs the command in the staged workspace."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = limits["memory"] = k8s_memory(memory)
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    full_env = {
        **env,
        "HOME": HOME,
        "TMPDIR": "/tmp",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": ":".join(p for p in (LIB, env.get("PYTHONPATH", "")) if p),
    }
    container: dict[str, Any] = {
        "name": "run",
        "image": image,
        "command": list(command),
        "workingDir": WORKSPACE if workdir in ("", ".") else f"{WORKSPACE}/{workdir}",
        "env": [{"name": k, "value": v} for k, v in sorted(full_env.items())],
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE, "subPath": "workspace"},
            {"name": "workspace", "mountPath": LIB, "subPath": "lib", "readOnly": True},
            {"name": "home", "mountPath": HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": dns_name(run_id, "-ws")}},
            {"name": "home", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if gpus:
        pod_spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 3600,
        "template": {"metadata": {"labels": labels(run_id, "run")}, "spec": pod_spec},
    }
    if deadline_seconds:
        spec["activeDeadlineSeconds"] = deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": dns_name(run_id), "namespace": namespace, "labels": labels(run_id, "run")},
        "spec": spec,
    }


def access_review(namespace: str, verb: str, resource: str, group: str = "",
                  subresource: str = "") -> dict[str, Any]:
    attributes: dict[str, str] = {"namespace": namespace, "verb": verb, "resource": resource, "group": group}
    if subresource:
        attributes["subresource"] = subresource
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }


REQUIRED_PERMISSIONS: list[tuple[str, str, str, str]] = [
    ("create", "persistentvolumeclaims", "", ""),
    ("create", "pods", "", ""),
    ("create", "pods", "", "exec"),
    ("get", "pods", "", "log"),
    ("create", "jobs", "batch", ""),
    ("delete", "jobs", "batch", ""),
]
"""(verb, resource, group, subresource) a cluster run needs in its namespace."""
