"""ExecutorService (``ws.executors``): GPUs here and on the cluster, cluster capabilities, and the
reconciliation of remote runs whose workbench process died.

:meth:`ExecutorService.reconcile` is called when ``workbench runs`` or the TUI starts (before the
tracking service's own stale-run recovery). For every remote job still recorded as running whose
following process is gone, it looks at the container or Job:

* still running: it is **re-attached**: a detached ``python -m workbench.executors.reattach RUN``
  process takes the run over, follows it to the end, ingests its events and outputs and ends it;
* ended or gone: the run is **marked lost** with the reason (how the job ended, or that it vanished),
  and the container / Job / volume are removed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import ExecutorError
from workbench.executors import records

if TYPE_CHECKING:
    from workbench.core.workspace import Workspace
    from workbench.executors.cluster import ClusterInfo


@dataclass
class Reconciled:
    run_id: str
    executor: str
    action: str
    """'reattached' | 'lost'"""
    reason: str


class ExecutorService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- GPUs and cluster ----------------------------------------------------------------------
    def gpus(self) -> dict[str, Any]:
        """This machine's GPUs: ``{"gpus": [facts + current sample], "reason": why-none}``."""
        from workbench.host.gpus import local_gpus

        return local_gpus()

    def cluster_info(self) -> ClusterInfo:
        from workbench.executors.cluster import discover

        return discover()

    # -- runs left behind ----------------------------------------------------------------------
    def reconcile(self, *, spawn: bool = True) -> list[Reconciled]:
        """Re-attach or mark lost every remote run whose workbench process died."""
        done: list[Reconciled] = []
        for record in records.open_jobs(self.ws):
            if records.runner_alive(record):
                continue
            try:
                state, reason = self._probe(record)
            except ExecutorError as exc:
                state, reason = "unknown", exc.one_line()
            if state == "running" and spawn:
                self._spawn_follower(record.run_id)
                done.append(Reconciled(record.run_id, record.executor, "reattached",
                                       "still running: a background follower took it over"))
                continue
            if state in ("running", "unknown"):
                continue  # cannot tell now (cluster unreachable): try again next time
            self.mark_lost(record.run_id, reason)
            self._cleanup(record)
            done.append(Reconciled(record.run_id, record.executor, "lost", reason))
        return done

    def mark_lost(self, run_id: str, reason: str) -> None:
        from workbench.tracking.records import end_run

        text = f"lost: workbench stopped following the job ({reason})"
        records.mark(self.ws, run_id, "lost", text)
        row = self.ws.db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None and row[0] == "running":
            end_run(self.ws.db, run_id, status="lost", exit_code=None, reason=text)

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

    def _spawn_follower(self, run_id: str) -> None:
        import socket

        from workbench.host.processes import process_started

        child = subprocess.Popen(
            [sys.executable, "-m", "workbench.executors.reattach", str(self.ws.root), run_id],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ},
        )
        # The follower owns the run from now on: neither this reconcile nor the tracking service's
        # stale-run recovery may mark it failed while the follower lives.
        with self.ws.atomic() as db:
            db.execute("UPDATE executor_jobs SET runner_pid = ?, runner_host = ? WHERE run_id = ?",
                       (child.pid, socket.gethostname(), run_id))
            db.execute("UPDATE runs SET pid = ?, pid_started = ?, host = ?"
                       " WHERE id = ? AND status = 'running'",
                       (child.pid, process_started(child.pid), socket.gethostname(), run_id))


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
