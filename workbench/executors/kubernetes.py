"""The Kubernetes executor: run a command as a ``batch/v1`` Job and bring everything back.

Launch, in order, each step undone if a later one fails (nothing is left half-created):

1. :meth:`KubernetesExecutor.check` loads the kubeconfig (or in-cluster config), asks the API
   server whether we may do each thing a run needs (SelfSubjectAccessReview: the missing permission
   is named), and when GPUs are asked for, whether any node offers ``nvidia.com/gpu``;
2. the input snapshot is checked out locally and streamed as a tar, through ``pods/exec`` of a
   short-lived helper pod, into the run's PersistentVolumeClaim (with the workbench package, so the
   tracking API works in the pod);
3. the Job is created (see :mod:`workbench.executors.k8s_manifests` for the restricted pod spec).

The Job is followed by :class:`~workbench.executors.k8s_job.KubernetesJob` (its log with resume;
lines carrying the side channel's marker are side-channel lines). Afterwards a helper pod streams
back the files the job created or changed (newer than the staging marker) into a local folder of
the job, which :meth:`KubernetesExecutor.output_folder` hands to the caller (which decides what to
bring back), and the volume is deleted. Cancel
deletes the Job with ``propagationPolicy=Foreground`` (its pods go first), the helper pods and the
volume.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ExecutorError
from workbench.executors import k8s_manifests as manifests
from workbench.executors import records, remote_inputs
from workbench.executors.base import JobExit, JobOutputs, LaunchSpec
from workbench.executors.k8s_client import KubeApi, KubeApiError, KubeTarget, explain, load
from workbench.executors.k8s_job import KubernetesJob, api_paths
from workbench.executors.k8s_status import pod_problem
from workbench.executors.resources import check_resources, gpu_count
from workbench.executors.staging import (
    Checkout,
    Manifest,
    checkout_snapshot,
    copy_all_back,
    run_folder,
    walk_files,
)

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

STAGE_SCRIPT = (
    "set -e; mkdir -p /stage/workspace /stage/lib /stage/run; "
    "tar -xf - -C /stage --no-same-owner; "
    "chmod -R g+rwX /stage/workspace /stage/run 2>/dev/null || true; "
    "touch /stage/run/staged"
)
COLLECT_SCRIPT = (
    "set -e; cd /stage/workspace; "
    "find . -type f -newer /stage/run/staged -print0 | tar -cf - --null -T -"
)


class _StdinWriter:
    """A write-only file object that sends what tarfile writes to an exec's stdin."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        for start in range(0, len(view), 1 << 20):
            self.ws.write_stdin(bytes(view[start:start + (1 << 20)]))
        return len(data)


class KubernetesExecutor:
    """Runs a :class:`LaunchSpec` as a Job on the cluster of the current kubeconfig context."""

    name = "kubernetes"
    workspace = manifests.WORKSPACE

    def __init__(self, ws: VersionedProject, *, checkout: Checkout | None = None, poll: float = 1.0,
                 pending_timeout: float = 300.0, ready_timeout: float = 300.0) -> None:
        self.ws = ws
        self._checkout = checkout or (lambda snapshot, dest: checkout_snapshot(ws, snapshot, dest))
        self.poll = poll
        self.pending_timeout = pending_timeout
        self.ready_timeout = ready_timeout
        self._api: KubeApi | None = None
        self._jobs: dict[str, KubernetesJob] = {}

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            client, target = load()
            self._api = KubeApi(client, target)
        return self._api

    @property
    def target(self) -> KubeTarget:
        return self.api.target

    def namespace_for(self, spec: LaunchSpec) -> str:
        return spec.namespace or self.ws.config.executor.namespace or self.target.namespace

    def image_for(self, spec: LaunchSpec) -> str:
        image = spec.image or self.ws.config.executor.image
        if not image:
            raise ExecutorError("no image for the kubernetes executor",
                                "pass --image IMAGE or set image under [executor] in .workbench/config.toml")
        return image

    # -- checks before anything is created -----------------------------------------------------
    def check(self, spec: LaunchSpec) -> None:
        self.image_for(spec)
        gpus = check_resources(spec.gpus, spec.cpu, spec.memory)
        if gpus is None:
            raise ExecutorError("--gpus all has no meaning on a cluster",
                                "ask for a number of GPUs, e.g. --gpus 1")
        namespace = self.namespace_for(spec)
        for verb, resource, group, sub in manifests.REQUIRED_PERMISSIONS:
            review = manifests.access_review(namespace, verb, resource, group, sub)
            try:
                answer = self.api.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
            except KubeApiError as exc:
                if exc.status in (0, 401):
                    raise explain(exc, "checking permissions", self.target) from None
                break  # the review API itself is not open to us: find out by doing
            status = answer.get("status") or {}
            if status.get("allowed") is False:
                what = f"{resource}/{sub}" if sub else resource
                what = f"{what}.{group}" if group else what
                raise ExecutorError(
                    f"permission denied: missing permission to {verb} {what} in namespace {namespace}",
                    "ask a cluster admin for a Role granting it, or use another --namespace",
                )
        if gpus:
            self._check_gpu_nodes(gpus)

    def _check_gpu_nodes(self, gpus: int) -> None:
        from workbench.host.gpus import cluster_gpu_capacity

        try:
            nodes = self.api.get("/api/v1/nodes").get("items") or []
        except KubeApiError as exc:
            if exc.status in (0, 401):
                raise explain(exc, "listing nodes", self.target) from None
            return  # nodes are not visible to us: the scheduler will say
        capacity = cluster_gpu_capacity(nodes, [])
        best = max((n.allocatable for n in capacity), default=0)
        if best == 0:
            raise ExecutorError("no node in the cluster offers nvidia.com/gpu",
                                "run without --gpus, or on a cluster with the NVIDIA GPU operator")
        if best < gpus:
            raise ExecutorError(f"no node has {gpus} GPUs (the largest has {best})",
                                f"ask for at most --gpus {best}")

    # -- launching -----------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> KubernetesJob | remote_inputs.RemoteInputsJob:
        self.check(spec)
        plan = remote_inputs.plan_for(self.ws, spec, schemes=("s3",))  # an init container fetches the inputs
        namespace = self.namespace_for(spec)
        image = self.image_for(spec)
        paths = api_paths(namespace)
        base = run_folder(self.ws, spec.job_id) / "kubernetes"
        work = base / "work"
        if base.exists():
            shutil.rmtree(base)
        work.mkdir(parents=True)
        created: list[str] = []

        def undo() -> None:
            for path in reversed(created):
                self.api.delete_quietly(path, "Background")
            shutil.rmtree(base, ignore_errors=True)

        doing = "preparing the workspace"
        try:
            if plan is None:
                self._checkout(spec.input_snapshot, work)
            else:
                plan.save(base)
            manifest = Manifest.of(work)
            manifest.save(base / "manifest.json")
            size = plan.size if plan else sum(s for s, _ in manifest.files.values())
            doing = "creating the workspace volume"
            claim = manifests.pvc(spec.job_id, namespace, size)
            self.api.create(paths["pvcs"], claim)
            created.append(f"{paths['pvcs']}/{claim['metadata']['name']}")
            doing = "staging the input snapshot"
            self._stage(spec, namespace, image, work, created, deps=plan is not None)
            doing = "creating the Job"
            body = manifests.job(
                spec.job_id, namespace, image, list(spec.command), self._pod_env(spec),
                workdir=spec.workdir, cpu=spec.cpu, memory=spec.memory, gpus=gpu_count(spec.gpus) or 0,
            )
            if plan is not None:
                doing = "creating the Secret with the remote's credentials"
                secret = manifests.credentials_secret(spec.job_id, namespace, plan.credentials_env())
                self.api.create(paths["secrets"], secret)
                created.append(f"{paths['secrets']}/{secret['metadata']['name']}")
                remote_inputs.adjust_k8s_job(plan, body, manifests.WORKSPACE, manifests.LIB,
                                             secret["metadata"]["name"])
                doing = "creating the Job"
            self.api.create(paths["jobs"], body)
            created.append(f"{paths['jobs']}/{body['metadata']['name']}")
        except KubeApiError as exc:
            undo()
            raise explain(exc, doing, self.target) from None
        except BaseException:
            undo()
            raise
        facts = {
            "executor": "kubernetes", "namespace": namespace, "job": body["metadata"]["name"],
            "pvc": claim["metadata"]["name"], "image": image, "context": self.target.context,
            "server": self.target.server, "gpus": str(gpu_count(spec.gpus) or ""),
        }
        records.record_launch(self.ws, spec.job_id, "kubernetes", {
            "namespace": namespace, "job": facts["job"], "pvc": facts["pvc"], "context": self.target.context,
        })

        def on_end(exit_: JobExit) -> None:
            records.mark(self.ws, spec.job_id, "ended", exit_.reason)

        job = KubernetesJob(self.api, namespace, spec.job_id, facts, memory=spec.memory or "",
                            poll=self.poll, pending_timeout=self.pending_timeout, on_end=on_end,
                            cleanup=lambda: self.cleanup(spec.job_id, namespace),
                            marker=spec.side.marker if spec.side else b"")
        self._jobs[spec.job_id] = job
        if plan is None:
            return job
        return remote_inputs.RemoteInputsJob(
            job, plan, reason=lambda: remote_inputs.termination_message(job._pod()))

    def _pod_env(self, spec: LaunchSpec) -> dict[str, str]:
        import workbench

        package_dir = str(Path(workbench.__file__).resolve().parent)
        project = str(spec.project_root.resolve())
        side = spec.side
        env: dict[str, str] = {}
        for key, value in spec.env.items():
            if key in ("HOME", "PYTHONPATH") or (side is not None and key == side.env):
                continue
            env[key] = manifests.WORKSPACE if value == project else value
        python_path = []
        for entry in spec.env.get("PYTHONPATH", "").split(":"):
            if entry.startswith(package_dir):
                python_path.append(manifests.LIB + "/workbench" + entry[len(package_dir):])
        if python_path:
            env["PYTHONPATH"] = ":".join(python_path)
        if side is not None:  # a pod's log is its only channel back
            env[side.env] = side.on_stdout
        env["WORKBENCH_EXECUTOR"] = "kubernetes"
        return env

    # -- helper pods: files in and out ---------------------------------------------------------
    def _helper(self, spec: LaunchSpec, namespace: str, image: str, role: str,
                created: list[str] | None = None) -> str:
        pods = api_paths(namespace)["pods"]
        body = manifests.helper_pod(spec.job_id, namespace, image, role)
        name = str(body["metadata"]["name"])
        self.api.delete_quietly(f"{pods}/{name}", None)
        self.api.create(pods, body)
        if created is not None:
            created.append(f"{pods}/{name}")
        deadline = time.monotonic() + self.ready_timeout
        while True:
            pod = self.api.get(f"{pods}/{name}")
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Running":
                return name
            problem = pod_problem(pod)
            if problem and problem[0] != "unschedulable":
                raise ExecutorError(f"the {role} pod cannot start: {problem[1]}")
            if phase in ("Succeeded", "Failed") or time.monotonic() > deadline:
                words = problem[1] if problem else f"phase {phase or 'Pending'}"
                raise ExecutorError(f"the {role} pod did not start: {words}",
                                    "check the image and the namespace's storage class")
            time.sleep(self.poll)

    def _exec(self, namespace: str, pod: str, script: str, send: Callable[[Any], None] | None,
              sink: Callable[[bytes], object] | None) -> None:
        from kubernetes import client
        from kubernetes.stream import stream

        core = client.CoreV1Api(self.api.client)
        try:
            ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace,
                        command=["sh", "-c", script], stdin=send is not None, stdout=True, stderr=True,
                        tty=False, _preload_content=False, binary=True)
        except Exception as exc:
            raise ExecutorError(f"cannot exec into pod {pod}: {' '.join(str(exc).split())[:200]}",
                                "the staging needs the pods/exec permission") from None
        errors = b""
        try:
            if send is not None:
                send(_StdinWriter(ws))
                if getattr(ws, "subprotocol", "") == "v5.channel.k8s.io":
                    ws.close_channel(0)
            while ws.is_open():
                ws.update(timeout=1)
                if ws.peek_stdout():
                    data = ws.read_stdout()
                    if sink is not None:
                        sink(data)
                if ws.peek_stderr():
                    errors += ws.read_stderr()
            while ws.peek_stdout():
                data = ws.read_stdout()
                if sink is not None:
                    sink(data)
            status_raw = ws.read_channel(3)
        finally:
            ws.close()
        status = _exec_status(status_raw)
        if status is not None:
            tail = " ".join(errors.decode(errors="replace").split())[-200:]
            detail = f"{status}: {tail}" if tail else status
            raise ExecutorError(f"file transfer in pod {pod} failed: {detail}",
                                "the image needs sh, tar and find")

    def _stage(self, spec: LaunchSpec, namespace: str, image: str, work: Path, created: list[str],
               deps: bool = False) -> None:
        import workbench

        package_dir = Path(workbench.__file__).resolve().parent
        pod = self._helper(spec, namespace, image, "stage", created)

        def send(out: Any) -> None:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(work, arcname="workspace")
                tar.add(package_dir, arcname="lib/workbench",
                        filter=lambda info: None if "__pycache__" in info.name else info)
                for host, rel in (remote_inputs.k8s_deps() if deps else {}).items():  # jobfetch's modules
                    tar.add(host, arcname=f"lib/{rel}",
                            filter=lambda info: None if "__pycache__" in info.name else info)

        self._exec(namespace, pod, STAGE_SCRIPT, send, None)
        self.api.delete_quietly(f"{api_paths(namespace)['pods']}/{pod}", None)
        created.remove(f"{api_paths(namespace)['pods']}/{pod}")

    def output_folder(self, spec: LaunchSpec, job: Any) -> JobOutputs | None:
        """Stream back the files the job created or changed into a local folder of the job
        (nothing is copied into the project), and delete the job's volume and helper pods."""
        namespace = getattr(job, "namespace", None) or self.namespace_for(spec)
        base = run_folder(self.ws, spec.job_id) / "kubernetes"
        if getattr(job, "cancelled", False):
            self.cleanup(spec.job_id, namespace)
            shutil.rmtree(base, ignore_errors=True)
            return None
        if (base / remote_inputs.PLAN_FILE).exists():  # the job pushed its outputs to the remote
            try:
                return remote_inputs.remote_outputs(self.ws, base, base / "work")
            finally:
                self.cleanup(spec.job_id, namespace)
        fetched = base / "out"
        shutil.rmtree(fetched, ignore_errors=True)
        fetched.mkdir(parents=True)
        try:
            image = self.image_for(spec)
            pod = self._helper(spec, namespace, image, "collect")
            archive = base / "outputs.tar"
            with archive.open("wb") as out:
                self._exec(namespace, pod, COLLECT_SCRIPT, None, out.write)
            if archive.stat().st_size:
                with tarfile.open(archive) as tar:
                    tar.extractall(fetched, filter="data")
            archive.unlink()
        except KubeApiError as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise explain(exc, "collecting the outputs", self.target) from None
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        finally:
            self.cleanup(spec.job_id, namespace)
        paths = sorted(rel for rel, _ in walk_files(fetched))
        return JobOutputs(fetched, paths, lambda: shutil.rmtree(base, ignore_errors=True))

    def collect_outputs(self, spec: LaunchSpec, job: Any) -> list[str]:
        """Stream back the files the job created or changed and copy them into the project."""
        return copy_all_back(self.output_folder(spec, job), spec.project_root)

    def cleanup(self, job_id: str, namespace: str) -> None:
        """Delete everything the job created on the cluster (quietly; already-gone is fine)."""
        paths = api_paths(namespace)
        for role in ("stage", "collect"):
            self.api.delete_quietly(f"{paths['pods']}/{manifests.dns_name(job_id, '-' + role)}", None)
        self.api.delete_quietly(f"{paths['jobs']}/{manifests.dns_name(job_id)}", "Foreground")
        self.api.delete_quietly(f"{paths['pvcs']}/{manifests.dns_name(job_id, '-ws')}", None)
        self.api.delete_quietly(f"{paths['secrets']}/{manifests.dns_name(job_id, '-creds')}", None)


def _exec_status(raw: Any) -> str | None:
    """None for success, else words, from the exec error channel's Status document."""
    if not raw:
        return None
    try:
        status = json.loads(raw)
    except ValueError:
        return " ".join(str(raw).split())[:200]
    if status.get("status") == "Success":
        return None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return f"exit code {cause.get('message')}"
    return str(status.get("message") or "failed")
