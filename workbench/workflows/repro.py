"""``workbench repro``: run the pipeline's stages in dependency order, only where something changed.

Each stage that must run becomes an ordinary recorded run (``ws.runs.execute`` with
``pipeline_run`` and ``stage``), so lineage, compare and rerun work on it. A stage whose
fingerprint matches an earlier successful run is not run: its outputs are written back from the
store and the stage is reported "cached from run X" (or "fresh" when they are already in place).

Stages are decided only once everything upstream of them is done, on the bytes actually on disk,
so a re-run upstream stage that produces identical output does not force its dependants to run.
Up to ``jobs`` independent stages run at once (threads; each run is its own process). The first
failure stops the launch of new stages; running ones finish, the rest are marked skipped, and
the failed stage's log tail is returned. Decisions, restores and records happen on the calling
thread; worker threads only execute runs and store their outputs.
"""

from __future__ import annotations

import concurrent.futures as cf
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import BusyError, CorruptObjectError, MissingObjectError, WorkbenchError
from workbench.paths import STORE_DIRNAME
from workbench.tracking.request import RunRequest
from workbench.workflows import records
from workbench.workflows.backend import RunOutcome, ServiceBackend, remove_path, safe_destination
from workbench.workflows.dag import Dag
from workbench.workflows.plan import PlanItem, Planner
from workbench.workflows.records import StageRecord
from workbench.workflows.spec import Pipeline, Stage, is_within
from workbench.workflows.stale import iter_files

LOG_TAIL_LINES = 20


@dataclass
class StageEvent:
    """Progress of a repro, for the CLI and the TUI (``on_event``)."""

    stage: str
    status: str  # start | ran | cached | fresh | failed | skipped | cancelled | warning | line
    run_id: str | None = None
    source_run: str | None = None
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    log_tail: list[str] = field(default_factory=list)


@dataclass
class ReproResult:
    """The outcome of one ``repro``."""

    pipeline_run: str
    status: str  # succeeded | failed | cancelled
    stages: list[StageRecord]
    failed_stage: str | None = None
    log_tail: list[str] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline_run": self.pipeline_run, "status": self.status, "failed_stage": self.failed_stage,
                "message": self.message, "log_tail": self.log_tail,
                "stages": [s.to_dict() for s in self.stages]}


@dataclass
class _Done:
    outcome: RunOutcome | None
    outputs: dict[str, str]
    error: str = ""


@contextmanager
def pipeline_lock(lock_dir: Path) -> Iterator[None]:
    """One repro at a time per project (two would race on the same output files)."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / "repro.lock"
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BusyError(f"another repro is running in this project (pid {holder})",
                            "wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class Repro:
    """One pipeline run in progress."""

    def __init__(self, pipeline: Pipeline, dag: Dag, planner: Planner, backend: ServiceBackend, *,
                 force: bool = False, jobs: int = 1, check: bool = False, default_executor: str | None = None,
                 on_event: Callable[[StageEvent], None] | None = None,
                 cancel_event: threading.Event | None = None, stream_lines: bool = False) -> None:
        self.pipeline = pipeline
        self.dag = dag
        self.planner = planner
        self.backend = backend
        self.root = planner.root
        self.db = planner.db
        self.force = force
        self.jobs = max(1, jobs)
        self.check = check
        self.default_executor = default_executor
        self.on_event = on_event or (lambda event: None)
        self.cancel = cancel_event or threading.Event()
        self.stream_lines = stream_lines
        self.recs: dict[str, StageRecord] = {}

    # -- helpers -------------------------------------------------------------------------------
    def _emit(self, event: StageEvent) -> None:
        self.on_event(event)

    def _record(self, rec: StageRecord) -> None:
        self.recs[rec.stage] = rec
        records.put_stage(self.db, rec)

    def _new_record(self, pipeline_run: str, name: str, seq: int, status: str,
                    item: PlanItem | None = None, **extra: Any) -> StageRecord:
        fp = item.fingerprint if item else None
        now = time.time()
        return StageRecord(pipeline_run=pipeline_run, stage=name, seq=seq, status=status,
                           fingerprint=fp.digest() if fp else None, parts=fp.to_json() if fp else "{}",
                           reason="; ".join(item.reasons) if item else "", started_at=now,
                           ended_at=now, **extra)

    def _end_unrun(self, pipeline_run: str, name: str, seq: int, status: str, why: str) -> None:
        """Record and announce a stage that ends without a run of its own (skipped, cancelled)."""
        self._record(StageRecord(pipeline_run, name, seq, status, reason=why, ended_at=time.time()))
        self._emit(StageEvent(name, status, message=why))

    def _clear_outputs(self, stage: Stage) -> None:
        """Keep a copy of existing outputs in the store, remove them, and make their parent folders."""
        for out in stage.outputs:
            path = safe_destination(self.root, out)  # never delete through a link out of the project
            for rel in iter_files(self.root, out):
                self.backend.store_file(self.root / rel)
            if out in stage.persist:  # DVC's persist: true: the command updates it in place
                continue
            if path.is_symlink() or path.exists():
                remove_path(path)
            path.parent.mkdir(parents=True, exist_ok=True)  # the command may expect the folder

    def _restore(self, stage: Stage, wanted: dict[str, str]) -> None:
        """Make the stage's outputs on disk exactly ``wanted`` (files not in it are removed)."""
        for out in stage.outputs:
            for rel in iter_files(self.root, out):
                if rel not in wanted:
                    self.backend.store_file(self.root / rel)
                    (self.root / rel).unlink()
        for rel, digest in sorted(wanted.items()):
            current = self.root / rel
            if current.is_file() and not current.is_symlink() and self.planner.hasher(current) == digest:
                continue
            if current.is_file() and not current.is_symlink():
                self.backend.store_file(current)  # a hand-edited output is kept in the store
            self.backend.restore_file(digest, rel)

    def _undeclared_reads(self, stage: Stage, run_id: str) -> list[str]:
        declared = [*stage.inputs, *stage.outputs,
                    *(ref.file for ref in stage.params.values() if hasattr(ref, "file"))]
        seen: list[str] = []
        for path in self.backend.files_read(run_id):
            if path.startswith("/") or path.startswith(STORE_DIRNAME + "/") or path.startswith("../"):
                continue
            if any(is_within(path, d) for d in declared) or path in seen:
                continue
            if not (self.root / path).is_file():
                continue
            seen.append(path)
        return [f"stage '{stage.name}' read '{p}' but does not declare it as an input" for p in seen]

    # -- one stage in a worker thread ----------------------------------------------------------
    def _execute(self, pipeline_run: str, stage: Stage, item: PlanItem) -> _Done:
        assert item.fingerprint is not None
        on_line = None
        if self.stream_lines:
            def on_line(stream: str, text: str) -> None:
                self._emit(StageEvent(stage.name, "line", message=text))
        try:
            request = RunRequest(
                tuple(item.fingerprint.cmd), name=stage.name,
                executor=stage.executor or self.default_executor, image=stage.image, gpus=stage.gpus,
                pipeline_run=pipeline_run, stage=stage.name, params=item.fingerprint.params,
                models=tuple(stage.models), workdir=stage.workdir, metrics=tuple(stage.metrics),
                plots=stage.plots,
                model_names=dict(stage.model_names))
            outcome = self.backend.execute(request, cancel_event=self.cancel, on_line=on_line)
        except WorkbenchError as exc:
            return _Done(None, {}, exc.one_line())
        if outcome.status != "succeeded":
            return _Done(outcome, {})
        missing = [out for out in stage.outputs if not os.path.lexists(self.root / out)]
        if missing:
            return _Done(outcome, {}, f"stage '{stage.name}' did not produce its declared output "
                                      f"'{missing[0]}'")
        outputs: dict[str, str] = {}
        for out in stage.outputs:
            for rel in iter_files(self.root, out):
                outputs[rel] = self.backend.store_file(self.root / rel)
        return _Done(outcome, outputs)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, selected: list[str], targets: list[str]) -> ReproResult:
        pipeline_run = records.start_pipeline_run(self.db, targets, self.force, self.jobs)
        pending = list(selected)
        seq = {name: i for i, name in enumerate(selected)}
        running: dict[cf.Future[_Done], tuple[Stage, PlanItem]] = {}
        failed: str | None = None
        tail: list[str] = []
        message = ""
        for name in pending:
            self._record(StageRecord(pipeline_run, name, seq[name], "pending"))
        pool = cf.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="wb-stage")
        try:
            while pending or running:
                progressed = False
                for name in list(pending):
                    if failed is not None or self.cancel.is_set():
                        break
                    if len(running) >= self.jobs:
                        break
                    ups = [u for u in self.dag.upstream[name] if u in seq]
                    if any(self.recs[u].status not in records.DONE for u in ups):
                        continue  # not ready yet (failures stop the loop before this matters)
                    pending.remove(name)
                    progressed = True
                    try:
                        self._start(pipeline_run, self.pipeline.stages[name], seq[name], pool, running)
                    except WorkbenchError as exc:  # an input vanished, a restore was refused ...
                        failed, message = name, exc.one_line()
                        self._record(StageRecord(pipeline_run, name, seq[name], "failed", reason=message,
                                                 ended_at=time.time()))
                        self._emit(StageEvent(name, "failed", message=message))
                if not running:
                    if not progressed:
                        break
                    continue
                done, _ = cf.wait(list(running), timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    stage, item = running.pop(future)
                    ok, stage_tail, error = self._finish(pipeline_run, stage, item, seq[stage.name],
                                                         future.result())
                    if not ok and failed is None and not self.cancel.is_set():
                        failed, tail, message = stage.name, stage_tail, error
        except BaseException:
            self._interrupted(pipeline_run, seq, running)
            raise
        finally:
            pool.shutdown(wait=True)
            self.planner_flush()
        cancelled = self.cancel.is_set() and failed is None
        for name in pending:
            why = "cancelled" if cancelled else (f"pipeline stopped: stage '{failed}' failed"
                                                 if failed else "not run")
            self._end_unrun(pipeline_run, name, seq[name], "skipped", why)
        status = "failed" if failed else ("cancelled" if cancelled else "succeeded")
        records.end_pipeline_run(self.db, pipeline_run, status, message)
        return ReproResult(pipeline_run, status, [self.recs[n] for n in selected], failed, tail, message)

    def _interrupted(self, pipeline_run: str, seq: dict[str, int],
                     running: dict[cf.Future[_Done], tuple[Stage, PlanItem]]) -> None:
        """Ctrl+C (or any exception) in the loop: leave a complete record before it propagates.

        Stages not yet started are written as skipped first (no waiting, so a second Ctrl+C
        cannot lose them), the pipeline run as cancelled; then the running stages, whose runs see
        the cancel event, are recorded as they ended (cancelled, or ran if they beat it).
        """
        self.cancel.set()
        why = "cancelled: the pipeline was interrupted"
        for name, rec in list(self.recs.items()):
            if rec.status == "pending":
                self._end_unrun(pipeline_run, name, seq[name], "skipped", why)
        records.end_pipeline_run(self.db, pipeline_run, "cancelled", "interrupted")
        unstarted = [f for f in running if f.cancel()]
        for future in unstarted:  # queued behind the pool's workers: never began
            name = running[future][0].name
            self._end_unrun(pipeline_run, name, seq[name], "skipped", why)
        done, _ = cf.wait([f for f in running if f not in unstarted], timeout=60)
        for future in done:
            stage, item = running[future]
            try:
                result = future.result()
            except Exception as exc:  # a worker that broke while being cancelled
                result = _Done(None, {}, f"stage '{stage.name}' was interrupted: {exc}")
            self._finish(pipeline_run, stage, item, seq[stage.name], result)
        for name, rec in list(self.recs.items()):
            if rec.status == "running":  # never submitted, or still not back after the wait
                self._end_unrun(pipeline_run, name, seq[name], "cancelled", why)

    def planner_flush(self) -> None:
        flush = getattr(self.planner.hasher, "flush", None)
        if callable(flush):
            flush()

    def _start(self, pipeline_run: str, stage: Stage, seq: int, pool: cf.ThreadPoolExecutor,
               running: dict[cf.Future[_Done], tuple[Stage, PlanItem]]) -> None:
        item = self.planner.decide(stage, force=self.force)
        if stage.frozen:  # never run: its outputs are whatever is on disk
            rec = self._new_record(pipeline_run, stage.name, seq, "fresh", item,
                                   source_run=item.source_run, outputs=self.planner.outputs_on_disk(stage))
            self._record(rec)
            self._emit(StageEvent(stage.name, "fresh", source_run=item.source_run, reasons=item.reasons))
            return
        if item.action in ("skip", "restore") and item.source is not None:
            source = item.source
            try:
                if item.action == "restore":
                    self._restore(stage, source.outputs)
            except (MissingObjectError, CorruptObjectError) as exc:
                item = PlanItem(stage.name, "run", [*item.reasons, f"cached outputs unusable: {exc.message}"],
                                fingerprint=item.fingerprint)
            else:
                status = "fresh" if item.action == "skip" else "cached"
                rec = self._new_record(pipeline_run, stage.name, seq, status, item,
                                       source_run=source.producer, outputs=dict(source.outputs))
                if self.check and source.producer:
                    rec.warnings = self._undeclared_reads(stage, source.producer)
                self._record(rec)
                self._emit(StageEvent(stage.name, status, source_run=source.producer, reasons=item.reasons))
                for warning in rec.warnings:
                    self._emit(StageEvent(stage.name, "warning", message=warning))
                return
        self._clear_outputs(stage)
        rec = self._new_record(pipeline_run, stage.name, seq, "running", item)
        rec.ended_at = None
        self._record(rec)
        self._emit(StageEvent(stage.name, "start", reasons=item.reasons))
        running[pool.submit(self._execute, pipeline_run, stage, item)] = (stage, item)

    def _finish(self, pipeline_run: str, stage: Stage, item: PlanItem, seq: int,
                done: _Done) -> tuple[bool, list[str], str]:
        outcome = done.outcome
        run_id = outcome.run_id if outcome else None
        rec = self._new_record(pipeline_run, stage.name, seq, "ran", item, run_id=run_id,
                               outputs=done.outputs)
        rec.started_at = self.recs[stage.name].started_at
        ok = outcome is not None and outcome.status == "succeeded" and not done.error
        tail: list[str] = []
        message = done.error
        if not ok:
            rec.status = "cancelled" if outcome is not None and outcome.status == "cancelled" else "failed"
            if not message and outcome is not None:
                code = f"exit code {outcome.exit_code}" if outcome.exit_code is not None else outcome.status
                message = f"stage '{stage.name}' failed ({outcome.reason or code})"
            rec.reason = message
            if run_id:
                try:
                    tail = self.backend.log_tail(run_id, LOG_TAIL_LINES)
                except WorkbenchError:
                    tail = []
        elif self.check and run_id:
            rec.warnings = self._undeclared_reads(stage, run_id)
        for rel, digest in done.outputs.items():
            remember = getattr(self.planner.hasher, "remember", None)
            if callable(remember):
                remember(rel, digest)
        self._record(rec)
        self._emit(StageEvent(stage.name, rec.status, run_id=run_id, reasons=item.reasons, message=message,
                              log_tail=tail))
        for warning in rec.warnings:
            self._emit(StageEvent(stage.name, "warning", run_id=run_id, message=warning))
        return ok, tail, message
