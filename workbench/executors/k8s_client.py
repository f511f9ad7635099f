"""A thin, dict-in dict-out door to the Kubernetes API through the official client's transport.

Loads the user's kubeconfig (``KUBECONFIG`` or ``~/.kube/config``) or the in-cluster service
account, then talks plain JSON paths (``/apis/batch/v1/namespaces/ns/jobs``) with the client's
authentication, TLS and proxy handling, so every object stays the dict that was built or returned
(no model round trips) and streams (pod logs) can be read as they come. API failures become
:class:`KubeApiError`; :func:`explain` turns them into one line a person can act on: expired
credentials, the exact permission a 403 lacks, an exceeded quota.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ExecutorError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeApiError(Exception):
    """A non-2xx answer (status > 0) or a connection failure (status 0)."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


@dataclass
class KubeTarget:
    """Where the client points: the kubeconfig file, context, server and default namespace."""

    server: str
    namespace: str
    context: str
    source: str


def _kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def load(context: str | None = None) -> tuple[Any, KubeTarget]:
    """An ``ApiClient`` and what it points at, or an ExecutorError saying how to log in."""
    from kubernetes import client, config

    cfg = client.Configuration()
    path = _kubeconfig_path()
    if not path.exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            raise ExecutorError(f"in-cluster Kubernetes config unusable: {exc}") from None
        ns_file = SERVICE_ACCOUNT / "namespace"
        namespace = ns_file.read_text().strip() if ns_file.exists() else "default"
        return client.ApiClient(cfg), KubeTarget(cfg.host, namespace, "in-cluster", "service account")
    if not path.exists():
        raise ExecutorError(
            f"no kubeconfig found at {path}",
            "log in to your cluster ('oc login ...' or 'kubectl config use-context ...'), or set KUBECONFIG",
        )
    try:
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=str(path))
        chosen = active
        if context:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                raise ExecutorError(f"no context '{context}' in {path}",
                                    f"pick one of: {', '.join(c.get('name', '') for c in contexts)}")
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(path), context=context, client_configuration=cfg, persist_config=False)
    except ExecutorError:
        raise
    except Exception as exc:  # ConfigException, expired exec/OIDC credentials, malformed YAML
        text = " ".join(str(exc).split())[:200]
        raise ExecutorError(
            f"kubeconfig {path} is unusable: {text}",
            "log in again ('oc login' / refresh your cluster credentials) or fix KUBECONFIG",
        ) from None
    namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
    name = (chosen or {}).get("name", "")
    return client.ApiClient(cfg), KubeTarget(cfg.host, namespace, name, str(path))


class KubeApi:
    """JSON requests against one cluster."""

    def __init__(self, api_client: Any, target: KubeTarget) -> None:
        self.client = api_client
        self.target = target

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              content_type: str, timeout: float | tuple[float, float] | None) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        try:
            serialized = self.client.param_serialize(
                method, path, query_params=params, header_params=headers, body=body,
                auth_settings=["BearerToken"],
            )
            response = self.client.call_api(*serialized, _request_timeout=timeout)
        except ApiException as exc:
            raise _api_error(exc.status or 0, exc.reason or "", exc.body) from None
        except Exception as exc:  # urllib3 MaxRetryError, connection refused, TLS ...
            raise KubeApiError(0, "Unreachable", " ".join(str(exc).split())[:200]) from None
        if not 200 <= response.status <= 299:
            data = response.read()
            raise _api_error(response.status, response.reason or "", data)
        return response

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json", timeout: float = 30) -> dict[str, Any]:
        response = self._send(method, path, query, body, content_type, timeout)
        data = response.read()
        if not data:
            return {}
        parsed = json.loads(data)
        return parsed if isinstance(parsed, dict) else {"items": parsed}

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body=body)

    def delete(self, path: str, propagation: str | None = "Background") -> dict[str, Any]:
        body = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation:
            body["propagationPolicy"] = propagation
        return self.request("DELETE", path, body=body)

    def delete_quietly(self, path: str, propagation: str | None = "Background") -> bool:
        """Delete, treating 'already gone' as done; False when the delete failed otherwise."""
        try:
            self.delete(path, propagation)
        except KubeApiError as exc:
            return exc.status == 404
        return True

    def stream(self, path: str, *, query: dict[str, Any] | None = None,
               read_timeout: float | None = None) -> Iterator[bytes]:
        """The response body in chunks as they arrive (pod logs with follow)."""
        response = self._send("GET", path, query, None, "application/json",
                              (10, read_timeout) if read_timeout else None)
        raw = response.response
        try:
            yield from raw.stream(1 << 14, decode_content=True)
        finally:
            raw.release_conn()


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _api_error(status: int, reason: str, data: Any) -> KubeApiError:
    body: dict[str, Any] = {}
    if isinstance(data, bytes | str) and data:
        try:
            loaded = json.loads(data)
            body = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            body = {"message": data.decode(errors="replace") if isinstance(data, bytes) else data}
    message = str(body.get("message") or reason or "no message")
    return KubeApiError(status, str(body.get("reason") or reason), " ".join(message.split()), body)


_FORBIDDEN = re.compile(
    r'cannot (?P<verb>\w+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace "(?P<ns>[^"]+)")?'
)


def missing_permission(message: str) -> str:
    """'create jobs.batch in namespace ml' from a 403's message, or '' if it names none."""
    match = _FORBIDDEN.search(message)
    if not match:
        return ""
    resource = match.group("resource")
    group = match.group("group")
    what = f"{resource}.{group}" if group else resource
    where = f" in namespace {match.group('ns')}" if match.group("ns") else " (cluster-wide)"
    return f"{match.group('verb')} {what}{where}"


def explain(exc: KubeApiError, doing: str, target: KubeTarget) -> ExecutorError:
    """One line for a person: what failed while ``doing`` and how to fix it."""
    where = f"cluster {target.server} (context {target.context or '?'})"
    if exc.status == 0:
        return ExecutorError(f"cannot reach {where} while {doing}: {exc.message}",
                             "check your network/VPN and that the cluster is up")
    if exc.status == 401:
        return ExecutorError(
            f"{where} rejected the credentials while {doing} (401 Unauthorized: missing or expired)",
            "log in again ('oc login' or refresh the token in your kubeconfig)",
        )
    if exc.status == 403:
        if "exceeded quota" in exc.message or "quota" in exc.reason.lower():
            return ExecutorError(f"quota exceeded while {doing}: {exc.message}",
                                 "ask for less --cpu/--memory/--gpus, or free or raise the namespace quota")
        permission = missing_permission(exc.message)
        if permission:
            return ExecutorError(f"permission denied while {doing}: missing permission to {permission}",
                                 "ask a cluster admin for a Role granting it, or use another --namespace")
        return ExecutorError(f"permission denied while {doing}: {exc.message}",
                             "ask a cluster admin for access, or use another --namespace")
    if exc.status == 404 and "namespace" in exc.message.lower():
        return ExecutorError(f"namespace not found while {doing}: {exc.message}",
                             "pass an existing --namespace")
    if exc.status == 422 or exc.status == 400:
        return ExecutorError(f"the cluster refused the object while {doing}: {exc.message}")
    return ExecutorError(f"Kubernetes API error while {doing}: {exc.status} {exc.reason}: {exc.message}")
