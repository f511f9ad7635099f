"""Render the Kubernetes objects of one deployment revision, and validate them before they are sent.

Objects: the model's delivery (:mod:`workbench.deploy.delivery`): a ConfigMap with the fetch script
and the model folder's small files, read by an init container in each pod that fetches the model from
the project's S3 remote; or, without one, a PersistentVolumeClaim holding model folders (one per
artifact hash), filled by a loader Job that copies the model from ConfigMaps (binaryData, chunks
under 1 MiB) into it. Then either a
Deployment + Service + Route (OpenShift, edge TLS) or Ingress (plain Kubernetes with an ingress class)
or neither (``expose="none"``: reachable inside the cluster and through the API server's proxy only),
or, where the cluster serves KServe, a ServingRuntime with the same MLServer image and an
InferenceService reading the same PVC. Every object carries labels and annotations that tie it to
the model, version, run and artifact hash. Pods follow OpenShift's restricted-v2 rules: no user id
set, non-root, no privilege escalation, all capabilities dropped, read-only root and model mount.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from workbench.deploy import delivery as fetching
from workbench.deploy import scaling, servers, serving
from workbench.deploy.delivery import Delivery
from workbench.deploy.schemas import CRD_FILES, crd_schema, validate
from workbench.deploy.types import DeploySpec

Obj = dict[str, Any]
CHUNK = 900 * 1024
MANAGER = "workbench"
PROGRESS_DEADLINE = 600
KSERVE_VISIBILITY = "networking.kserve.io/visibility"
"""KServe's label that keeps an InferenceService's URL inside the cluster (``cluster-local``)."""
KSERVE_MODEL_MOUNT = "/mnt/models"
EXPOSURE_KINDS = (("route.openshift.io/v1", "Route"), ("networking.k8s.io/v1", "Ingress"))
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


def label_value(text: str) -> str:
    """A label-safe form of any string (full values go in annotations)."""
    return _LABEL_VALUE.sub("-", text)[:63].strip("-._")


def labels(spec: DeploySpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/managed-by": MANAGER,
        "app.kubernetes.io/component": "model-server",
        "workbench.dev/deployment": spec.name,
        "workbench.dev/model": label_value(spec.model.name),
        "workbench.dev/version": label_value(spec.model.version),
    }


def object_annotations(spec: DeploySpec, revision: int) -> dict[str, str]:
    return {
        "workbench.dev/model": spec.model.name,
        "workbench.dev/version": spec.model.version,
        "workbench.dev/run": spec.model.run_id or "",
        "workbench.dev/artifact-hash": spec.model.hash,
        "workbench.dev/framework": f"{spec.model.framework} {spec.model.framework_version or ''}".strip(),
        "workbench.dev/revision": str(revision),
    }


def _meta(spec: DeploySpec, name: str, revision: int) -> Obj:
    meta: Obj = {"name": name, "labels": labels(spec), "annotations": object_annotations(spec, revision)}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return meta


def pvc_name(spec: DeploySpec) -> str:
    return f"{spec.name}-models"


def model_subdir(spec: DeploySpec) -> str:
    return spec.model.hash[:32]


def folder_texts(spec: DeploySpec, revision: int = 0) -> dict[str, str]:
    """The small files of the model folder: its ``model-settings.json``, the runtimes it needs."""
    runtime = serving.runtime_for(spec.model.framework)
    return servers.get(spec.server).folder_files(spec.name, spec.model.version, spec.model.filename, runtime,
                                                 revision=revision, log_rate=spec.log_predictions,
                                                 model=spec.model.name, signature=spec.signature)


def model_files(spec: DeploySpec, model_bytes: bytes, revision: int = 0) -> dict[str, bytes]:
    """The files of the model folder: the model and :func:`folder_texts`."""
    files = {spec.model.filename: model_bytes}
    files.update({name: text.encode() for name, text in folder_texts(spec, revision).items()})
    return files


def loader_objects(spec: DeploySpec, revision: int, model_bytes: bytes) -> list[Obj]:
    """ConfigMaps with the model folder in chunks, and the Job that writes it into the PVC."""
    files = model_files(spec, model_bytes, revision)
    base = f"{spec.name}-load-{spec.model.hash[:10]}"
    maps: list[Obj] = []
    script = [f"set -e; dest=/models/{model_subdir(spec)}; mkdir -p $dest.tmp"]
    for index, (filename, data) in enumerate(sorted(files.items())):
        parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
        names = []
        for part_no, part in enumerate(parts):
            cm_name = f"{base}-{index}-{part_no}"
            maps.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": _meta(spec, cm_name, revision),
                    "binaryData": {"part": base64.b64encode(part).decode()},
                }
            )
            names.append(cm_name)
        script.append(f"cat {' '.join(f'/parts/{n}/part' for n in names)} > $dest.tmp/{filename}")
    script.append("chmod -R g+rX,o+rX $dest.tmp; rm -rf $dest; mv $dest.tmp $dest")
    volumes: list[Obj] = [{"name": "models", "persistentVolumeClaim": {"claimName": pvc_name(spec)}}]
    mounts: list[Obj] = [{"name": "models", "mountPath": "/models"}]
    for cm in maps:
        volumes.append({"name": cm["metadata"]["name"], "configMap": {"name": cm["metadata"]["name"]}})
        mounts.append(
            {
                "name": cm["metadata"]["name"],
                "mountPath": f"/parts/{cm['metadata']['name']}",
                "readOnly": True,
            }
        )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(spec, base, revision),
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": labels(spec)},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": _pod_security(),
                    "containers": [
                        {
                            "name": "load",
                            "image": image(spec),
                            "command": ["/bin/sh", "-c"],
                            "args": ["; ".join(script)],
                            "volumeMounts": mounts,
                            "securityContext": _container_security(),
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }
    return [*maps, job]


def image(spec: DeploySpec) -> str:
    if spec.image:
        return spec.image
    return servers.get(spec.server).default_image(serving.runtime_for(spec.model.framework))


def _pod_security() -> Obj:
    return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }


def _resources(spec: DeploySpec) -> Obj:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.cpu:
        requests["cpu"] = limits["cpu"] = spec.cpu
    elif scaling.autoscaled(spec):
        requests["cpu"] = scaling.AUTOSCALE_CPU_REQUEST
    if spec.memory:
        requests["memory"] = limits["memory"] = spec.memory
    if spec.gpus:
        limits["nvidia.com/gpu"] = str(spec.gpus)
    out: Obj = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def server_command(spec: DeploySpec, mount: str) -> list[str]:
    """The server container's command: ``mlserver start DIR``, or KServe's ``python DIR/workbench_kserve.py
    --model_name NAME --http_port 8080 --grpc_port 8081`` (run by the image's Python)."""
    impl = servers.get(spec.server)
    return impl.argv("python", mount, spec.name, PORTS, local=False)


PORTS = servers.Ports(serving.HTTP_PORT, serving.GRPC_PORT, serving.METRICS_PORT)


def _server_container(spec: DeploySpec, fetched: bool = False) -> Obj:
    impl = servers.get(spec.server)
    env = impl.env(PORTS, "/tmp", "0.0.0.0")
    env["HOME"] = "/tmp"
    return {
        "name": impl.name,
        "image": image(spec),
        "command": server_command(spec, serving.MODEL_MOUNT),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in impl.container_ports()],
        "readinessProbe": {
            "httpGet": {"path": f"/v2/models/{spec.name}/ready", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
        },
        "resources": _resources(spec),
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "models", "mountPath": serving.MODEL_MOUNT, "readOnly": True}
            if fetched  # the init container filled the emptyDir with this version's folder alone
            else {
                "name": "models",
                "mountPath": serving.MODEL_MOUNT,
                "subPath": model_subdir(spec),
                "readOnly": True,
            },
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def pvc(spec: DeploySpec, revision: int, size: str = "1Gi", *, storage_class: str = "",
        access: str = "ReadWriteOnce") -> Obj:
    claim: Obj = {"accessModes": [access], "resources": {"requests": {"storage": size}}}
    if storage_class:
        claim["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(spec, pvc_name(spec), revision),
        "spec": claim,
    }


def files_configmap(spec: DeploySpec, revision: int) -> Obj:
    """The fetch script and the model folder's small files, read by this revision's pods."""
    return fetching.files_configmap(_meta(spec, fetching.files_name(spec.name, revision), revision),
                                    folder_texts(spec, revision))


def fetch_secret(spec: DeploySpec, credentials: dict[str, str], revision: int) -> Obj:
    """The remote's credentials the init containers read (applied with each revision, never recorded)."""
    return fetching.secret(_meta(spec, fetching.secret_name(spec.name), revision), credentials)


def _fetching_pod(spec: DeploySpec, revision: int, delivery: Delivery) -> Obj:
    """The init container and volumes of a pod that fetches its model (no shared volume)."""
    init = fetching.init_container(spec.name, image(spec), delivery, spec.model.filename,
                                   _container_security())
    return {"initContainers": [init], "volumes": fetching.pod_volumes(spec.name, revision)}


def selector(spec: DeploySpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/managed-by": MANAGER}


def deployment(spec: DeploySpec, revision: int, delivery: Delivery | None = None) -> Obj:
    obj = _deployment(spec, revision, selector(spec))
    if delivery is not None:
        pod = obj["spec"]["template"]["spec"]
        fetched = _fetching_pod(spec, revision, delivery)
        pod["initContainers"] = fetched["initContainers"]
        pod["volumes"] = [*fetched["volumes"], {"name": "tmp", "emptyDir": {}}]
        pod["containers"] = [_server_container(spec, fetched=True)]
        obj["spec"]["template"]["metadata"]["annotations"]["workbench.dev/model-sha256"] = delivery.sha256
    if scaling.autoscaled(spec):  # the autoscaler owns the count; applying one would fight it
        del obj["spec"]["replicas"]
    return obj


def _deployment(spec: DeploySpec, revision: int, match: dict[str, str]) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, spec.name, revision),
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": PROGRESS_DEADLINE,
            "selector": {"matchLabels": match},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(spec), "annotations": object_annotations(spec, revision)},
                "spec": {
                    "securityContext": _pod_security(),
                    "automountServiceAccountToken": False,
                    **scaling.pod_placement(spec, match),
                    "containers": [_server_container(spec)],
                    "volumes": [
                        {
                            "name": "models",
                            "persistentVolumeClaim": {"claimName": pvc_name(spec), "readOnly": True},
                        },
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def service(spec: DeploySpec, revision: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, spec.name, revision),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/managed-by": MANAGER},
            "ports": [
                {"name": n, "port": p, "targetPort": n, "protocol": "TCP"}
                for n, p in servers.get(spec.server).container_ports()
            ],
        },
    }


def route(spec: DeploySpec, revision: int) -> Obj:
    return {
        "apiVersion": "route.openshift.io/v1",
        "kind": "Route",
        "metadata": _meta(spec, spec.name, revision),
        "spec": {
            "to": {"kind": "Service", "name": spec.name, "weight": 100},
            "port": {"targetPort": "http"},
            "tls": {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"},
            "wildcardPolicy": "None",
        },
    }


def ingress(spec: DeploySpec, revision: int, ingress_class: str) -> Obj:
    backend = {"service": {"name": spec.name, "port": {"name": "http"}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(spec, spec.name, revision),
        "spec": {
            "ingressClassName": ingress_class,
            "rules": [
                {
                    "http": {
                        "paths": [
                            {"path": f"/v2/models/{spec.name}", "pathType": "Prefix", "backend": backend}
                        ]
                    }
                }
            ],
        },
    }


def runtime_name(spec: DeploySpec) -> str:
    """The deployment's ServingRuntime: ``NAME-mlserver`` or ``NAME-kserve``."""
    return f"{spec.name}-{servers.get(spec.server).name}"


def serving_runtime(spec: DeploySpec, revision: int) -> Obj:
    runtime = serving.runtime_for(spec.model.framework)
    container = _server_container(spec)
    container.pop("volumeMounts")
    container.pop("readinessProbe")
    container["name"] = "kserve-container"
    container["command"] = server_command(spec, KSERVE_MODEL_MOUNT)
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": _meta(spec, runtime_name(spec), revision),
        "spec": {
            "supportedModelFormats": [{"name": runtime.kserve_format, "autoSelect": False}],
            "protocolVersions": ["v2", "grpc-v2"],
            "multiModel": False,
            "containers": [container],
        },
    }


def inference_service(spec: DeploySpec, revision: int, delivery: Delivery | None = None) -> Obj:
    """KServe's predictor; with a ``delivery``, its pods fetch the model in an init container into
    an emptyDir mounted where KServe's storage initializer would have put it (no ``storageUri``)."""
    runtime = serving.runtime_for(spec.model.framework)
    model: Obj = {
        "modelFormat": {"name": runtime.kserve_format},
        "runtime": runtime_name(spec),
        "protocolVersion": "v2",
    }
    if delivery is None:
        model["storageUri"] = f"pvc://{pvc_name(spec)}/{model_subdir(spec)}"
    else:
        model["volumeMounts"] = [{"name": "models", "mountPath": KSERVE_MODEL_MOUNT, "readOnly": True}]
    resources_ = _resources(spec)
    if resources_:
        model["resources"] = resources_
    predictor: Obj = {
        "minReplicas": (spec.min_replicas or 1) if scaling.autoscaled(spec) else spec.replicas,
        "maxReplicas": spec.max_replicas or max(spec.replicas, 1),
        "model": model,
    }
    if delivery is not None:
        predictor.update(_fetching_pod(spec, revision, delivery))
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _meta(spec, spec.name, revision),
        "spec": {"predictor": predictor},
    }


def exposure(spec: DeploySpec, openshift: bool) -> str:
    """How the revision is reached from outside: ``spec.expose``, else the target's default."""
    return spec.expose or ("route" if openshift else "ingress")


def render(
    spec: DeploySpec,
    revision: int,
    *,
    openshift: bool,
    kserve: bool,
    ingress_class: str | None,
    delivery: Delivery | None = None,
    storage_class: str = "",
    storage_access: str = "ReadWriteOnce",
) -> list[Obj]:
    """Every object of one revision except the loader (see :func:`loader_objects`), in apply order.

    The model reaches the pods (:mod:`workbench.deploy.delivery`) through ``delivery`` (each pod
    fetches it; the first object is then the ConfigMap of the fetch script and the folder's small
    files), or else through a PersistentVolumeClaim (the first object), which several replicas may
    share only with a ReadWriteMany ``storage_access``.

    Exposure follows :func:`exposure`: a Route, an Ingress (when the cluster has an ingress class),
    or none; with KServe, ``none`` marks the InferenceService cluster-local (no external URL)."""
    if delivery is None:
        fetching.check_volume(spec.replicas, spec.max_replicas, storage_access, spec.name)
        objects = [pvc(spec, revision, storage_class=storage_class, access=storage_access)]
    else:
        objects = [files_configmap(spec, revision)]
    expose = exposure(spec, openshift)
    if kserve:
        isvc = inference_service(spec, revision, delivery)
        if expose == "none":
            isvc["metadata"]["labels"][KSERVE_VISIBILITY] = "cluster-local"
        return [*objects, serving_runtime(spec, revision), isvc]
    objects += [deployment(spec, revision, delivery), service(spec, revision)]
    for extra in (
        scaling.disruption_budget(spec, _meta(spec, spec.name, revision), selector(spec)),
        scaling.autoscaler(spec, _meta(spec, spec.name, revision)),
    ):
        if extra is not None:
            objects.append(extra)
    if expose == "route":
        objects.append(route(spec, revision))
    elif expose == "ingress" and ingress_class:
        objects.append(ingress(spec, revision, ingress_class))
    return objects


__all__ = ["CRD_FILES", "crd_schema", "render", "validate"]
