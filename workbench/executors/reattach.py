"""``python -m workbench.executors.reattach PROJECT RUN``: take over a remote run whose workbench
process died, follow it to its end, ingest its events, logs and outputs, and end the run.

Started detached by :meth:`workbench.executors.service.ExecutorService.reconcile`. It follows from the
moment it attaches: output and events the job produced while nobody followed it (after the dead
process's last batch) may be missing, and the run's log says so.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from workbench.executors import records
from workbench.executors.base import JobExit, LaunchSpec


def _job_for(ws: Any, record: records.JobRecord) -> tuple[Any, Any]:
    """(executor, job) re-attached to the record's container or Job."""
    if record.executor == "docker":
        from workbench.executors.docker import DockerExecutor, DockerJob, connect

        client = connect()
        container = client.containers.get(record.handle["container_id"])

        def on_end(exit_: JobExit) -> None:
            records.mark(ws, record.run_id, "ended", exit_.reason)

        job = DockerJob(client, container, Path(record.handle["events"]),
                        {"executor": "docker", "container_id": container.id, "reattached": "yes"},
                        on_end, resume=True)
        return DockerExecutor(ws), job
    from workbench.executors.k8s_job import KubernetesJob
    from workbench.executors.k8s_logs import parse_timestamp
    from workbench.executors.kubernetes import KubernetesExecutor

    executor = KubernetesExecutor(ws)
    k8s_job = KubernetesJob(executor.api, record.handle["namespace"], record.run_id,
                        {"executor": "kubernetes", "job": record.handle["job"], "reattached": "yes"},
                        cleanup=lambda: executor.cleanup(record.run_id, record.handle["namespace"]))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    k8s_job.resume_from = parse_timestamp(now.encode())
    return executor, k8s_job


def follow(root: Path, run_id: str) -> int:
    from workbench.core.workspace import Workspace
    from workbench.store.db import connect
    from workbench.tracking.ingest import Ingester
    from workbench.tracking.records import end_run

    ws = Workspace.open(root)
    record = records.get(ws, run_id)
    if record is None:
        return 1
    records.claim(ws, run_id)
    conn = connect(ws.paths.db)
    try:
        started = time.time()
        with ws.atomic() as db:
            db.execute("UPDATE runs SET pid = ?, pid_started = ?, host = ?"
                       " WHERE id = ? AND status = 'running'",
                       (os.getpid(), _process_started(), socket.gethostname(), run_id))
        executor, job = _job_for(ws, record)
        ingester = Ingester(conn, run_id, ws.root)
        ingester.note("re-attached by a new workbench process;"
                      " output from while nobody followed may be missing")
        for channel, line in job.lines():
            if channel == "event":
                ingester.feed_line(line)
            else:
                ingester.add_log(channel, line, time.time())
            ingester.maybe_flush()
        exit_ = job.wait()
        ingester.flush()
        spec = LaunchSpec(run_id=run_id, command=[], project_root=ws.root, input_snapshot="",
                          image=record.handle.get("image"), namespace=record.handle.get("namespace"))
        try:
            collected = executor.collect_outputs(spec, job)
            for path in collected:
                ingester.add_file("output", path, "executor")
            for refusal in getattr(collected, "refused", ()):  # staging.CopyReport
                ingester.refuse("copy-back", refusal.path, refusal.reason)
        except Exception as exc:  # report, never crash a detached process silently
            ingester.note(f"could not copy outputs back: {exc}")
        ingester.flush()
        status = exit_.status if exit_.status != "lost" else "lost"
        end_run(conn, run_id, status=status, exit_code=exit_.exit_code,
                reason=(exit_.reason + "; " if exit_.reason else "")
                + f"re-attached after {time.time() - started:.0f}s",
                executor_info=job.describe())
    finally:
        conn.close()
        ws.close()
    return 0


def _process_started() -> float:
    from workbench.host.processes import process_started

    value = process_started(os.getpid())
    return float(value) if value is not None else time.time()


if __name__ == "__main__":
    sys.exit(follow(Path(sys.argv[1]), sys.argv[2]))
