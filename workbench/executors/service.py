"""ExecutorService (``ws.executors``): GPUs here and on the cluster, cluster capabilities, and the
remote jobs (Docker containers, Kubernetes Jobs) whose following process died.

It knows jobs, not runs: :meth:`ExecutorService.orphans` lists the jobs still recorded as running
whose follower is gone, each probed (``running``, ``ended`` with words, or ``unknown`` when the
daemon or cluster cannot be asked now); :meth:`ExecutorService.attach` builds a job again for one
still running, :meth:`ExecutorService.hand_over` records who follows it now, and
:meth:`ExecutorService.release` marks one lost and removes its container / Job / volume. What
becomes of the run behind a job is :mod:`workbench.tracking.reattach`'s business.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ExecutorError
from workbench.executors import records
from workbench.executors.base import JobExit

if TYPE_CHECKING:
    from workbench.executors.base import Executor, Job
    from workbench.executors.cluster import ClusterInfo
    from workbench.versioning.versioned import VersionedProject


@dataclass
class Orphan:
    """A remote job still recorded as running whose following process is gone."""

    record: records.JobRecord
    state: str
    """'running' | 'ended' | 'unknown' (cannot tell now: the daemon or cluster did not answer)"""
    reason: str
    """How it ended, in words ('' while running)."""


class ExecutorService:
    def __init__(self, ws: VersionedProject) -> None:
        self.ws = ws

    # -- GPUs and cluster ----------------------------------------------------------------------
    def gpus(self) -> dict[str, Any]:
        """This machine's GPUs: ``{"gpus": [facts + current sample], "reason": why-none}``."""
        from workbench.host.gpus import local_gpus

        return local_gpus()

    def cluster_info(self) -> ClusterInfo:
        from workbench.executors.cluster import discover

        return discover()

    # -- jobs left behind ----------------------------------------------------------------------
    def record(self, job_id: str) -> records.JobRecord | None:
        """The recorded handle of a remote job, or None."""
        return records.get(self.ws, job_id)

    def orphans(self) -> list[Orphan]:
        """Every remote job still recorded as running whose following process is gone, probed."""
        found: list[Orphan] = []
        for record in records.open_jobs(self.ws):
            if records.runner_alive(record):
                continue
            try:
                state, reason = self._probe(record)
            except ExecutorError as exc:
                state, reason = "unknown", exc.one_line()
            found.append(Orphan(record, state, reason))
        return found

    def release(self, record: records.JobRecord, reason: str) -> None:
        """Mark a job lost with ``reason`` and remove what it left (container, Job, volume)."""
        records.mark(self.ws, record.run_id, "lost", reason)
        self._cleanup(record)

    def hand_over(self, job_id: str, pid: int) -> None:
        """Process ``pid`` of this host follows the job from now on."""
        records.claim(self.ws, job_id, pid)

    def attach(self, record: records.JobRecord, *, marker: bytes = b"") -> tuple[Executor, Job]:
        """``(executor, job)`` following the recorded container or Job again, from now on;
        ``marker``: the prefix of the job's side-channel lines on stdout."""
        if record.executor == "docker":
            from workbench.executors.docker import DockerExecutor, DockerJob, connect

            client = connect()
            container = client.containers.get(record.handle["container_id"])
            ws, job_id = self.ws, record.run_id

            def on_end(exit_: JobExit) -> None:
                records.mark(ws, job_id, "ended", exit_.reason)

            events = record.handle.get("events")
            job: Job = DockerJob(client, container, Path(events) if events else None,
                                 {"executor": "docker", "container_id": container.id, "reattached": "yes"},
                                 on_end, resume=True, marker=marker)
            return DockerExecutor(self.ws), job
        if record.executor != "kubernetes":
            raise ExecutorError(f"cannot re-attach a job of the {record.executor} executor")
        from workbench.executors.k8s_job import KubernetesJob
        from workbench.executors.k8s_logs import parse_timestamp
        from workbench.executors.kubernetes import KubernetesExecutor

        executor = KubernetesExecutor(self.ws)
        namespace = record.handle["namespace"]
        k8s_job = KubernetesJob(executor.api, namespace, record.run_id,
                                {"executor": "kubernetes", "job": record.handle["job"], "reattached": "yes"},
                                cleanup=lambda: executor.cleanup(record.run_id, namespace), marker=marker)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        k8s_job.resume_from = parse_timestamp(now.encode())
        return executor, k8s_job

    def _probe(self, record: records.JobRecord) -> tuple[str, str]:
        """('running' | 'ended', words) for the job behind a record."""
        if record.executor == "docker":
            return _probe_docker(record)
        if record.executor == "kubernetes":
            return _probe_kubernetes(record)
        return "ended", f"unknown executor {record.executor}"

    def _cleanup(self, record: records.JobRecord) -> None:
        try:
            if record.executor == "docker":
                from workbench.executors.docker import connect

                client = connect(timeout=10)
                try:
                    client.containers.get(record.handle["container_id"]).remove(force=True)
                except Exception:
                    pass
            elif record.executor == "kubernetes":
                from workbench.executors.kubernetes import KubernetesExecutor

                KubernetesExecutor(self.ws).cleanup(record.run_id, record.handle["namespace"])
        except ExecutorError:
            pass


def _probe_docker(record: records.JobRecord) -> tuple[str, str]:
    import docker

    from workbench.executors.docker import connect, exit_reason

    client = connect(timeout=10)
    try:
        container = client.containers.get(record.handle.get("container_id", ""))
    except docker.errors.NotFound:
        return "ended", "its container no longer exists"
    state = container.attrs.get("State", {})
    if state.get("Running"):
        return "running", ""
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return "ended", "the container was OOMKilled meanwhile"
    return "ended", f"the container ended meanwhile: {exit_reason(code)}"


def _probe_kubernetes(record: records.JobRecord) -> tuple[str, str]:
    from workbench.executors.k8s_client import KubeApi, KubeApiError, load
    from workbench.executors.k8s_status import job_exit

    client, target = load(record.handle.get("context") or None)
    api = KubeApi(client, target)
    namespace, name = record.handle["namespace"], record.handle["job"]
    try:
        job = api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
    except KubeApiError as exc:
        if exc.status == 404:
            return "ended", f"its Job {name} no longer exists"
        raise ExecutorError(f"cannot look at Job {name}: {exc.message}") from None
    ended = job_exit(job, None)
    if ended is None:
        return "running", ""
    return "ended", f"the Job ended meanwhile ({ended.status}{': ' + ended.reason if ended.reason else ''})"
