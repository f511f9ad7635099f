"""Value types shared by the deploy package and its callers (CLI, TUI)."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.errors import DeployError, UsageError

_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXPOSE = ("route", "ingress", "none")
"""How a cluster deployment is reached from outside: an OpenShift Route, an Ingress, or not at all
(only inside the cluster and through the API server's service proxy, as ``workbench predict`` does)."""
TARGETS = ("local", "kubernetes", "openshift")
MAX_NAME = 53
"""Service names are DNS-1035 labels (63) and we append suffixes such as ``-models``/``-predictor``."""


def check_name(name: str) -> str:
    """Accept a deployment name that Kubernetes will accept too, or say what the rule is."""
    if not _RFC1123_LABEL.match(name) or len(name) > MAX_NAME or name[0].isdigit():
        raise DeployError(
            f"invalid deployment name '{name}'",
            "Kubernetes names must be RFC 1123 labels: lowercase letters, digits and '-', starting with a "
            f"letter and ending with a letter or digit, at most {MAX_NAME} characters here "
            "(e.g. 'iris-classifier')",
        )
    return name


def check_options(target: str, *, replicas: int | None, gpus: int, timeout: float, expose: str | None,
                  log_predictions: float, name: str | None) -> None:
    """Refuse bad deploy options in one line, before anything is resolved, built or started."""
    if not 0.0 <= log_predictions <= 1.0:
        raise UsageError(f"--log-predictions must be between 0 and 1, got {log_predictions:g}",
                         "1 records every request, 0.1 one in ten, 0 none")
    if target not in TARGETS:
        raise UsageError(f"unknown target '{target}'", f"use one of {', '.join(TARGETS)}")
    if expose is not None and expose not in EXPOSE:
        raise UsageError(f"unknown --expose '{expose}'", f"use one of {', '.join(EXPOSE)}")
    if expose is not None and target == "local":
        raise UsageError("--expose applies to cluster targets",
                         "a local deployment listens on this machine only; drop --expose")
    if replicas is not None and replicas < 0:
        raise UsageError(f"replicas cannot be negative, got {replicas}", "give 0 or more")
    if gpus < 0:
        raise UsageError(f"gpus cannot be negative, got {gpus}", "give 0 or more GPUs per replica")
    if not timeout > 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout:g}",
                         "e.g. --timeout 300")
    if name:
        check_name(name)


def default_name(model: str) -> str:
    """A valid deployment name derived from a model name (``Iris_Model`` -> ``iris-model``)."""
    text = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")
    text = re.sub(r"-{2,}", "-", text)
    if not text or not text[0].isalpha():
        text = "m-" + text
    return text[:MAX_NAME].rstrip("-")


@dataclass(frozen=True)
class ModelRef:
    """A model version as the registry describes it (see ``ws.runs.model_version``)."""

    name: str
    version: str
    hash: str
    framework: str
    framework_version: str | None = None
    run_id: str | None = None
    path: str = ""

    @classmethod
    def from_registry(cls, obj: Any) -> ModelRef:
        return cls(
            name=str(obj.name),
            version=str(obj.version),
            hash=str(obj.hash),
            framework=str(getattr(obj, "framework", "") or ""),
            framework_version=getattr(obj, "framework_version", None) or None,
            run_id=getattr(obj, "run_id", None),
            path=str(getattr(obj, "path", "") or ""),
        )

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1] if self.path else f"model-{self.hash[:12]}"


@dataclass
class DeploySpec:
    """What one revision of a deployment asks for; recorded with the revision, replayed by rollback."""

    name: str
    target: str
    model: ModelRef
    replicas: int = 1
    namespace: str = ""
    cpu: str | None = None
    memory: str | None = None
    gpus: int = 0
    image: str = ""
    expose: str = ""
    """One of :data:`EXPOSE`, or "" for the target's default (Route on OpenShift, else Ingress)."""
    port: int = 0
    """Local target: the front door's port; 0 keeps the deployment's current one, else a free one."""
    min_replicas: int = 0
    max_replicas: int = 0
    """Cluster targets: a HorizontalPodAutoscaler between these when ``max_replicas`` > 0."""
    target_cpu: int = 0
    """The autoscaler's CPU utilisation target in percent of the request (0: 70)."""
    log_predictions: float = 1.0
    """The share of requests whose inputs and answers are recorded (0 turns capture off)."""
    image_frameworks: list[str] = field(default_factory=list)
    """What ``image`` holds (``["scikit-learn==1.9.1"]``): checked against the model before rollout."""
    server: str = ""
    """The model server (``mlserver`` or ``kserve``, :mod:`workbench.deploy.servers`); "" is MLServer,
    what revisions recorded before there was a choice."""
    signature: dict[str, Any] | None = None
    """The model version's input signature recorded at registration (``{"names", "count", "dtypes"}``,
    from its reference profile): requests that do not match it are refused with HTTP 400."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploySpec:
        data = dict(data)
        data["model"] = ModelRef(**data["model"])
        return cls(**data)


@dataclass
class DeploymentInfo:
    """One deployment as listings show it (``deployments --json`` prints :meth:`to_json`)."""

    name: str
    target: str
    namespace: str
    model: str
    version: str
    run_id: str | None
    artifact_hash: str
    framework: str
    replicas: int
    ready: int
    revision: int
    state: str
    """progressing | available | degraded | failed | undeployed"""
    message: str
    endpoint: str
    created_at: float
    updated_at: float
    endpoints: list[str] = field(default_factory=list)
    server: str = ""
    """The model server the live revision runs (``mlserver`` or ``kserve``); "" once undeployed."""

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.created_at)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["age_seconds"] = round(self.age_seconds, 1)
        return data


@dataclass
class Revision:
    """One entry of a deployment's history."""

    revision: int
    action: str
    model: str
    version: str
    run_id: str | None
    artifact_hash: str
    replicas: int
    deployed_by: str
    deployed_at: float
    result: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RolloutStatus:
    """Where a rollout stands, computed as ``kubectl rollout status`` does, with pod reasons in words."""

    state: str
    """progressing | complete | failed"""
    message: str
    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in ("complete", "failed")
