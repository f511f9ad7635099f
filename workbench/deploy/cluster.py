"""The cluster target: server-side apply, the scale subresource, rollout status, removal.

Talks to the API server through the official ``kubernetes`` client (raw REST paths on its
DynamicClient, so no discovery round trips are needed for built-in kinds). Objects are applied with
server-side apply (``application/apply-patch+yaml``, field manager ``workbench``, force); an object
the server does not have yet is created. Errors become one line: missing credentials, a missing
permission (named: verb, resource, namespace), a rollout that does not finish (with pod reasons).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.config import MODEL_SERVERS as SERVERS
from workbench.deploy import delivery as fetching
from workbench.deploy import manifests, rollout, serving
from workbench.deploy.delivery import Delivery
from workbench.deploy.kubeapi import _QUERY, _path, api_error
from workbench.deploy.types import DeploySpec, RolloutStatus
from workbench.errors import DeployError

Obj = dict[str, Any]
SCALING_KINDS = (("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"))
POLL = 0.5


class ClusterTarget:
    """One namespace of one cluster, reached with the user's kubeconfig (or in-cluster config)."""

    def __init__(self, api_client: Any, namespace: str, target: str) -> None:
        self.api = api_client
        self.namespace = namespace
        self.target = target
        self._groups: set[str] | None = None

    @classmethod
    def connect(cls, target: str, namespace: str = "") -> ClusterTarget:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        # KUBECONFIG read now: the client library reads it once, when it is first imported, and a
        # long-lived process (the TUI, a test session) may see it set later.
        kubeconfig = os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            _, context = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            default_ns = (context or {}).get("context", {}).get("namespace") or "default"
        except (ConfigException, FileNotFoundError, TypeError):
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
                default_ns = (
                    Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
                )
            except (ConfigException, OSError):
                raise DeployError(
                    f"no credentials for a {target} cluster",
                    "set KUBECONFIG or log in ('oc login' / 'kubectl config use-context'), "
                    "or deploy with --target local",
                ) from None
        return cls(client.ApiClient(), namespace or default_ns, target)

    # -- low level -----------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Obj:
        """One API call; the JSON answer (``{}`` when empty). Errors become one-line DeployErrors."""
        raw = self.raw(method, path, body, **params)
        data: Obj = json.loads(raw or b"{}")
        return data

    def raw(self, method: str, path: str, body: Any = None, **params: Any) -> bytes:
        """One API call; the answer's bytes (for proxied non-JSON answers such as metrics)."""
        from kubernetes.client.exceptions import ApiException

        query = [(key, params[name]) for name, key in _QUERY.items() if params.get(name) is not None]
        headers = {
            "Accept": "application/json",
            "Content-Type": params.get("content_type", "application/json"),
        }
        try:
            request = self.api.param_serialize(
                method.upper(),
                path,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*request, _request_timeout=30)
            response.read()
            if not 200 <= response.status <= 299:
                self.api.response_deserialize(response, {})
        except ApiException as exc:
            raise self._error(exc, method, path) from None
        except OSError as exc:
            raise DeployError(f"cannot reach the cluster: {exc}", "check the API server address") from None
        return bytes(response.data or b"")

    def _error(self, exc: Any, method: str, path: str) -> DeployError:
        return api_error(exc, method, path, self.namespace)

    def groups(self) -> set[str]:
        if self._groups is None:
            data = self.request("get", "/apis")
            self._groups = {g.get("name", "") for g in data.get("groups", [])}
        return self._groups

    def ingress_class(self) -> str | None:
        if "networking.k8s.io" not in self.groups():
            return None
        try:
            items = self.request("get", "/apis/networking.k8s.io/v1/ingressclasses").get("items", [])
        except DeployError:
            return None
        for item in items:
            if (
                item.get("metadata", {})
                .get("annotations", {})
                .get("ingressclass.kubernetes.io/is-default-class")
                == "true"
            ):
                return str(item["metadata"]["name"])
        return str(items[0]["metadata"]["name"]) if items else None

    def apply_object(self, obj: Obj) -> Obj:
        """Server-side apply; create when the server has no such object yet."""
        meta = obj["metadata"]
        obj = {**obj, "metadata": {**meta, "namespace": meta.get("namespace") or self.namespace}}
        path = _path(obj["apiVersion"], obj["kind"], self.namespace, meta["name"])
        try:
            return self.request(
                "patch",
                path,
                body=obj,
                content_type="application/apply-patch+yaml",
                field_manager=manifests.MANAGER,
                force_conflicts=True,
            )
        except DeployError as exc:
            if "(404)" not in exc.message:
                raise
        return self.request(
            "post",
            _path(obj["apiVersion"], obj["kind"], self.namespace),
            body=obj,
            field_manager=manifests.MANAGER,
        )

    def get(self, api_version: str, kind: str, name: str) -> Obj | None:
        try:
            return self.request("get", _path(api_version, kind, self.namespace, name))
        except DeployError as exc:
            if "(404)" in exc.message:
                return None
            raise

    def delete(self, api_version: str, kind: str, name: str) -> None:
        try:
            self.request(
                "delete", _path(api_version, kind, self.namespace, name), propagation_policy="Background"
            )
        except DeployError as exc:
            if "(404)" not in exc.message:
                raise

    # -- operations ----------------------------------------------------------------------------
    def render(self, spec: DeploySpec, revision: int, delivery: Delivery | None = None, *,
               storage_class: str = "", storage_access: str = "ReadWriteOnce") -> list[Obj]:
        """The revision's objects; with a ``delivery`` each pod fetches the model from the remote,
        else every replica mounts one volume (refused for several replicas on ReadWriteOnce)."""
        spec.namespace = spec.namespace or self.namespace
        groups = self.groups()
        openshift = self.target == "openshift" or "route.openshift.io" in groups
        if self.target == "openshift" and "route.openshift.io" not in groups:
            raise DeployError(
                "this cluster has no route.openshift.io API: it is not OpenShift", "use --target kubernetes"
            )
        kserve = "serving.kserve.io" in groups
        expose = manifests.exposure(spec, openshift)
        if expose == "route" and "route.openshift.io" not in groups:
            raise DeployError(
                "--expose route needs OpenShift, and this cluster has no route.openshift.io API",
                "use --expose ingress or --expose none",
            )
        ingress_class = None if expose != "ingress" or kserve else self.ingress_class()
        if spec.expose == "ingress" and not kserve and ingress_class is None:
            raise DeployError(
                "--expose ingress needs an IngressClass, and this cluster has none",
                "install an ingress controller, or use --expose none (reach it with 'workbench predict')",
            )
        return manifests.render(
            spec, revision, openshift=openshift, kserve=kserve, ingress_class=ingress_class,
            delivery=delivery, storage_class=storage_class, storage_access=storage_access,
        )

    def validate(self, objects: list[Obj]) -> None:
        for obj in objects:
            manifests.validate(obj)

    def apply(
        self,
        spec: DeploySpec,
        revision: int,
        objects: list[Obj],
        fetch: Callable[[Path], None],
        timeout: float,
        progress: Callable[[int, int], None] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> tuple[RolloutStatus, str]:
        """Fill the model volume (or, when the pods fetch the model, store the remote's
        ``credentials`` in the Secret they read; None: they read an existing one), apply every
        object, wait for the rollout; returns its status and URL."""
        if objects[0]["kind"] == "PersistentVolumeClaim":
            self.apply_object(objects[0])  # the PVC first: the loader Job mounts it
            self.load_model(spec, revision, fetch, timeout)
        else:
            if credentials is not None:
                secret = manifests.fetch_secret(spec, credentials, revision)
                manifests.validate(secret)
                self.apply_object(secret)
            self.apply_object(objects[0])
        for obj in objects[1:]:
            self.apply_object(obj)
        self._drop_stale_exposure(spec.name, objects)
        self._drop_stale_scaling(spec.name, objects)
        status = self.wait(spec.name, timeout, progress, kserve=objects[-1]["kind"] == "InferenceService")
        if status.state == "complete":
            self._drop_stale_files(spec.name, objects[0]["metadata"]["name"])
            if objects[0]["kind"] == "ConfigMap":  # no pod mounts the volume of an earlier revision now
                self.delete("v1", "PersistentVolumeClaim", manifests.pvc_name(spec))
        return status, self.endpoint(spec.name)

    def _owned(self, kind: str, name: str) -> list[Obj]:
        """The objects of ``kind`` Workbench made for deployment ``name``."""
        selector = f"workbench.dev/deployment={name},app.kubernetes.io/managed-by={manifests.MANAGER}"
        found = self.request("get", _path("v1", kind, self.namespace), label_selector=selector)
        return [item for item in found.get("items") or []  # checked here too: never another's object
                if (item.get("metadata", {}).get("labels") or {}).get("workbench.dev/deployment") == name
                and item["metadata"]["labels"].get("app.kubernetes.io/managed-by") == manifests.MANAGER]

    def _drop_stale_files(self, name: str, keep: str) -> None:
        """Delete the fetch ConfigMaps of earlier revisions once no pod of theirs is left to start."""
        prefix = fetching.files_name(name, 0)[: -len("0")]
        for item in self._owned("ConfigMap", name):
            found = str(item.get("metadata", {}).get("name", ""))
            if found.startswith(prefix) and found != keep:
                self.delete("v1", "ConfigMap", found)

    def _drop_stale_exposure(self, name: str, objects: list[Obj]) -> None:
        """Delete a Route or Ingress an earlier revision made public that this one does not want."""
        kept = {obj["kind"] for obj in objects}
        if "InferenceService" in kept:
            return  # KServe owns its own routing objects
        groups = self.groups()
        for api_version, kind in manifests.EXPOSURE_KINDS:
            if kind in kept or api_version.split("/")[0] not in groups:
                continue
            try:
                found = self.get(api_version, kind, name)
            except DeployError:
                continue  # not allowed to read it: this user never made it public either
            labels = (found or {}).get("metadata", {}).get("labels") or {}
            if labels.get("app.kubernetes.io/managed-by") == manifests.MANAGER:
                self.delete(api_version, kind, name)

    def _drop_stale_scaling(self, name: str, objects: list[Obj]) -> None:
        """Delete an autoscaler or disruption budget an earlier revision had and this one does not."""
        kept = {obj["kind"] for obj in objects}
        if "InferenceService" in kept:
            return
        for api_version, kind in SCALING_KINDS:
            if kind not in kept:
                self.delete(api_version, kind, name)

    def load_model(
        self, spec: DeploySpec, revision: int, fetch: Callable[[Path], None], timeout: float
    ) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / spec.model.filename
            fetch(file)
            data = file.read_bytes()
        loaders = manifests.loader_objects(spec, revision, data)
        self.validate(loaders)
        for obj in loaders:
            self.apply_object(obj)
        job = loaders[-1]
        deadline = time.monotonic() + timeout
        state = "running"
        while True:
            found = self.get("batch/v1", "Job", job["metadata"]["name"])
            state = rollout.job_state(found or {})
            if state != "running" or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        for obj in loaders:
            self.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        if state != "succeeded":
            raise DeployError(
                f"could not copy the model into volume {manifests.pvc_name(spec)} "
                f"({'the loader job failed' if state == 'failed' else 'timed out'})",
                f"kubectl -n {self.namespace} describe job {job['metadata']['name']}",
            )

    def status(self, name: str) -> RolloutStatus:
        dep = self.get("apps/v1", "Deployment", name)
        if dep is None:
            return RolloutStatus(state="failed", message=f'deployment "{name}" not found')
        selector = ",".join(f"{k}={v}" for k, v in sorted(dep["spec"]["selector"]["matchLabels"].items()))
        pods = self.request("get", _path("v1", "Pod", self.namespace), label_selector=selector).get(
            "items", []
        )
        return rollout.deployment_status(dep, rollout.deployment_reasons(dep) + rollout.pod_reasons(pods))

    def kserve_status(self, name: str) -> RolloutStatus:
        isvc = self.get("serving.kserve.io/v1beta1", "InferenceService", name) or {}
        for cond in isvc.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                if cond.get("status") == "True":
                    return RolloutStatus(state="complete", message=f'inference service "{name}" is ready')
                return RolloutStatus(
                    state="progressing",
                    message=str(cond.get("message", "not ready")),
                    reasons=[str(cond.get("message", ""))] if cond.get("message") else [],
                )
        return RolloutStatus(state="progressing", message="waiting for KServe to report readiness")

    def wait(
        self,
        name: str,
        timeout: float,
        progress: Callable[[int, int], None] | None = None,
        *,
        kserve: bool = False,
    ) -> RolloutStatus:
        """Poll until the rollout completes, fails, or ``timeout`` passes (then: the last status)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.kserve_status(name) if kserve else self.status(name)
            if progress:
                progress(status.available, max(status.desired, 1))
            if status.done:
                return status
            if time.monotonic() > deadline:
                status.state = "failed"
                status.message = f"not ready after {timeout:.0f}s: {status.message}"
                return status
            time.sleep(POLL)

    def scale(self, name: str, replicas: int, timeout: float) -> RolloutStatus:
        if self.get("serving.kserve.io/v1beta1", "InferenceService", name) is not None:
            body = {"spec": {"predictor": {"minReplicas": replicas, "maxReplicas": max(replicas, 1)}}}
            self.request(
                "patch",
                _path("serving.kserve.io/v1beta1", "InferenceService", self.namespace, name),
                body=body,
                content_type="application/merge-patch+json",
            )
            return self.wait(name, timeout, kserve=True)
        if replicas > 1:
            self.check_scale(name, replicas)
        self.delete("autoscaling/v2", "HorizontalPodAutoscaler", name)  # a manual count from now on
        self.request(
            "patch",
            _path("apps/v1", "Deployment", self.namespace, name, "scale"),
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )
        return self.wait(name, timeout)

    def check_scale(self, name: str, replicas: int) -> None:
        """Refuse several replicas of a deployment that mount one ReadWriteOnce model volume."""
        dep = self.get("apps/v1", "Deployment", name) or {}
        volumes = dep.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []
        for volume in volumes:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.get("v1", "PersistentVolumeClaim", str(claim)) or {}
            modes = pvc.get("spec", {}).get("accessModes") or ["ReadWriteOnce"]
            if not any(mode in fetching.SHARED_MODES for mode in modes):
                fetching.check_volume(replicas, 0, str(modes[0]), name)

    def endpoint(self, name: str) -> str:
        found = (
            self.get("route.openshift.io/v1", "Route", name)
            if "route.openshift.io" in self.groups()
            else None
        )
        if found:
            ingress = (found.get("status", {}).get("ingress") or [{}])[0]
            host = ingress.get("host") or found.get("spec", {}).get("host")
            if host:
                return f"https://{host}"
        isvc = (
            self.get("serving.kserve.io/v1beta1", "InferenceService", name)
            if "serving.kserve.io" in self.groups()
            else None
        )
        if isvc and isvc.get("status", {}).get("url"):
            return str(isvc["status"]["url"])
        ing = self.get("networking.k8s.io/v1", "Ingress", name)
        if ing:
            lb = (ing.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
            host = lb.get("hostname") or lb.get("ip")
            if host:
                return f"http://{host}"
        return f"http://{name}.{self.namespace}.svc:8080"

    def endpoints(self, name: str, endpoint: str) -> list[tuple[str, str]]:
        return [(endpoint or self.endpoint(name), "")]

    # -- serving through the API server's proxy ------------------------------------------------
    # Works from outside the cluster with the user's own credentials, whatever the Route / Ingress /
    # TLS set-up (a test cluster's router certificate is often self-signed; a plain cluster may
    # have no ingress at all). Needs the ``services/proxy`` and ``pods/proxy`` permissions.
    def infer(self, name: str, payload: Obj) -> Obj:
        """Send a V2 inference request to the deployment's Service (or KServe's predictor)."""
        service = name
        if "serving.kserve.io" in self.groups() and self.get(
            "serving.kserve.io/v1beta1", "InferenceService", name
        ):
            service = f"{name}-predictor"
        path = f"/api/v1/namespaces/{self.namespace}/services/{service}:http/proxy/v2/models/{name}/infer"
        return self.request("post", path, body=payload)

    def metrics_texts(self, name: str) -> list[str]:
        """Every ready replica's Prometheus metrics, scraped through the pod proxy."""
        dep = self.get("apps/v1", "Deployment", name)
        if dep is None:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(dep["spec"]["selector"]["matchLabels"].items()))
        ports = {p.get("name"): p.get("containerPort") for c in dep["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports") or []}
        port = ports.get("metrics") or serving.HTTP_PORT  # KServe serves /metrics on its HTTP port
        ports = {p.get("name"): p.get("containerPort") for c in dep["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports") or []}
        port = ports.get("metrics") or serving.HTTP_PORT  # KServe serves /metrics on its HTTP port
        pods = self.request("get", _path("v1", "Pod", self.namespace), label_selector=selector)
        texts: list[str] = []
        for pod in pods.get("items", []):
            conditions = pod.get("status", {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                continue
            pod_name = pod["metadata"]["name"]
            path = f"/api/v1/namespaces/{self.namespace}/pods/{pod_name}:{port}"
            try:
                texts.append(self.raw("get", path + "/proxy/metrics").decode("utf-8", "replace"))
            except DeployError:
                continue
        return texts

    def remove(self, name: str) -> None:
        """Delete every object of the deployment (the PVC too: its models are copies)."""
        for api_version, kind, suffix in (
            ("serving.kserve.io/v1beta1", "InferenceService", ""),
            *(("serving.kserve.io/v1alpha1", "ServingRuntime", f"-{server}") for server in SERVERS),
            ("route.openshift.io/v1", "Route", ""),
            ("networking.k8s.io/v1", "Ingress", ""),
            ("v1", "Service", ""),
            *((api_version, kind, "") for api_version, kind in SCALING_KINDS),
            ("apps/v1", "Deployment", ""),
            ("v1", "PersistentVolumeClaim", "-models"),
            ("v1", "Secret", "-model-fetch"),
        ):
            if (
                api_version.startswith(("serving.kserve.io", "route.openshift.io"))
                and api_version.split("/")[0] not in self.groups()
            ):
                continue
            self.delete(api_version, kind, name + suffix)
        for item in self._owned("ConfigMap", name):
            self.delete("v1", "ConfigMap", str(item["metadata"]["name"]))
