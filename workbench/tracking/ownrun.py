"""A run of a plain ``python train.py`` that uses the tracking API outside ``workbench run``.

The first API call opens the enclosing project, snapshots it, creates a run owned by this process,
installs the same file-access audit hook that ``workbench run`` injects, and has the API's flusher
thread ingest the run's events file every half second. At exit (or ``workbench.finish()``) the rest
is ingested, the project snapshotted again, outputs and models recorded, and the run ended:
succeeded, failed (an uncaught exception) or cancelled (KeyboardInterrupt). If the process is
killed, the next reader of the store marks the run failed and ingests what the file holds. Metric
points skip the file: the API hands them to this run's ingester, which writes them every half
second like the rest.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from workbench.store.db import connect
from workbench.tracking.ids import new_run_id
from workbench.tracking.ingest import Ingester, ingest_events_file
from workbench.tracking.records import create_run, end_run
from workbench.tracking.run_paths import current_workdir

_TEES_KEPT_ALIVE: list[_Tee] = []
"""Every tee ever installed, for the life of the process. Another thread's ``print`` may still be
inside a tee when the run ends and puts the real stream back (Python 3.11's ``print`` holds the
stream it found in ``sys.stdout`` without a reference of its own): freeing the tee then would pull
the object out from under that thread (seen as a RecursionError, then a segmentation fault)."""


def _ignore_line(stream: str, line: str) -> None:
    """What a retired tee does with a line: the run it belonged to has ended."""


class _Tee(io.TextIOBase):
    """Writes through to the real stream and hands each complete line to the run's log (what
    ``workbench run`` records from the child's stdout/stderr; here only what Python itself writes
    through ``sys.stdout``/``sys.stderr``, print and logging included)."""

    def __init__(self, stream: TextIO, name: str, record: Callable[[str, str], None]) -> None:
        self.stream, self.name, self.record = stream, name, record
        self._partial = ""
        self._lock = threading.Lock()
        _TEES_KEPT_ALIVE.append(self)

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            record = self.record
        for line in lines:
            record(self.name, line.rstrip("\r"))
        return written

    def flush(self) -> None:
        self.stream.flush()

    def close_record(self) -> None:
        """Record the unfinished line, and no line after it (the tee stays a plain pass-through)."""
        with self._lock:
            rest, self._partial = self._partial, ""
            record, self.record = self.record, _ignore_line
        if rest:
            record(self.name, rest)

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding

    def __getattr__(self, name: str) -> Any:  # buffer, errors, reconfigure ... of the real stream
        if name == "stream":  # missing (not set yet): never look it up through itself
            raise AttributeError(name)
        return getattr(self.stream, name)


class OwnRun:
    """The bookkeeping of a script's own run."""

    def __init__(self) -> None:
        from workbench.versioning.versioned import VersionedProject

        self.ws = VersionedProject.open()
        self.root = self.ws.root
        self.run_id = new_run_id()
        run_dir = self.ws.paths.runs / self.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = run_dir / "events.jsonl"
        self.events_path.touch()
        self._lock = threading.Lock()
        """Held by each ingest and by :meth:`finish`: one thread at a time uses the connection."""
        self._finished = False
        self._offset = 0
        self._error: tuple[str, str] | None = None
        self._run: Any = None
        self._stop_hook: Callable[[], None] = lambda: None

    def start(self) -> None:
        from workbench.tracking import capture
        from workbench.tracking.finalize import snapshot_or_none

        config = self.ws.config.tracking
        self.before = snapshot_or_none(self.ws, "run-before", f"before run {self.run_id}")
        command = [sys.executable, *sys.argv]
        gpus: list[dict[str, Any]] = []
        try:
            from workbench.host.gpus import gpu_facts

            gpus = gpu_facts()
        except ImportError:
            pass
        create_run(
            self.ws.db, self.run_id, name="", command=command, source="api",
            workdir=current_workdir(self.root), snapshot_before=self.before,
            events_path=str(self.events_path), environment=capture.host_facts(self.root), gpus=gpus,
        )
        self.conn = connect(self.ws.paths.db)
        self.ingester = Ingester(self.conn, self.run_id, self.root)
        if config.capture_argv_params:
            for key, value in capture.params_from_argv(command).items():
                try:
                    self.ingester.add_param(key, value, "argv")
                except ValueError:
                    pass
        self.ingester.flush()
        from workbench.tracking._inject import sitecustomize

        if config.capture_file_access:
            self._stop_hook = sitecustomize.install_file_hook(str(self.events_path), str(self.root))
        self._env_thread = threading.Thread(
            target=self._report_environment, name="workbench-env", daemon=True
        )
        self._env_thread.start()
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        self._tees: list[_Tee] = []
        if config.capture_own_output:
            self._capture_output()

    def _capture_output(self) -> None:
        """Store what the script prints, as ``workbench run`` stores its command's output."""
        def record(stream: str, line: str) -> None:
            self.ingester.add_log(stream, line)

        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _Tee):
                tee = _Tee(stream, name, record)
                setattr(sys, name, tee)
                self._tees.append(tee)

    def _stop_capture(self) -> None:
        for tee in self._tees:
            tee.close_record()
            if getattr(sys, tee.name) is tee:
                setattr(sys, tee.name, tee.stream)
        self._tees = []

    def _report_environment(self) -> None:
        from workbench.tracking._inject.sitecustomize import ensure_user_cache_dir, environment_event

        try:
            data = environment_event(str(self.root), ensure_user_cache_dir())
            fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except Exception:
            pass

    def _excepthook(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            self._error = ("cancelled", "interrupted (KeyboardInterrupt)")
        else:
            self._error = ("failed", f"{kind.__name__}: {value}"[:500])
        self._previous_hook(kind, value, tb)

    def attach(self, run: Any) -> None:
        self._run = run

    def add_series(
        self, key: str, steps: Sequence[int], values: Sequence[float], times: Sequence[float]
    ) -> None:
        """Buffered points of one key, straight from the API (written by the next :meth:`ingest`)."""
        try:
            self.ingester.add_series(key, steps, values, times)
        except ValueError as exc:
            self.ingester.note(f"ignored points: {exc}")

    def ingest(self) -> None:
        """Ingest the complete lines written so far and the points handed over (called by the API's
        flusher thread)."""
        with self._lock:
            if not self._finished:
                self._ingest()

    def _ingest(self) -> None:
        self._offset = ingest_events_file(self.ingester, self.events_path, self._offset)
        self.ingester.flush()

    def finish(self, status: str | None) -> None:
        """End the run. The API's flusher thread and the script's threads (through the ingester)
        share the connection: it holds both locks for the whole of it, and ingests nothing after."""
        with self._lock, self.ingester.lock:
            self._finished = True
            self._finish(status)

    def _finish(self, status: str | None) -> None:
        from workbench.tracking.finalize import finalize_files, snapshot_or_none

        self._stop_hook()
        self._stop_capture()
        self._env_thread.join(10)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_hook
        self._ingest()
        after = snapshot_or_none(self.ws, "run-after", f"after run {self.run_id}")
        finalize_files(self.ws, self.conn, self.run_id, root=self.root, before=self.before, after=after,
                       models=self.ingester.models, note=self.ingester.note)
        self.ingester.flush()
        verdict, reason = self._error or (status or "succeeded", "")
        if verdict not in ("succeeded", "failed", "cancelled"):
            verdict = "succeeded"
        exit_code = {"succeeded": 0, "failed": 1, "cancelled": 130}[verdict]
        end_run(self.conn, self.run_id, status=verdict, exit_code=exit_code, reason=reason,
                snapshot_after=after, executor_info={"executor": "local", "pid": str(os.getpid())})
        self.conn.close()
        self.ws.close()


def start_own_run() -> OwnRun:
    """Open the enclosing project (NotAProjectError if none) and start this process's run."""
    run = OwnRun()
    run.start()
    return run


__all__ = ["OwnRun", "Path", "start_own_run"]
