"""Following a launched job for a run: its lines into the run's ingester, until it ends.

Shared by the run orchestrator (:mod:`workbench.tracking.runner`) and the follower that re-attaches
to a remote job (:mod:`workbench.tracking.reattach`). The executor hands back lines; here they
become the run's record: side-channel lines (channel ``"event"``) are the run's events, confined
to the job's workspace when it ran in a folder of its own (:mod:`workbench.tracking.confine`);
stdout and stderr lines go to the run's log, and stdout is also scanned for metrics. A flusher
writes the ingester's buffer every quarter second, and a sampler records GPU use on this machine.
A job that runs past :data:`WARM_AFTER` gets the metric path's imports done beside it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.executors.base import Channel, Job, JobExit, SideChannel
from workbench.tracking import capture
from workbench.tracking.confine import relativise
from workbench.tracking.events import ENV_EVENTS, MARKER_BYTES, STDOUT_TARGET
from workbench.tracking.ingest import Ingester, warm_points_path

LineCallback = Callable[[Channel, bytes], None]
GPU_SAMPLE_SECONDS = 5.0
WARM_AFTER = 0.05
"""A job still running after this many seconds may log metrics: what its first points need is then
imported on a thread of its own, beside the job, rather than when its first points arrive. A job
done sooner (``python -c pass``) never pays for it. ``WORKBENCH_WARM_METRICS_AFTER`` (seconds)
overrides it, for a runner that would rather not import numpy for jobs that log nothing."""


def side_channel(events: Path) -> SideChannel:
    """The run's events as an executor's side channel: the file ``events``, or marked stdout lines."""
    return SideChannel(env=ENV_EVENTS, path=events, on_stdout=STDOUT_TARGET, marker=MARKER_BYTES)


class Sampler:
    """Samples GPU utilisation and memory into ``system/gpuN_*`` metrics while the job runs.

    After :meth:`close` it adds nothing more: the run's last flush has every sample it will get.
    """

    def __init__(self, ingester: Ingester, gpus: Any) -> None:
        self.ingester = ingester
        self.gpus = gpus
        self.stop = threading.Event()
        self._adding = threading.Lock()
        self.step = 0
        self.thread = threading.Thread(target=self._loop, name="workbench-gpu-sampler", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            now = self.ingester.clock.now()
            try:
                samples = self.gpus.sample_gpus()
            except Exception:
                return
            with self._adding:
                if self.stop.is_set():
                    return
                for sample in samples:
                    index = sample.get("index", 0)
                    for field, key in (("utilisation", "utilisation"), ("memory_used", "memory_used")):
                        if field in sample:
                            self.ingester.add_points(
                                f"system/gpu{index}_{key}", [self.step], [sample[field]], [now]
                            )
            self.step += 1
            self.stop.wait(GPU_SAMPLE_SECONDS)

    def close(self) -> None:
        """Stop sampling; returns once no sample can reach the ingester any more (a driver call
        that hangs is left behind: its samples are dropped, never added)."""
        with self._adding:
            self.stop.set()


class Flusher:
    """Writes the ingester's buffer every quarter second even when the job is quiet.

    A flush that fails keeps its rows buffered (:meth:`Ingester.flush`) and is tried again; the
    run's final flush, after :meth:`close`, reports an error that persists.
    """

    def __init__(self, ingester: Ingester) -> None:
        self.ingester = ingester
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="workbench-ingest", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(0.25):
            try:
                self.ingester.maybe_flush()
            except Exception:
                pass  # still buffered: the next flush, or the run's last one, writes it

    def close(self) -> None:
        """Stop, and return only once no flush of this thread is running or can start: the caller
        then has the ingester's connection to itself."""
        self.stop.set()
        self.thread.join()


def follow(
    job: Job, ingester: Ingester, parser: capture.StdoutMetricParser | None, on_line: LineCallback | None,
    cancel_event: threading.Event | None, gpus: Any, workspace: str = "",
) -> JobExit:
    """Feed the job's lines to the ingester until it ends; Ctrl+C and ``cancel_event`` cancel it.
    ``workspace``: where the job saw the project (the executor's), "" for the project itself."""
    flusher = Flusher(ingester)
    sampler = Sampler(ingester, gpus) if gpus is not None else None
    watcher: threading.Thread | None = None
    done = threading.Event()
    threading.Thread(target=_warm_when_long, args=(done,), name="workbench-warm", daemon=True).start()
    if cancel_event is not None:
        def watch() -> None:
            while not done.is_set():
                if cancel_event.wait(0.2):
                    job.cancel()
                    return

        watcher = threading.Thread(target=watch, name="workbench-cancel-watch", daemon=True)
        watcher.start()
    interrupted = threading.Event()
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum: int, frame: Any) -> None:
            if interrupted.is_set():
                kill = getattr(job, "kill", None)
                if kill is not None:
                    kill()
                return
            interrupted.set()
            job.cancel()

        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        consume(job, ingester, parser, on_line, workspace)
        exit_: JobExit = job.wait()
    finally:
        done.set()
        flusher.close()
        if sampler is not None:
            sampler.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if interrupted.is_set():
            ingester.note("cancelled by the user (Ctrl+C)")
    if interrupted.is_set() and exit_.status != "cancelled":
        exit_ = JobExit(exit_.exit_code, "cancelled", exit_.reason or "cancelled")
    return exit_


def warm_after() -> float:
    """:data:`WARM_AFTER`, or ``WORKBENCH_WARM_METRICS_AFTER`` where that is a number of seconds."""
    import os

    try:
        return max(0.0, float(os.environ["WORKBENCH_WARM_METRICS_AFTER"]))
    except (KeyError, ValueError):
        return WARM_AFTER


def _warm_when_long(done: threading.Event) -> None:
    if not done.wait(warm_after()):
        warm_points_path()


def consume(
    job: Job, ingester: Ingester, parser: capture.StdoutMetricParser | None, on_line: LineCallback | None,
    workspace: str = "",
) -> None:
    """Every line of the job into the ingester (and ``on_line``), until the job's lines end. A
    stream that could not be read to its end is recorded on the run as lost (a note and a dropped
    event), so the record never reads as complete."""
    from workbench.executors.streams import StreamLost

    try:
        _consume(job, ingester, parser, on_line, workspace)
    except StreamLost as exc:
        for name, error in exc.lost:
            ingester.lost(f"could not read the job's {name} to its end ({type(error).__name__}: {error});"
                          " what followed is missing from this run")


def _consume(
    job: Job, ingester: Ingester, parser: capture.StdoutMetricParser | None, on_line: LineCallback | None,
    workspace: str,
) -> None:
    for channel, line in job.lines():
        if channel == "event":
            ingester.feed_line(relativise(line, workspace) if workspace else line)
            continue
        if on_line is not None:
            on_line(channel, line)
        now = ingester.clock.now()
        ingester.add_log(channel, line, now)
        if parser is not None and channel in ("stdout", "stderr"):
            text = line.decode("utf-8", errors="replace")
            if channel == "stderr" and not capture.stderr_may_hold_metrics(text):
                continue
            for key, value, step in parser.parse(text, strict=channel == "stderr"):
                try:
                    ingester.add_points(key, [step], [value], [now], parsed=True)
                except ValueError:
                    pass
        ingester.maybe_flush()
