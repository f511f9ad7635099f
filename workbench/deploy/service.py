"""DeployService (``ws.deployments``): deploy a model version, list, scale, roll back, undeploy, predict.

Every change is a revision in the store, each deployment's current state one row: both are kept by
:mod:`workbench.deploy.history`. The targets do the work: :mod:`workbench.deploy.local` (this
machine) and :mod:`workbench.deploy.cluster` (Kubernetes, OpenShift); this module orchestrates them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.deploy import delivery as fetching
from workbench.deploy import frontdoor, imagebuild, images, local, scaling, servers, serving
from workbench.deploy.history import DeploymentHistory
from workbench.deploy.local_rollout import (
    LocalDeployments,
    check_port,
    door_url,
    failure_words,
    fetcher,
    infer,
    labels_of,
    live_endpoint,
    replicas_of,
)
from workbench.deploy.metrics import MetricsSampler, MetricsSnapshot
from workbench.deploy.types import (
    DeploymentInfo,
    DeploySpec,
    ModelRef,
    Revision,
    check_name,
    check_options,
    default_name,
)
from workbench.errors import DeployError, UsageError, WorkbenchError

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.remote.service import RemoteService
    from workbench.tracking.service import TrackingService
    from workbench.versioning.service import VersioningService


Progress = Callable[[int, int], None]
Urls = list[tuple[str, str]]
Infos = list[DeploymentInfo]
Revisions = list[Revision]


class DeployService:
    """The deploy domain's facade; the CLI and the TUI call only this."""

    def __init__(self, project: Project, *, runs: TrackingService, versions: VersioningService,
                 remote: RemoteService | None = None,
                 signature_of: Callable[[str, str], dict[str, Any] | None] | None = None) -> None:
        """``runs`` resolves model versions through the registry; ``versions`` exports their bytes;
        ``remote``: where cluster pods fetch the model from; ``signature_of(model, version)``: a
        version's recorded input signature, which requests are checked against."""
        self.project = project
        self.remote = remote
        self.signature_of = signature_of
        self.runs = runs
        self.versions = versions
        self.state_root = project.paths.deploy
        self.local = local.LocalTarget(self.state_root, project.paths.monitor_spool)
        self._sampler = MetricsSampler()
        self._round_robin: dict[str, itertools.cycle[str]] = {}
        self.records = DeploymentHistory(lambda: project.db, project.atomic)
        self.local_rollouts = LocalDeployments(self.records, self.local, self.state_root, project.paths.db)

    # -- resolving -----------------------------------------------------------------------------
    def resolve_model(self, spec: str | ModelRef) -> ModelRef:
        """``name[:version|@alias]`` through the model registry (``ws.runs.model_version``)."""
        if isinstance(spec, ModelRef):
            return spec
        try:
            found = self.runs.model_version(spec)
        except (ImportError, AttributeError):
            raise DeployError(
                "the model registry is not available in this install", "log models with 'workbench run' first"
            ) from None
        return ModelRef.from_registry(found)

    def server_ready(self, model: str | ModelRef, server: str | None = None) -> bool:
        """Whether the local model server for this version's framework is built (no first-use wait);
        ``server``: ``mlserver`` or ``kserve`` (None: ``[deploy] server``)."""
        ref = self.resolve_model(model)
        return servers.venv_ready(self._server(server), self._runtime(ref), ref.framework_version)

    def _server(self, name: str | None) -> servers.ModelServer:
        return servers.get(name or self.project.config.deploy.server)

    def server_for(self, model: str | ModelRef, name: str | None = None, server: str | None = None) -> str:
        """The server a deploy of ``model`` as ``name`` uses: ``server``; else the one the live
        deployment runs (a new version keeps it, as it keeps the replica count); else ``[deploy] server``."""
        if server:
            return self._server(server).name
        name = name or default_name(self.resolve_model(model).name)
        return self._server(self.records.live_server(name)).name

    def prepare_server(self, model: str | ModelRef, *, progress: Progress | None = None,
                       server: str | None = None) -> Path:
        """Build (first use, about a minute) or find the local model server for this version.

        ``progress(done, total)`` counts the packages pip installs. :meth:`deploy` does this itself;
        callers that want to show the build separately (the CLI's progress bar) call it first.
        """
        ref = self.resolve_model(model)
        return servers.ensure_venv(self._server(server), self._runtime(ref), ref.framework_version, progress)

    @staticmethod
    def _runtime(ref: ModelRef) -> serving.Runtime:
        return serving.runtime_for(ref.framework or serving.guess_framework(ref.filename))

    def _fetch(self, model: ModelRef) -> Callable[[Path], None]:
        return fetcher(self.versions, self.project.root, model)

    # -- operations ----------------------------------------------------------------------------
    def check_request(self, *, name: str | None = None, target: str | None = None,
                      replicas: int | None = None, gpus: int = 0, timeout: float = 180.0,
                      expose: str | None = None, log_predictions: float = 1.0) -> str:
        """Refuse bad options before anything is resolved, built or started; returns the target."""
        target = target or self.project.config.deploy.target or "local"
        check_options(target, replicas=replicas, gpus=gpus, timeout=timeout, expose=expose,
                      log_predictions=log_predictions, name=name)
        return target

    @staticmethod
    def check_autoscale(target: str, min_replicas: int, max_replicas: int, target_cpu: int) -> None:
        """Refuse bad --min/--max-replicas/--target-cpu in one line, before anything is resolved."""
        scaling.check_autoscale(min_replicas, max_replicas, target_cpu)
        if max_replicas and target == "local":
            raise UsageError("autoscaling (--min/--max-replicas) applies to cluster targets",
                             "give a local deployment a count with --replicas, or 'workbench scale'")

    def deploy(
        self,
        model: str | ModelRef,
        *,
        name: str | None = None,
        target: str | None = None,
        namespace: str | None = None,
        replicas: int | None = None,
        cpu: str | None = None,
        memory: str | None = None,
        gpus: int = 0,
        timeout: float = 180.0,
        progress: Progress | None = None,
        expose: str | None = None,
        port: int = 0,
        min_replicas: int = 0,
        max_replicas: int = 0,
        target_cpu: int = 0,
        log_predictions: float = 1.0,
        image: str = "",
        image_frameworks: list[str] | None = None,
        server: str | None = None,
    ) -> DeploymentInfo:
        """Serve a model version; a name that is already deployed gets a rolling update to it.

        ``server``: the model server behind the V2 protocol, ``mlserver`` or ``kserve``
        (:mod:`workbench.deploy.servers`); None: ``[deploy] server``.

        ``image``/``image_frameworks`` (cluster targets): the serving image and what it holds
        (:meth:`build_image`'s answer), else ``[deploy] image`` and ``image_frameworks``.

        ``log_predictions``: the share of requests recorded with their inputs and answers
        (``workbench predictions``); 0 turns capture off.

        ``min_replicas``/``max_replicas``/``target_cpu`` (cluster targets): a HorizontalPodAutoscaler
        instead of a fixed count (:mod:`workbench.deploy.scaling`).
        ``port`` (local target): the front door's port, kept across deploys and rollbacks; 0 keeps
        the current one (a first deploy picks a free one).

        ``replicas`` None keeps a live deployment's current count (a new version does not drop 3
        replicas to 1), else 1. ``expose`` (cluster targets): "route", "ingress" or "none"; None
        keeps what the deployment's latest revision recorded, else the target's default (Route on
        OpenShift, else Ingress)."""
        target = self.check_request(name=name, target=target, replicas=replicas, gpus=gpus,
                                    timeout=timeout, expose=expose, log_predictions=log_predictions)
        self.check_autoscale(target, min_replicas, max_replicas, target_cpu)
        self._server(server)  # a bad name is refused before anything is resolved
        ref = self.resolve_model(model)
        name = check_name(name) if name else check_name(default_name(ref.name))
        impl = servers.get(self.server_for(ref, name, server))
        if replicas is None:
            current = self.records.find(name)
            live = current is not None and current["state"] != "undeployed"
            replicas = int(current["replicas"]) if live and current is not None else 1
        if expose is None and target != "local":
            row = self.records.find(name)
            if row is not None and row["target"] == target:
                try:
                    expose = self.records.spec_of(name, int(row["revision"])).expose
                except WorkbenchError:
                    expose = None  # no readable revision: the target's default
        runtime, config = self._runtime(ref), self.project.config.deploy
        impl.check(runtime)
        spec = DeploySpec(
            name=name,
            target=target,
            model=ref,
            replicas=replicas,
            namespace=namespace or config.namespace,
            cpu=cpu,
            memory=memory,
            gpus=gpus,
            image=image or config.image,
            image_frameworks=(image_frameworks or []) if image else config.image_frameworks,
            expose=expose or "",
            port=check_port(port, target),
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            target_cpu=target_cpu,
            log_predictions=log_predictions,
            server=impl.name,
            signature=self.signature_of(ref.name, ref.version) if self.signature_of else None,
        )
        return self._apply(spec, "deploy", runtime, timeout, progress)

    def _apply(
        self,
        spec: DeploySpec,
        action: str,
        runtime: serving.Runtime,
        timeout: float,
        progress: Progress | None,
    ) -> DeploymentInfo:
        row = self.records.find(spec.name)
        if row is not None and row["state"] != "undeployed" and row["target"] != spec.target:
            raise UsageError(
                f"'{spec.name}' is deployed on {row['target']}, not {spec.target}",
                "undeploy it first or pick another --name",
            )
        revision = self.records.next_revision(spec.name)
        if spec.target == "local":
            self.local_rollouts.apply(spec, revision, action, runtime, timeout, progress, row,
                                      self._fetch(spec.model))
            return self.get(spec.name)
        from workbench.deploy.cluster import ClusterTarget

        config = self.project.config.deploy
        images.check_spec(spec, runtime.framework_package)  # before any rollout
        cluster = ClusterTarget.connect(spec.target)
        delivery, credentials = fetching.from_remote(self.remote, spec.model.filename,
                                                     self._fetch(spec.model), config.remote_endpoint,
                                                     config.fetch_secret)
        objects = cluster.render(spec, revision, delivery, storage_class=config.storage_class,
                                 storage_access=config.storage_access)
        cluster.validate(objects)
        self.records.record(spec, revision, action, objects)
        try:
            status, endpoint = cluster.apply(
                spec, revision, objects, self._fetch(spec.model), timeout, progress, credentials
            )
        except BaseException as exc:
            message = failure_words(exc)
            self.records.finish(spec.name, revision, state="failed", message=message, result="failed")
            raise
        ok = status.state == "complete"
        self.records.finish(
            spec.name,
            revision,
            state="available" if ok else "failed",
            message=status.message,
            result="available" if ok else "failed",
            endpoint=endpoint,
            runtime={"namespace": cluster.namespace, "reasons": status.reasons},
        )
        if not ok:
            why = "; ".join(status.reasons) or status.message
            raise DeployError(
                f"'{spec.name}' revision {revision} did not become ready: {why}",
                f"'workbench rollback {spec.name}' returns to the previous revision; "
                f"'workbench undeploy {spec.name}' removes it",
            )
        return self.get(spec.name)

    def build_image(self, model: str | ModelRef, registry: str = "", *, base: str = "",
                    progress: Progress | None = None) -> tuple[str, list[str]]:
        """A serving image with the model's framework version, pushed to ``registry`` if given (see
        :mod:`workbench.deploy.imagebuild`): its tag and what it holds, for :meth:`deploy`."""
        ref = self.resolve_model(model)
        if not ref.framework_version:
            raise DeployError(f"{ref.name}:{ref.version} records no framework version", "set [deploy] image")
        return imagebuild.build_and_push(self.prepare_server(ref, progress=progress), self._runtime(ref),
                                         ref.framework_version, registry, base)

    def scale(self, name: str, replicas: int, *, timeout: float = 180.0) -> DeploymentInfo:
        """Change the number of replicas (recorded as a ``scale`` revision)."""
        if replicas < 0:
            raise UsageError(f"replicas cannot be negative, got {replicas}", "give 0 or more")
        row = self.records.row(name)
        spec = self.records.spec_of(name, int(row["revision"]))
        spec.replicas = replicas
        spec.min_replicas = spec.max_replicas = spec.target_cpu = 0  # a manual count ends autoscaling
        cluster = None
        if row["target"] != "local":
            from workbench.deploy.cluster import ClusterTarget

            cluster = ClusterTarget.connect(row["target"], spec.namespace)
            if replicas > 1:
                cluster.check_scale(name, replicas)  # refused before a revision is recorded
        revision = self.records.next_revision(name)
        self.records.record(spec, revision, "scale", [])
        self.records.finish(
            name, revision, state="progressing", message="", result="pending", replicas=replicas
        )
        if row["target"] == "local":
            runtime = json.loads(row["runtime"])
            try:
                kept = self.local.scale(
                    name=name,
                    replicas=replicas_of(row),
                    want=replicas,
                    venv=Path(runtime["venv"]),
                    labels=labels_of(spec, revision),
                    timeout=timeout,
                    framework=spec.model.framework,
                    framework_version=spec.model.framework_version,
                )
            except DeployError as exc:
                self.records.finish(name, revision, state="degraded", message=exc.one_line(), result="failed")
                raise
            runtime["replicas"] = [r.to_json() for r in kept]
            door = dict(runtime.get("frontdoor") or {})
            port = int(door.get("port", 0)) or local.free_port()
            runtime["frontdoor"] = {**door, "port": port}
            self.records.finish(
                name,
                revision,
                state="available",
                message="",
                result="available",
                runtime=runtime,
                endpoint=door_url(port),
            )
            runtime["frontdoor"] = self.local_rollouts.open_door(name, door, port)
            self.records.set_runtime(name, runtime)
        elif cluster is not None:
            status = cluster.scale(name, replicas, timeout)
            ok = status.state == "complete"
            self.records.finish(
                name,
                revision,
                state="available" if ok else "progressing",
                message=status.message,
                result="available" if ok else "pending",
            )
        # Keep the deployment pointing at the model revision it serves, not at the scale entry.
        self.records.set_revision(name, int(row["revision"]))
        return self.get(name)

    def rollback(
        self, name: str, to: int | None = None, *, timeout: float = 180.0, progress: Progress | None = None
    ) -> DeploymentInfo:
        """Re-apply an earlier revision's recorded spec (default: the last one serving another model)."""
        row = self.records.row(name)
        current = self.records.spec_of(name, int(row["revision"]))
        if to is None:
            to = self.records.previous_revision(name, current)
        spec = self.records.spec_of(name, to)
        spec.replicas = int(row["replicas"])
        runtime = self._runtime(spec.model)
        return self._apply(spec, "rollback", runtime, timeout, progress)

    def undeploy(self, name: str) -> DeploymentInfo:
        """Stop every replica (or delete the cluster objects); the history stays. Returns the
        deployment as it now stands (state ``undeployed``)."""
        row = self.records.row(name)
        if row["target"] == "local":
            door = json.loads(row["runtime"] or "{}").get("frontdoor") or {}
            frontdoor.stop(int(door.get("pid", 0)))  # first, so that no replica is restarted
            self.local.remove(replicas_of(row))
        else:
            from workbench.deploy.cluster import ClusterTarget

            spec = self.records.spec_of(name, int(row["revision"]))
            ClusterTarget.connect(row["target"], spec.namespace).remove(name)
        revision = self.records.next_revision(name)
        spec = self.records.spec_of(name, int(row["revision"]))
        spec.replicas = 0
        self.records.record(spec, revision, "undeploy", [])
        self.records.finish(
            name,
            revision,
            state="undeployed",
            message="",
            result="removed",
            runtime={"mode": "", "replicas": []},
            endpoint="",
        )
        self._sampler.forget(name)
        return self._info(self.records.find(name))

    # -- observing -----------------------------------------------------------------------------
    def list(self, *, include_undeployed: bool = False) -> Infos:
        """Every deployment with replicas desired and ready (checked live), state, endpoint, age."""
        rows = self.records.rows()
        return [self._info(r) for r in rows if include_undeployed or r["state"] != "undeployed"]

    def get(self, name: str) -> DeploymentInfo:
        self.records.row(name)
        return self._info(self.records.find(name))

    def _info(self, row: Any) -> DeploymentInfo:
        endpoints: list[str] = []
        ready = 0
        state = str(row["state"])
        message = str(row["message"])
        if row["target"] == "local" and state != "undeployed":
            replicas = [r for r in replicas_of(row) if local.alive(r)]  # a dead replica's URL is not shown
            endpoints = [r.url for r in replicas]
            ready = sum(1 for r in replicas if local.is_ready(row["name"], r))
            if state in ("available", "degraded") and ready < int(row["replicas"]):
                state, message = "degraded", message or f"{ready} of {row['replicas']} replicas ready"
        elif state == "available":
            ready = int(row["replicas"])
        return DeploymentInfo(
            name=row["name"],
            target=row["target"],
            namespace=row["namespace"],
            model=row["model"],
            version=row["version"],
            run_id=row["run_id"],
            artifact_hash=row["artifact_hash"],
            framework=row["framework"],
            replicas=int(row["replicas"]),
            ready=ready,
            revision=int(row["revision"]),
            state=state,
            message=message,
            endpoint=live_endpoint(row, endpoints, LocalDeployments.door(row)),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            endpoints=endpoints,
            server=self.records.live_server(row["name"]) or "",
        )

    def history(self, name: str) -> Revisions:
        """Every revision of a deployment, oldest first (deploy, scale, rollback, undeploy)."""
        return self.records.revisions(name)

    def _base_urls(self, name: str) -> Urls:
        """A local deployment's live replicas: ``(url, metrics_url)`` each."""
        return [(r.url, r.metrics_url) for r in replicas_of(self.records.row(name)) if local.alive(r)]

    def _cluster(self, row: dict[str, Any]) -> Any:
        from workbench.deploy.cluster import ClusterTarget

        spec = self.records.spec_of(row["name"], int(row["revision"]))
        return ClusterTarget.connect(row["target"], spec.namespace)

    def predict(self, name: str, payload: dict[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
        """Send one V2 inference request and return the answer.

        Locally: round-robin over the ready replicas. On a cluster: through the API server's service
        proxy with the user's credentials (the Service balances over the pods).
        """
        if "inputs" not in payload:
            raise UsageError(
                "the request has no 'inputs'",
                'V2 format: {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [...]}]}',
            )
        row = self.records.row(name)
        if row["target"] != "local":
            answer: dict[str, Any] = self._cluster(row).infer(name, payload)
            return answer
        door = LocalDeployments.door(row)
        urls = [door] if door else [u for u, _ in self._base_urls(name)]
        if not urls:
            raise DeployError(f"'{name}' has no running replica", f"'workbench scale {name} 1' starts one")
        cycle = self._round_robin.get(name)
        if cycle is None or name not in self._round_robin:
            cycle = self._round_robin[name] = itertools.cycle(urls)
        url = next(cycle)
        if url not in urls:
            cycle = self._round_robin[name] = itertools.cycle(urls)
            url = next(cycle)
        return infer(url, name, payload, timeout)

    def metrics(self, name: str) -> MetricsSnapshot:
        """Request rate, error rate and latency scraped from every replica's Prometheus endpoint
        (on a cluster: every ready pod's, through the API server's pod proxy)."""
        row = self.records.row(name)
        if row["target"] != "local":
            return self._sampler.sample_texts(name, self._cluster(row).metrics_texts(name))
        return self._sampler.sample(name, [m for _, m in self._base_urls(name)])
