"""Runs whose workbench process died while their remote job went on: re-attach or mark lost.

:func:`reconcile` is called when ``workbench runs`` or the TUI starts (``ws.runs.recover``, before
the stale-run recovery). For every remote job still recorded as running whose following process is
gone (``ws.executors.orphans()``), the run behind it is

* **re-attached** while the job still runs: a detached ``python -m workbench.tracking.reattach
  PROJECT RUN`` process (:func:`follow`) takes the run over, follows the job to its end, ingests
  its events, log and outputs, and ends the run;
* **marked lost** once the job has ended or vanished, with the reason, and the job's container /
  Job / volume are removed (``ws.executors.release``).

The follower follows from the moment it attaches: output and events the job produced while nobody
followed it (after the dead process's last batch) may be missing, and the run's log says so.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.executors.base import LaunchSpec
from workbench.host.processes import process_started
from workbench.tracking.events import MARKER_BYTES
from workbench.tracking.records import end_run

if TYPE_CHECKING:
    from workbench.executors.service import ExecutorService
    from workbench.versioning.versioned import VersionedProject


@dataclass
class Reconciled:
    """What :func:`reconcile` did with one run."""

    run_id: str
    executor: str
    action: str
    """'reattached' | 'lost'"""
    reason: str


def reconcile(ws: VersionedProject, executors: ExecutorService, *, spawn: bool = True) -> list[Reconciled]:
    """Re-attach (``spawn``) or mark lost every remote run whose workbench process died."""
    done: list[Reconciled] = []
    for orphan in executors.orphans():
        record = orphan.record
        if orphan.state == "running" and spawn:
            spawn_follower(ws, executors, record.run_id)
            done.append(Reconciled(record.run_id, record.executor, "reattached",
                                   "still running: a background follower took it over"))
            continue
        if orphan.state in ("running", "unknown"):
            continue  # cannot tell now (cluster unreachable): try again next time
        text = f"lost: workbench stopped following the job ({orphan.reason})"
        executors.release(record, text)
        _end_lost(ws, record.run_id, text)
        done.append(Reconciled(record.run_id, record.executor, "lost", orphan.reason))
    return done


def _end_lost(ws: VersionedProject, run_id: str, text: str) -> None:
    row = ws.db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is not None and row[0] == "running":
        end_run(ws.db, run_id, status="lost", exit_code=None, reason=text)


def _own_run(ws: VersionedProject, run_id: str, pid: int) -> None:
    """Process ``pid`` of this host owns the run from now on, so that neither a reconcile nor the
    stale-run recovery marks it failed while that process lives."""
    started = process_started(pid)
    with ws.atomic() as db:
        db.execute("UPDATE runs SET pid = ?, pid_started = ?, host = ? WHERE id = ? AND status = 'running'",
                   (pid, started if started is not None else time.time(), socket.gethostname(), run_id))


def spawn_follower(ws: VersionedProject, executors: ExecutorService, run_id: str) -> None:
    """Start the detached follower of a run (:func:`follow`, run by ``workbench.core.follow``, which
    opens the whole Workspace so that a job's outputs on a remote can be fetched) and hand it the job
    and the run."""
    child = subprocess.Popen(
        [sys.executable, "-m", "workbench.core.follow", str(ws.root), run_id],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ},
    )
    executors.hand_over(run_id, child.pid)
    _own_run(ws, run_id, child.pid)


def follow(ws: VersionedProject, executors: ExecutorService, run_id: str) -> int:
    """Follow the run's remote job to its end from this process, record everything, end the run."""
    from workbench.store.db import connect
    from workbench.tracking.ingest import Ingester
    from workbench.tracking.orchestrate import Flusher, consume

    record = executors.record(run_id)
    if record is None:
        return 1
    executors.hand_over(run_id, os.getpid())
    conn = connect(ws.paths.db)
    try:
        started = time.time()
        _own_run(ws, run_id, os.getpid())
        executor, job = executors.attach(record, marker=MARKER_BYTES)
        ingester = Ingester(conn, run_id, ws.root)
        ingester.note("re-attached by a new workbench process;"
                      " output from while nobody followed may be missing")
        flusher = Flusher(ingester)
        try:
            consume(job, ingester, None, None, executor.workspace)
        finally:
            flusher.close()
        exit_ = job.wait()
        ingester.flush()
        spec = LaunchSpec(job_id=run_id, command=[], project_root=ws.root, input_snapshot="",
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
        _collect_libraries(ws, conn, ingester, run_id, executor, spec)
        end_run(conn, run_id, status=exit_.status, exit_code=exit_.exit_code,
                reason=(exit_.reason + "; " if exit_.reason else "")
                + f"re-attached after {time.time() - started:.0f}s",
                executor_info=job.describe())
    finally:
        conn.close()
    return 0



def _collect_libraries(ws: VersionedProject, conn: Any, ingester: Any, run_id: str, executor: Any,
                       spec: LaunchSpec) -> None:
    """What the job logged through MLflow (a Docker job's store in its run folder; a pod's came as
    events) and TensorBoard (event files among the outputs copied back), as a followed run does."""
    from workbench.tracking import libcapture

    side = getattr(executor, "side_folder", None)
    capture = libcapture.Capture(("file", ws.paths.runs / run_id / libcapture.MLFLOW_DIRNAME))
    try:
        libcapture.collect(ws, conn, ingester, run_id, root=ws.root, capture=capture,
                           store_folder=side(spec) if side is not None else None)
    except Exception as exc:  # report, never crash a detached process silently
        ingester.note(f"could not read what the job logged through MLflow/TensorBoard: {exc}")
