"""The API server's REST paths for the kinds a deployment uses, and its errors in one line."""

from __future__ import annotations

import json
import re
from typing import Any

from workbench.errors import DeployError

PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Service": "services",
    "Pod": "pods",
    "Deployment": "deployments",
    "Job": "jobs",
    "Ingress": "ingresses",
    "Route": "routes",
    "InferenceService": "inferenceservices",
    "ServingRuntime": "servingruntimes",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
}
_FORBIDDEN = re.compile(r'cannot (\w+) resource "([^"]+)" in API group "([^"]*)"')
_QUERY = {
    "field_manager": "fieldManager",
    "force_conflicts": "force",
    "label_selector": "labelSelector",
    "propagation_policy": "propagationPolicy",
}


def _path(api_version: str, kind: str, namespace: str, name: str | None = None, sub: str = "") -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[kind]}"
    if name:
        path += f"/{name}"
    return path + (f"/{sub}" if sub else "")


def api_error(exc: Any, method: str, path: str, namespace: str) -> DeployError:
    """An API error as one line: credentials, a named missing permission, or the server's words."""
    status = int(getattr(exc, "status", 0) or 0)
    try:
        body = json.loads(exc.body or "{}")  # the API server's Status, or a proxied server's answer
        message = str(body.get("message") or body.get("error") or "") or str(exc.reason)
    except (ValueError, TypeError, AttributeError):
        message = str(getattr(exc, "reason", "")) or str(exc)
    if status == 401:
        return DeployError("the cluster rejected the credentials (401)", "log in again")
    if status == 403:
        found = _FORBIDDEN.search(message)
        if found:
            verb, resource, group = found.groups()
            what = f"{resource}.{group}" if group else resource
            return DeployError(
                f"missing permission: {verb} {what} in namespace {namespace}",
                f"ask an admin for a Role granting '{verb}' on '{what}' ({message})",
            )
        return DeployError(f"missing permission: {message}", "ask a cluster admin for access")
    return DeployError(f"{method.upper()} {path} failed ({status}): {message}", None)
