"""The run orchestrator: one path from a command to a fully recorded run, for every executor.

:func:`execute` runs a :class:`~workbench.tracking.request.RunRequest` (the one value every layer
passes through): it snapshots the project (the code and data that go in), creates the run row with the
host's facts, params from the command's flags and the GPUs, launches the command on an executor, and
feeds everything the job prints or emits into one :class:`~workbench.tracking.ingest.Ingester`
(stdout lines are also scanned for metrics). When the job ends it snapshots the project again,
records outputs and hashes, registers model files, and ends the row with the job's status and exit
code. A run in another folder (``rerun``'s scratch checkout) finds its outputs from a manifest of
that folder taken before the launch instead of the project's snapshots. Ctrl+C (KeyboardInterrupt)
or ``cancel_event`` cancels the job; the run is then ``cancelled``.

An isolated local run (``request.isolated``: ``run --isolated``, parallel sweep members) runs in its own
checkout of the input snapshot, records its outputs and models from there, then copies them back by
the rule of :mod:`workbench.tracking.isolation`. A Docker or Kubernetes run is isolated by
construction: the executor hands back the job's own folder (``Executor.output_folder``), from which
its outputs are hashed and its models stored before the same copy-back rule applies. A plain local
run checks, through the close records of the capture ``sitecustomize``, that each file it wrote
still holds its bytes (:mod:`workbench.tracking.writes`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.clock import SYSTEM_CLOCK, Clock, IdSource
from workbench.errors import ExecutorError, UsageError
from workbench.executors.base import Executor, JobOutputs, LaunchSpec
from workbench.paths import STORE_DIRNAME
from workbench.store.db import connect
from workbench.tracking import capture, isolation, libcapture
from workbench.tracking.events import ENV_PROJECT, ENV_RUN_ID
from workbench.tracking.finalize import finalize_files, snapshot_or_none
from workbench.tracking.ids import new_run_id
from workbench.tracking.ingest import Ingester
from workbench.tracking.metric_files import ingest_metric_files
from workbench.tracking.orchestrate import LineCallback, follow, side_channel
from workbench.tracking.records import create_run, end_run
from workbench.tracking.request import RunRequest

if TYPE_CHECKING:
    from workbench.executors.staging import Manifest
    from workbench.versioning.versioned import VersionedProject

ENV_WRITES = "WORKBENCH_WRITES"
INJECT_DIR = Path(__file__).resolve().parent / "_inject"


def _gpu_module() -> Any:
    try:
        from workbench.host import gpus
    except ImportError:
        return None
    return gpus


def _child_env(run_id: str, root: Path, capture_files: bool, local: bool,
               writes: Path | None = None) -> dict[str, str]:
    """The job's environment for the run (its events file is the executor's side channel)."""
    env = {
        ENV_RUN_ID: run_id,
        ENV_PROJECT: str(root),
        "PYTHONUNBUFFERED": "1",
    }
    if capture_files:
        existing = os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(INJECT_DIR), existing) if p)
        if writes is not None:  # a plain run in the shared folder: record what each closed file held
            env[ENV_WRITES] = str(writes)
    if local:  # the job's package list, cached per interpreter for every project of this user
        from workbench.tracking._inject.sitecustomize import ensure_user_cache_dir

        cache = ensure_user_cache_dir()
        if cache is not None:
            env["WORKBENCH_ENV_CACHE"] = cache
    return env


def execute(
    ws: VersionedProject, request: RunRequest, *, on_line: LineCallback | None = None,
    cancel_event: threading.Event | None = None, root: Path | None = None, clock: Clock = SYSTEM_CLOCK,
    new_id: IdSource = new_run_id,
) -> str:
    """Run ``request`` and record it; returns the run id once the run has ended.

    ``root`` runs the command in another folder (``rerun`` uses a scratch checkout) with the
    request's ``snapshot_before`` as its recorded input. An ``isolated`` request runs a local
    command in its own checkout of ``snapshot_before`` (default: a new snapshot) and copies its
    outputs back (Docker and Kubernetes runs always are, by construction). ``on_line(channel,
    bytes)`` gets each output line live; ``cancel_event`` cancels. ``clock`` stamps the run, its log
    lines and stdout metrics; ``new_id`` mints the run id.
    """
    from workbench.executors.registry import get_executor

    if not request.command:
        raise UsageError("no command to run", "put the command after '--': workbench run -- python train.py")
    if request.executor is None:
        request = replace(request, executor=ws.config.executor.default or "local")
    executor = request.executor or "local"
    config = ws.config.tracking
    run_root = (root or ws.root).resolve()
    in_project = run_root == ws.root
    isolate = request.isolated and in_project and executor == "local"
    run_id = new_id()
    run_dir = ws.paths.runs / run_id
    events_path = run_dir / "events.jsonl"
    writes = run_dir / "writes.jsonl" if in_project and not isolate and executor == "local" else None
    spec = LaunchSpec(
        job_id=run_id, command=list(request.command), project_root=run_root,
        input_snapshot=request.snapshot_before or "",
        env=_child_env(run_id, run_root, config.capture_file_access, executor == "local", writes),
        side=side_channel(events_path), image=request.image, gpus=request.gpus, cpu=request.cpu,
        memory=request.memory, namespace=request.namespace, workdir=request.workdir,
    )
    runner = get_executor(executor, ws)
    runner.check(spec)

    before = request.snapshot_before
    if before is None and in_project:
        before = snapshot_or_none(ws, "run-before", f"before run {run_id}")
    scratch: Path | None = None
    if isolate:
        scratch = isolation.scratch_checkout(ws, before, run_id)
        run_root, in_project = scratch.resolve(), False
        spec.project_root = run_root
        spec.env = _child_env(run_id, run_root, config.capture_file_access, True)
    libs_env, libs = libcapture.plan(os.environ if executor == "local" else {}, run_dir,
                                     run_root / (request.workdir or "."), clock.now(), executor == "local")
    spec.env.update(libs_env)
    try:
        return _execute(ws, request, run_id, spec, runner, before=before, scratch=scratch, writes=writes,
                        on_line=on_line, cancel_event=cancel_event, clock=clock, libs=libs)
    finally:
        if scratch is not None:
            isolation.remove_scratch(scratch)


def _execute(
    ws: VersionedProject, request: RunRequest, run_id: str, spec: LaunchSpec, runner: Executor, *,
    before: str | None, scratch: Path | None, writes: Path | None, on_line: LineCallback | None,
    cancel_event: threading.Event | None, clock: Clock, libs: libcapture.Capture | None = None,
) -> str:
    command, executor = spec.command, request.executor or "local"
    config = ws.config.tracking
    run_root = spec.project_root
    in_project = run_root == ws.root
    run_dir = ws.paths.runs / run_id
    events_path = run_dir / "events.jsonl"
    workdir = spec.workdir
    # Elsewhere (a rerun's scratch checkout) the project's snapshots cannot see the folder: a
    # manifest of it (size, mtime per file) tells afterwards what the job created or changed.
    manifest: Manifest | None = None
    if not in_project and executor == "local":
        from workbench.executors.staging import Manifest

        manifest = Manifest.of(run_root)
    spec.input_snapshot = before or ""
    run_dir.mkdir(parents=True, exist_ok=True)
    gpu_module = _gpu_module() if executor == "local" else None
    gpu_facts: list[dict[str, Any]] = gpu_module.gpu_facts() if gpu_module is not None else []
    create_run(
        ws.db, run_id, name=request.name or "", command=command, executor=executor, workdir=workdir,
        snapshot_before=before, parent_run=request.parent_run, sweep_id=request.sweep_id,
        pipeline_run=request.pipeline_run, stage=request.stage, events_path=str(events_path), gpus=gpu_facts,
        environment=capture.host_facts(ws.root if scratch is not None else run_root), now=clock.now(),
    )
    conn = connect(ws.paths.db)
    ingester = Ingester(conn, run_id, run_root, clock)
    for path in request.models:  # declared by its pipeline stage: a model whatever its bytes
        ingester.models.append({"path": path, "name": request.model_names.get(path, ""), "framework": "",
                                "framework_version": ""})
    argv_params = capture.params_from_argv(command) if config.capture_argv_params else {}
    for key, value in {**argv_params, **request.params}.items():
        try:
            ingester.add_param(key, value, "argv" if key in argv_params else "api")
        except ValueError:
            ingester.note(f"ignored param with a bad key {key[:40]!r}")
    for tag in request.tags:
        key, _, value = tag.partition("=")
        try:
            ingester.add_tag(key, value)
        except ValueError:
            ingester.note(f"ignored tag with a bad key {key[:40]!r}")
    ingester.flush()
    parser = (
        capture.StdoutMetricParser(config.metric_patterns, ignore=argv_params)
        if config.capture_stdout_metrics else None
    )
    try:
        try:
            job = runner.launch(spec)
        except ExecutorError as exc:
            ingester.note(f"launch failed: {exc.one_line()}")
            ingester.flush()
            end_run(conn, run_id, status="failed", exit_code=None, reason=exc.one_line(), now=clock.now())
            raise
        exit_ = follow(job, ingester, parser, on_line, cancel_event, gpu_module if gpu_facts else None,
                       runner.workspace)
        ingester.flush()
        outputs: JobOutputs | None = None
        try:
            if not hasattr(runner, "output_folder"):
                collected: list[str] = runner.collect_outputs(spec, job)
            elif in_project:
                outputs = runner.output_folder(spec, job)
                collected = []
            else:  # a rerun's scratch checkout: nobody else writes there, copy everything back
                from workbench.executors.staging import copy_all_back

                collected = copy_all_back(runner.output_folder(spec, job), run_root)
        except ExecutorError as exc:
            collected = []
            ingester.note(f"could not copy outputs back: {exc.one_line()}")
        for path in collected:
            ingester.add_file("output", path, "executor")
        for refusal in getattr(collected, "refused", ()):  # staging.CopyReport
            ingester.refuse("copy-back", refusal.path, refusal.reason)
        if outputs is not None:
            _record_job_files(ingester, outputs)
        if manifest is not None:
            for path in _changed_files(ws, manifest, run_root):
                ingester.add_file("output", path, "snapshot")
        ingester.flush()
        # A job that ran in a folder of its own (Docker, Kubernetes) is an isolated run by
        # construction: recorded from that folder, then copied back by isolation's rule.
        shared = in_project and outputs is None
        after = snapshot_or_none(ws, "run-after", f"after run {run_id}") if shared else None
        try:
            side = getattr(runner, "side_folder", None)
            _finalize(ws, conn, ingester, run_id, root=outputs.folder if outputs else run_root, before=before,
                      after=after, scratch=outputs.folder if outputs else scratch, writes=writes, libs=libs,
                      side_folder=side(spec) if side is not None else None)
            ingest_metric_files(ingester, outputs.folder if outputs else run_root, request.metrics,
                                request.plots)
        finally:
            if outputs is not None:
                outputs.discard()
        try:
            info = job.describe()
        except Exception:
            info = {}
        end_run(conn, run_id, status=exit_.status if exit_.status != "lost" else "failed",
                exit_code=exit_.exit_code, reason=exit_.reason, snapshot_after=after, executor_info=info,
                now=clock.now())
    finally:
        ingester.flush()
        conn.close()
    return run_id


def _finalize(
    ws: VersionedProject, conn: Any, ingester: Ingester, run_id: str, *, root: Path, before: str | None,
    after: str | None, scratch: Path | None, writes: Path | None, libs: libcapture.Capture | None = None,
    side_folder: Path | None = None,
) -> None:
    """Outputs, hashes and models; what the job logged through MLflow and TensorBoard
    (:mod:`~workbench.tracking.libcapture`); then an isolated run's copy-back, or a plain run's
    check that the files it wrote are still its bytes. Each conflict is also a note in the run's log."""
    from workbench.tracking.writes import check_writes

    check = check_writes(ws, conn, run_id, writes, ingester.models, after) if writes is not None else None
    try:
        finalize_files(ws, conn, run_id, root=root, before=before, after=after, models=ingester.models,
                       note=ingester.note, foreign=check.foreign if check else None,
                       private=check.private if check else None, now=ingester.clock.now())
    finally:
        if check is not None:
            check.cleanup()
    if libs is not None:
        try:
            libcapture.collect(ws, conn, ingester, run_id, root=root, capture=libs, store_folder=side_folder)
        except Exception as exc:  # what the job logged elsewhere must never lose the run
            ingester.note(f"could not read what the job logged through MLflow/TensorBoard: {exc!r}")
    found = check.conflicts if check is not None else []
    if scratch is not None:
        _, found = isolation.copy_back(ws, conn, run_id, scratch, before)
    for conflict in found:
        ingester.note(conflict.one_line())


def _record_job_files(ingester: Ingester, outputs: JobOutputs) -> None:
    """The job's changed files as outputs; the ones the boundary rules would never bring back (a
    link the job made, a path into ``.git/`` or ``.workbench/``) as copy-back refusals instead."""
    from workbench.versioning.safe_write import RefusedPath, source_mode

    for path in outputs.paths:
        try:
            source_mode(outputs.folder, path)
        except RefusedPath as exc:
            ingester.refuse("copy-back", path, exc.refusal.reason)
            continue
        except OSError:
            continue
        ingester.add_file("output", path, "executor")


def _changed_files(ws: VersionedProject, manifest: Manifest, root: Path) -> list[str]:
    """Files under ``root`` new or changed since ``manifest``, less what the project ignores."""
    try:
        ignored = ws.versions.ignore_matcher()
    except (ImportError, AttributeError, NotImplementedError):
        def ignored(path: str) -> bool:
            return False
    return [path for path in manifest.changed(root)
            if not path.startswith(STORE_DIRNAME + "/") and not ignored(path)]
