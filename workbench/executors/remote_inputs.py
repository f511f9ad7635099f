"""Container jobs that read their inputs from the project's default remote and push their outputs back.

When the project has a default remote (and ``[executor] remote_inputs`` is not false, nor
``workbench run --no-remote-inputs`` given), the Docker and Kubernetes executors do not stage the
input snapshot through the Workbench host. :func:`plan_for` pushes the snapshot's objects to the
remote and returns a :class:`RemotePlan`; the job then runs :mod:`workbench.remote.jobfetch` in its
own image (an init step in the container, an init container on Kubernetes), which fetches and
verifies the snapshot, runs the command and pushes what it wrote. After the job, the executor's
``output_folder`` gets the outputs from the remote (:meth:`RemotePlan.outputs`).

The job needs, beside the workbench package (already mounted or staged), the compiled modules that
read the cache format and talk S3: blake3, zstandard, pyfastcdc and obstore (with typing_extensions).
They are the host's own, mounted read-only at :data:`DEPS_DIR`, so the image's Python must be the
host's version (3.11 for both here); they are put on the path of the jobfetch process only, never of
the command. Credentials are passed as environment variables from the host's standard AWS sources at
launch; they are not part of the plan, the run record, the image or any file.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from workbench.errors import ExecutorError, WorkbenchError
from workbench.executors.base import JobExit, JobOutputs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from workbench.executors.base import Channel, Job, LaunchSpec
    from workbench.versioning.versioned import JobTarget, VersionedProject

DEPS_DIR = "/opt/workbench/deps"
REMOTE_DIR = "/workbench/remote"
"""Where a ``file://`` remote's folder is mounted in a Docker job."""
DEPS = ("blake3", "zstandard", "pyfastcdc", "obstore", "typing_extensions")
PLAN_FILE = "remote.json"
REASON_FILE = "jobfetch-reason"
ENTRY = ["python3", "-S", "-m", "workbench.remote.jobfetch"]


@dataclass
class RemotePlan:
    """What a job needs to fetch its inputs and push its outputs (no credentials)."""

    run_id: str
    remote: str
    url: str
    endpoint_url: str
    region: str
    snapshot: str
    root_tree: str
    chunk_threshold: int
    size: int = 0
    """Bytes of the snapshot's files (a cluster volume is sized for it)."""
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    """The AWS variables read at launch: given to the job, never saved with the plan."""

    @property
    def target(self) -> JobTarget:
        from workbench.versioning.versioned import JobTarget

        return JobTarget(self.remote, self.url, self.endpoint_url, self.region)

    def save(self, folder: Path) -> None:
        data = asdict(self)
        data.pop("credentials")
        (folder / PLAN_FILE).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> RemotePlan | None:
        try:
            return cls(**json.loads((folder / PLAN_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def job_plan(self, dest: str, *, url: str | None = None, reason_file: str = "",
                 state_file: str = "", drop_env: list[str] | None = None) -> str:
        """The JSON the job reads from ``WORKBENCH_JOBFETCH_PLAN`` (``drop_env``: variables given to
        jobfetch only, removed from the command's environment)."""
        return json.dumps({"drop_env": drop_env or [],
            "run_id": self.run_id, "url": url or self.url, "endpoint_url": self.endpoint_url,
            "region": self.region, "snapshot": self.snapshot, "root_tree": self.root_tree, "dest": dest,
            "chunk_threshold": self.chunk_threshold, "reason_file": reason_file, "state_file": state_file,
        })

    def credentials_env(self) -> dict[str, str]:
        """AWS variables for the job, read at launch from the host's standard sources (S3 remotes only)."""
        return dict(self.credentials)

    def loopback_endpoint(self) -> bool:
        """The S3 endpoint is on this host's loopback (a container must share the host's network)."""
        endpoint = self.credentials_env().get("AWS_ENDPOINT_URL", "")
        host = urlparse(endpoint).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def outputs(self, ws: VersionedProject, dest: Path) -> list[str] | None:
        """Fetch the files the job pushed into ``dest``; None when it listed none."""
        if ws.job_remote is None:
            raise ExecutorError("the job's outputs are on the remote, and this process has no remotes",
                                "run 'workbench runs' in the project to record them")
        try:
            return ws.job_remote.job_outputs(self.target, self.run_id, dest)
        except WorkbenchError as exc:
            raise ExecutorError(f"the job's outputs could not be fetched from the remote: {exc.one_line()}") \
                from None


def plan_for(ws: VersionedProject, spec: LaunchSpec,
             schemes: tuple[str, ...] = ("s3", "file")) -> RemotePlan | None:
    """Push the input snapshot to the default remote and plan the job's fetch; None when the project
    has no default remote (or one of another scheme than ``schemes``: a cluster cannot read this
    host's folders) or remote inputs are turned off."""
    remote = ws.job_remote
    if remote is None or not getattr(ws.config.executor, "remote_inputs", True) or not spec.input_snapshot:
        return None
    target = remote.default_target(schemes)
    if target is None:
        return None
    try:
        root = remote.push_for_job(target, spec.input_snapshot)
    except WorkbenchError as exc:
        raise ExecutorError(f"cannot send the input snapshot to the remote {target.name}: {exc.one_line()}",
                            "fix the remote, or run with --no-remote-inputs to stage through this host") \
            from None
    size = sum(item[3] for item in ws.versions.reader.items(root))
    return RemotePlan(spec.job_id, target.name, target.url, target.endpoint_url, target.region,
                      spec.input_snapshot, root, ws.config.store.chunk_threshold, size,
                      credentials=remote.job_credentials(target))


def dep_mounts() -> dict[str, str]:
    """Host path -> path in the job of each compiled module jobfetch needs (missing ones skipped)."""
    out: dict[str, str] = {}
    for name in DEPS:
        found = importlib.util.find_spec(name)
        if found is None or not found.origin:
            continue
        origin = Path(found.origin)
        source = origin.parent if found.submodule_search_locations else origin
        out[str(source)] = f"{DEPS_DIR}/{source.name}"
    return out


def adjust_docker(plan: RemotePlan, kwargs: dict[str, Any], workspace: str, run_dir: str) -> None:
    """Turn a Docker executor's container arguments into a remote-inputs job: jobfetch wraps the
    command, the plan, the AWS variables and the deps go in; a ``file://`` remote's folder is mounted;
    a loopback S3 endpoint makes the container share the host's network (it could not reach it else)."""
    url = plan.url
    volumes: dict[str, dict[str, str]] = kwargs["volumes"]
    if url.startswith("file://"):
        volumes[url[len("file://"):]] = {"bind": REMOTE_DIR, "mode": "rw"}
        url = "file://" + REMOTE_DIR
    for host, inside in dep_mounts().items():
        volumes[host] = {"bind": inside, "mode": "ro"}
    env: dict[str, str] = kwargs["environment"]
    credentials = plan.credentials_env()
    env.update(credentials)
    env["WORKBENCH_JOBFETCH_PLAN"] = plan.job_plan(workspace, url=url, reason_file=f"{run_dir}/{REASON_FILE}",
                                                   drop_env=sorted(credentials))
    env["WORKBENCH_JOBFETCH_DEPS"] = DEPS_DIR
    kwargs["command"] = [*ENTRY, "run", "--", *kwargs["command"]]
    if plan.url.startswith("s3://") and plan.loopback_endpoint():
        kwargs["network_mode"] = "host"


class RemoteInputsJob:
    """A job whose failure to fetch or push is told in the one line jobfetch left (a file of the run's
    folder, or ``reason()``: the pod's termination message), not as an exit code."""

    def __init__(self, job: Job, plan: RemotePlan, run_dir: Path | None = None,
                 reason: Callable[[], str] | None = None) -> None:
        self.job, self.plan, self._reason = job, plan, reason
        self.reason_file = run_dir / REASON_FILE if run_dir is not None else None

    def __getattr__(self, name: str) -> Any:  # namespace, cancelled ... of the wrapped job
        return getattr(self.job, name)

    def lines(self) -> Iterator[tuple[Channel, bytes]]:
        yield from self.job.lines()

    def wait(self) -> JobExit:
        exit_ = self.job.wait()
        if exit_.status == "failed":
            try:
                if self.reason_file is not None:
                    text = self.reason_file.read_text(encoding="utf-8").strip().splitlines()
                else:
                    text = (self._reason() if self._reason else "").strip().splitlines()
            except (OSError, WorkbenchError):
                text = []
            if text and text[0].startswith(("cannot fetch the input", "cannot push the job")):
                return JobExit(exit_.exit_code, "failed", text[0])
        return exit_

    def cancel(self) -> None:
        self.job.cancel()

    def describe(self) -> dict[str, str]:
        return {**self.job.describe(), "inputs_from": f"remote {self.plan.remote} ({self.plan.url})"}


def remote_outputs(ws: VersionedProject, base: Path, work: Path) -> JobOutputs | None:
    """A remote-inputs job's outputs, fetched from the remote into ``base/remote-out``; None when the
    job in ``base`` did not read from a remote (the caller falls back to its own folder)."""
    import shutil

    plan = RemotePlan.load(base)
    if plan is None:
        return None
    folder = base / "remote-out"
    shutil.rmtree(folder, ignore_errors=True)
    paths = plan.outputs(ws, folder)

    def discard() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        (base / PLAN_FILE).unlink(missing_ok=True)

    folder.mkdir(parents=True, exist_ok=True)
    return JobOutputs(folder, paths or [], discard)


# -- Kubernetes ----------------------------------------------------------------------------------
K8S_STATE = "/workbench/jobfetch"
"""An emptyDir shared by the init container and the command's: the manifest of what was fetched."""


def k8s_deps() -> dict[str, str]:
    """Host path -> path below the staged ``lib/`` of each module jobfetch needs (staged with the package)."""
    return {host: f"deps/{Path(inside).name}" for host, inside in dep_mounts().items()}


def adjust_k8s_job(plan: RemotePlan, body: dict[str, Any], workspace: str, lib: str, secret: str) -> None:
    """Give a cluster Job an init container that fetches the inputs with jobfetch (in the job's own
    image, the same restricted security), and make its command push the outputs afterwards. The
    credentials come from the Secret ``secret`` (see ``k8s_manifests.credentials_secret``), never as
    values in the Job's spec."""
    pod = body["spec"]["template"]["spec"]
    main = pod["containers"][0]
    credentials = plan.credentials_env()
    env = {e["name"]: e["value"] for e in main["env"] if e["name"] not in credentials}
    env["WORKBENCH_JOBFETCH_PLAN"] = plan.job_plan(workspace, state_file=f"{K8S_STATE}/fetched.json",
                                                   drop_env=sorted(credentials))
    env["WORKBENCH_JOBFETCH_DEPS"] = f"{lib}/deps"
    main["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())] + [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k}}} for k in sorted(credentials)]
    main["volumeMounts"] = [*main["volumeMounts"], {"name": "jobfetch", "mountPath": K8S_STATE}]
    main["command"] = [*ENTRY, "run", "--no-fetch", "--", *main["command"]]
    init: dict[str, Any] = {
        "name": "fetch-inputs", "image": main["image"], "command": [*ENTRY, "fetch"], "workingDir": workspace,
        "env": main["env"], "securityContext": main["securityContext"], "volumeMounts": main["volumeMounts"],
    }
    limits = {k: v for k, v in (main.get("resources") or {}).get("limits", {}).items() if "gpu" not in k}
    if limits:
        init["resources"] = {"limits": limits, "requests": dict(limits)}
    pod["initContainers"] = [init]
    pod["volumes"] = [*pod["volumes"], {"name": "jobfetch", "emptyDir": {}}]


def termination_message(pod: dict[str, Any] | None) -> str:
    """The message a failed jobfetch left in its container's termination log (init container first)."""
    status = (pod or {}).get("status") or {}
    for entry in (*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])):
        message = str(((entry.get("state") or {}).get("terminated") or {}).get("message") or "").strip()
        if message:
            return message
    return ""
