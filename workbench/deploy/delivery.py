"""How each pod of a cluster deployment gets its model: fetched by itself, or from one shared volume.

With a default S3 remote (``remote`` mode), :func:`publish` uploads the model file once to
``serving/sha256/<hex>`` below the remote's prefix (only if absent: a redeploy of the same version
costs one request) and every pod's init container (:mod:`workbench.deploy.modelfetch`, shipped in a
ConfigMap with the model folder's small files) downloads it into an ``emptyDir``, verifying its size
and SHA-256, as a non-root user with a read-only root. Replicas on any node, any count, no shared
volume. The remote's credentials go into a Secret the init container reads; they are never part of
the recorded manifests.

Without one (``volume`` mode), the model is copied into a PersistentVolumeClaim that every replica
mounts: fine for one replica, or for several on a ReadWriteMany storage class (``[deploy]
storage_class`` and ``storage_access``); several replicas on ReadWriteOnce are refused in one line
(:func:`check_volume`), because pods on a second node would hang on a Multi-Attach error.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import DeployError, WorkbenchError

if TYPE_CHECKING:
    from workbench.remote.service import RemoteService

Obj = dict[str, Any]
KEY_PREFIX = "serving/sha256/"
FILES_MOUNT = "/workbench/files"
FETCH_MOUNT = "/workbench/models"
SCRIPT = "modelfetch.py"
SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod")
SHARED_MODES = ("ReadWriteMany", "ReadOnlyMany")


@dataclass(frozen=True)
class Delivery:
    """Where the pods fetch the model: ``key`` in ``bucket`` (an S3 remote), its SHA-256 and size."""

    remote: str
    bucket: str
    key: str
    sha256: str
    size: int
    endpoint_url: str = ""
    """The S3 endpoint the pods use ("" for AWS): ``[deploy] remote_endpoint`` or the remote's own."""
    region: str = ""
    secret: str = ""
    """The Secret holding the pods' credentials ("" for the one Workbench writes, ``NAME-model-fetch``)."""

    def plan(self, filename: str) -> dict[str, Any]:
        """What the init container reads from ``WORKBENCH_MODEL_FETCH`` (no credentials)."""
        return {"bucket": self.bucket, "key": self.key, "sha256": self.sha256, "size": self.size,
                "region": self.region or "us-east-1", "dest": FETCH_MOUNT, "filename": filename,
                "files": FILES_MOUNT}


def object_key(prefix: str, sha256: str) -> str:
    return f"{prefix.strip('/')}/{KEY_PREFIX}{sha256}".lstrip("/")


def publish(transport: Any, url: str, model_file: Path, *, remote: str, endpoint_url: str,
            region: str, secret: str = "") -> Delivery:
    """Upload ``model_file`` to the remote's ``serving/sha256/`` (if absent) through ``transport``
    (a :class:`workbench.remote.transport.Transport` for ``url``); the pods' fetch plan."""
    sha = hashlib.sha256()
    with open(model_file, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            sha.update(block)
    digest, size = sha.hexdigest(), model_file.stat().st_size
    if not transport.exists(f"{KEY_PREFIX}{digest}"):  # a redeploy of the same version sends nothing
        transport.put_if_absent(f"{KEY_PREFIX}{digest}", model_file.read_bytes())
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return Delivery(remote, bucket, object_key(prefix, digest), digest, size, endpoint_url, region, secret)


def from_remote(remote: RemoteService | None, filename: str, fetch: Callable[[Path], None],
                pod_endpoint: str = "", secret: str = "") -> tuple[Delivery | None, dict[str, str] | None]:
    """With a default S3 remote: the model (``fetch`` writes it to a path) uploaded there for the pods
    to fetch, once per version, and the credentials to store for them (None when ``secret`` names an
    existing Secret); else ``(None, None)`` (one volume). ``pod_endpoint``: the S3 address pods use,
    when not the remote's own."""
    from workbench.remote.transport import RemoteSpec, open_transport

    target = remote.default_target(("s3",)) if remote is not None else None
    if remote is None or target is None:
        return None, None
    credentials = remote.job_credentials(target)
    endpoint = pod_endpoint or credentials.pop("AWS_ENDPOINT_URL", "")
    where = RemoteSpec(target.url, target.endpoint_url, target.region)
    with tempfile.TemporaryDirectory(prefix="workbench-deploy-") as tmp:
        file = Path(tmp) / filename
        fetch(file)
        try:
            found = publish(open_transport(where), target.url, file, remote=target.name,
                            endpoint_url=endpoint, region=credentials.get("AWS_REGION", ""), secret=secret)
        except WorkbenchError as exc:
            raise DeployError(f"cannot upload the model to the remote {target.name}: {exc.one_line()}",
                              "fix the remote ('workbench remote status'), or remove it to deploy from "
                              "a volume") from None
    return found, None if secret else credentials


def script_text() -> str:
    return resources.files("workbench.deploy").joinpath(SCRIPT).read_text(encoding="utf-8")


def files_name(name: str, revision: int) -> str:
    return f"{name}-model-r{revision}"


def secret_name(name: str) -> str:
    return f"{name}-model-fetch"


def files_configmap(meta: Obj, files: dict[str, str]) -> Obj:
    """The fetch script and the model folder's small text files, for one revision's pods."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {SCRIPT: script_text(), **files}}


def secret(meta: Obj, credentials: dict[str, str]) -> Obj:
    """The remote's credentials for the init container (applied, never recorded)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "stringData": {k: v for k, v in credentials.items() if k in SECRET_KEYS and v}}


def init_container(name: str, image: str, delivery: Delivery, filename: str, security: Obj) -> Obj:
    """The init container that fetches and verifies the model into the ``models`` emptyDir."""
    env: list[Obj] = [{"name": "WORKBENCH_MODEL_FETCH", "value": json.dumps(delivery.plan(filename))},
                      {"name": "HOME", "value": "/tmp"}]
    if delivery.endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL", "value": delivery.endpoint_url})
    secret = delivery.secret or secret_name(name)
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key,
                                                         "optional": True}}} for key in SECRET_KEYS]
    return {
        "name": "fetch-model",
        "image": image,
        "command": ["/bin/sh", "-c",
                    f'exec "$(command -v python3 || command -v python)" {FILES_MOUNT}/{SCRIPT}'],
        "env": env,
        "securityContext": security,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "models", "mountPath": FETCH_MOUNT},
                         {"name": "model-files", "mountPath": FILES_MOUNT, "readOnly": True}],
    }


def pod_volumes(name: str, revision: int) -> list[Obj]:
    return [{"name": "models", "emptyDir": {}},
            {"name": "model-files", "configMap": {"name": files_name(name, revision)}}]


def check_volume(replicas: int, max_replicas: int, access: str, name: str) -> None:
    """Refuse several replicas on one ReadWriteOnce model volume, in one line."""
    if access not in ACCESS_MODES:
        raise DeployError(f"[deploy] storage_access {access!r} is not an access mode",
                          f"use one of {', '.join(ACCESS_MODES)}")
    most = max(replicas, max_replicas)
    if most > 1 and access not in SHARED_MODES:
        raise DeployError(
            f"{most} replicas of '{name}' cannot share one {access} model volume: pods on a second node "
            "would hang on a Multi-Attach error",
            "add an S3 remote ('workbench remote add NAME s3://BUCKET/PREFIX') so each pod fetches the "
            "model itself, or set [deploy] storage_class to a ReadWriteMany class with "
            "storage_access = \"ReadWriteMany\", or deploy 1 replica",
        )
