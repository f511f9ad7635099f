"""The local target's rollouts against the deployment records, and its front door.

:class:`LocalDeployments` starts a revision's replicas, points the record and the front door
(:mod:`workbench.deploy.frontdoor`) at them once they are ready, and only then stops the old ones; it
keeps the front door's port across deploys, scales and rollbacks. The helpers say what a listing
shows (the front door while it runs) and how a server's error reads (one line, the model's words).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.deploy import frontdoor, local, manifests, servers, serving
from workbench.deploy.history import DeploymentHistory
from workbench.deploy.types import DeploySpec, ModelRef
from workbench.errors import DeployError, UsageError, WorkbenchError

Progress = Callable[[int, int], None]


class LocalDeployments:
    """The local target's side of :class:`workbench.deploy.service.DeployService`."""

    def __init__(self, records: DeploymentHistory, target: local.LocalTarget, state_root: Path,
                 db_path: Path) -> None:
        self.records, self.target, self.state_root, self.db_path = records, target, state_root, db_path

    def apply(
        self,
        spec: DeploySpec,
        revision: int,
        action: str,
        runtime: serving.Runtime,
        timeout: float,
        progress: Progress | None,
        row: Any,
        fetch: Callable[[Path], None],
    ) -> None:
        server = servers.get(spec.server)
        venv = servers.ensure_venv(server, runtime, spec.model.framework_version, progress)
        live = row is not None and row["state"] != "undeployed"
        old = replicas_of(row) if live else []
        door = dict(json.loads(row["runtime"] or "{}").get("frontdoor") or {}) if live else {}
        port = spec.port or int(door.get("port", 0)) or local.free_port()
        labels = labels_of(spec, revision)
        self.records.record(spec, revision, action, [])

        def switch(mode: str, started: list[local.Replica]) -> None:
            """New replicas ready: record them, point the front door at them (old ones still up)."""
            runtime_json: dict[str, Any] = {
                "mode": mode, "venv": str(venv), "labels": labels,
                "spool_dir": str(self.target.spool_dir(spec.name) or ""),
                "replicas": [r.to_json() for r in started], "frontdoor": {**door, "port": port},
            }
            self.records.finish(spec.name, revision, state="available", message="", result="available",
                                runtime=runtime_json, endpoint=door_url(port))
            runtime_json["frontdoor"] = self.open_door(spec.name, door, port)
            self.records.set_runtime(spec.name, runtime_json)

        try:
            folder = self.target.prepare_folder(
                spec.name, revision, spec.model.version, spec.model.filename, runtime, fetch,
                log_rate=spec.log_predictions, model=spec.model.name, signature=spec.signature,
                server=server,
            )
            self.target.roll_out(
                name=spec.name,
                revision=revision,
                replicas=spec.replicas,
                folder=folder,
                venv=venv,
                old=old,
                labels=labels,
                timeout=timeout,
                framework=spec.model.framework,
                framework_version=spec.model.framework_version,
                switch=switch,
                server=server.name,
            )
        except BaseException as exc:
            message = failure_words(exc)
            if old:  # the previous revision keeps serving: say so and point the row back at it
                self.records.restore_row(spec.name, row, f"revision {revision} failed: {message}")
                self.records.finish_revision(spec.name, revision, "failed", message)
            else:
                self.records.finish(
                    spec.name,
                    revision,
                    state="failed",
                    message=message,
                    result="failed",
                    runtime={"mode": "", "replicas": []},
                )
            raise

    def open_door(self, name: str, door: dict[str, Any], port: int) -> dict[str, Any]:
        """The deployment's front door on ``port``, told to re-read the replicas (started if needed)."""
        pid = int(door.get("pid", 0))
        if pid and frontdoor.running(pid) and int(door.get("port", 0)) == port and frontdoor.reload(port):
            return {"port": port, "pid": pid}
        frontdoor.stop(pid)
        log = self.state_root / name / "logs" / "frontdoor.log"
        return {"port": port, "pid": frontdoor.start(self.db_path, name, port, log)}


    @staticmethod
    def door(row: Any) -> str:
        """The local deployment's front door URL while its process runs, else ""."""
        if row["target"] != "local" or row["state"] == "undeployed":
            return ""
        door = json.loads(row["runtime"] or "{}").get("frontdoor") or {}
        pid = int(door.get("pid", 0))
        return door_url(int(door["port"])) if pid and frontdoor.running(pid) else ""



def fetcher(versions: Any, root: Path, model: ModelRef) -> Callable[[Path], None]:
    """``fetch(dest)``: the model version's file, from the blob cache (else its path in the project)."""
    def fetch(dest: Path) -> None:
        try:
            versions.export_object(model.hash, dest)
            return
        except (ImportError, AttributeError):
            pass
        source = Path(model.path)
        source = source if source.is_absolute() else root / source
        if not source.is_file():
            raise DeployError(
                f"the file of {model.name}:{model.version} is not in the cache", "run 'workbench fsck'"
            ) from None
        shutil.copyfile(source, dest)

    return fetch


def replicas_of(row: Any) -> list[local.Replica]:
    data = json.loads(row["runtime"] or "{}")
    return [local.Replica.from_json(r) for r in data.get("replicas", [])]


def labels_of(spec: DeploySpec, revision: int) -> dict[str, str]:
    """Docker labels of a local replica: the deployment, and what it serves as on a cluster object."""
    return {"workbench.dev/deployment": spec.name, **manifests.object_annotations(spec, revision)}


def failure_words(exc: BaseException) -> str:
    """What a failed revision records as its message."""
    return exc.one_line() if isinstance(exc, WorkbenchError) else str(exc) or type(exc).__name__


def live_endpoint(row: Any, live: list[str], door: str) -> str:
    """A local deployment's front door while it runs and a replica is behind it (else a live
    replica's own URL, or nothing); a cluster's endpoint as recorded."""
    if row["target"] != "local":
        return str(row["endpoint"])
    if door and live:
        return door
    return live[0] if live else ""


def door_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def check_port(port: int, target: str) -> int:
    """``--port``: a free TCP port on this machine, for the local target only."""
    if not port:
        return 0
    if target != "local":
        raise UsageError("--port applies to the local target",
                         "a cluster deployment is reached through its Service")
    if not 1024 <= port <= 65535:
        raise UsageError(f"--port must be between 1024 and 65535, got {port}", "give an unprivileged port")
    return port


def infer(url: str, name: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    """POST a V2 ``infer`` request to ``url``; a refusal or an unreachable server is one line."""
    try:
        status, body = local.http_json(f"{url}/v2/models/{name}/infer", payload, timeout=timeout)
    except OSError as exc:
        raise DeployError(f"cannot reach '{name}' at {url}: {exc}", "see 'workbench deployments'") from None
    if status != 200:
        detail = body.get("error", body) if isinstance(body, dict) else body
        raise DeployError(f"'{name}' answered {status}: {server_error_line(detail)}",
                          "check the request's shape and datatype")
    if not isinstance(body, dict):
        raise DeployError(f"'{name}' answered something that is not JSON")
    return body


def server_error_line(detail: object, limit: int = 300) -> str:
    """A model server's error body as one line holding the model's own message.

    MLServer answers a failing ``predict`` with the whole traceback in one string (about 5 KB): the
    line that matters is the last ``SomeError: message`` line, which is what the user is shown.
    """
    text = detail if isinstance(detail, str) else json.dumps(detail)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "(no message)"
    pick = lines[-1]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if ":" in ln and head.replace(".", "").isidentifier() and head.split(".")[-1][:1].isupper():
            pick = ln
            break
    return pick if len(pick) <= limit else pick[: limit - 3] + "..."
