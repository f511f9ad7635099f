"""The tracking API used inside training scripts (``import workbench``).

Under ``workbench run`` the runner sets ``WORKBENCH_EVENTS``; the API appends wire-format lines (see
:mod:`workbench.tracking.events`) to that file and the runner ingests them. In a plain
``python train.py`` inside a project, the first call starts a run of the script's own: its events go
to a file under ``.workbench/runs/<id>/`` that a background thread ingests every second, and the run
is finished when the interpreter exits (or at :func:`finish`). Outside any project the calls do
nothing but warn once.

:func:`log_metric` only extends the key's buffer by one (step, value, time) tuple, without a lock
(under a microsecond): a :class:`~workbench.tracking._pointbuf.PointBuffer` (C arrays, no Python
object kept per point, taken by the drain as three byte strings) where the optional compiled
module was built, else a flat Python list. A daemon thread turns the buffers into packed ``series``
lines (each within the wire format's line bound, so a burst of a million points of one key goes out
as about 125 lines) five times a second, and at once when a key holds a full line under ``workbench
run`` (the runner then ingests a fast logger's points on another core while it logs); the rest is
written at exit. No call ever waits on SQLite. Long param and tag values are cut to what the store
keeps before they are sent.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import warnings
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.tracking.events import (
    ENV_EVENTS,
    ENV_PROJECT,
    ENV_RUN_ID,
    MAX_TEXT,
    STDOUT_TARGET,
    bounded_key,
    encode_bounded,
    series_lines,
)

FLUSH_INTERVAL = 0.2
"""The longest a buffered point waits for its drain."""
BURST_CHECK = 0.05
"""How often the flusher looks for a burst: a key holding a full ``series`` line's worth of points
(:data:`BURST_POINTS`) is drained at once, so a fast logger's points stream to the runner while it
logs rather than in fifths of a second (the runner ingests them meanwhile, on another core)."""
BURST_POINTS = 8192
_time = time.time

try:  # the compiled buffer (setup.py builds it where a C compiler is found); else a flat list
    from workbench.tracking._pointbuf import PointBuffer
except ImportError:  # pragma: no cover - depends on the build
    PointBuffer = None  # type: ignore[assignment,misc]
_PURE = bool(os.environ.get("WORKBENCH_PURE_PYTHON"))
_BUFFER: Any = PointBuffer if PointBuffer is not None and not _PURE else list
"""The type of a key's new point buffer: ``PointBuffer`` or ``list`` (``WORKBENCH_PURE_PYTHON=1``)."""


@dataclass
class ActiveRun:
    """The run this process reports to."""

    id: str
    project: str
    events_path: str
    own: bool
    """True when this process started the run itself (no ``workbench run`` around it)."""
    series: dict[str, Any] = field(default_factory=dict)
    """Buffered points per key: a ``PointBuffer``, or a flat list (step, value, time, step, ...).
    Each point is added by one ``extend`` of a 3-tuple, which is atomic under the GIL, so the hot
    path takes no lock: the drain takes every point of a ``PointBuffer`` at once (one C call), or
    copies and deletes a whole number of points from the front of a list."""
    overflowed: list[str] = field(default_factory=list)
    """Keys of points a ``PointBuffer`` refused (a step outside int64): one ``dropped`` event each."""
    steps: dict[str, int] = field(default_factory=dict)
    """The next automatic step of each key."""
    finished: bool = False
    _fd: int = -1
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    _owner: Any = None
    _unsent: bytes = b""
    """Event lines a failed write could not deliver, written first at the next flush."""
    _cut: bool = False
    """A write to stdout failed part-way: the next one starts by ending the cut line."""

    # -- writing events ------------------------------------------------------------------------
    def write_lines(self, data: bytes) -> None:
        if not data:
            return
        if self.events_path == STDOUT_TARGET:
            from workbench.tracking.events import MARKER_BYTES
            from workbench.tracking.stdout_lock import write_marked

            # after a failed write a line may be cut: end it, so the reader drops it whole
            lead, self._cut = (b"\n" if self._cut else b""), True
            write_marked(lead + b"".join(MARKER_BYTES + line + b"\n" for line in data.splitlines() if line))
            self._cut = False
            return
        if self._fd < 0:
            self._fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except BaseException:
            self._unsent = bytes(view)  # exactly what did not reach the file
            raise

    def emit(self, event: dict[str, Any]) -> None:
        """Write one non-metric event now (metrics keep order: flush them first)."""
        with self._write_lock:
            self._write_or_keep(self._drain_points() + encode_bounded(event))

    def _write_or_keep(self, data: bytes) -> None:
        """Write ``data`` after anything a failed write left; on failure keep what was not written
        for the next flush, so drained points are never dropped (to a file: exactly the bytes that
        did not land; to stdout, where that is unknown: all of it again, after ending the cut line,
        which the reader skips; a line sent twice is harmless, a repeated step replaces the point)."""
        data, self._unsent = self._unsent + data, b""
        try:
            self.write_lines(data)
        except BaseException:
            if self.events_path == STDOUT_TARGET:
                self._unsent = data  # sent again whole after the cut line's end
            raise

    def _drain_points(self) -> bytes:
        """Take the buffered points as packed ``series`` lines within the line bound; a script's own
        run hands them straight to its ingester instead (no trip through the file). The caller
        holds ``_write_lock`` (one drain at a time)."""
        out: list[bytes] = []
        if self.overflowed:
            refused = len(self.overflowed)
            del self.overflowed[:refused]
            out.extend(encode_bounded({"e": "dropped", "kind": "metric", "bytes": 0}) for _ in range(refused))
        for key, buffer in list(self.series.items()):  # one C call: safe beside a logging thread
            if type(buffer) is not list:  # a PointBuffer: every point at once, already packed
                if not len(buffer):
                    continue
                raw_steps, raw_values, raw_times = buffer.take()
                steps, values, times = array("q"), array("d"), array("d")
                steps.frombytes(raw_steps)
                values.frombytes(raw_values)
                times.frombytes(raw_times)
            else:
                count = len(buffer) // 3 * 3
                if not count:
                    continue
                taken = buffer[:count]  # each a single operation under the GIL; points are appended
                del buffer[:count]      # at the end meanwhile, whole
                steps, values, times = _arrays(key, taken)
                if len(steps) < count // 3:  # counted on the run as a dropped event
                    out.append(encode_bounded({"e": "dropped", "kind": "metric", "bytes": 0}))
                if not len(steps):
                    continue
            if self._owner is not None:
                self._owner.add_series(key, steps, values, times)
            else:
                out.extend(series_lines(key, steps, values, times))
        return b"".join(out)

    def flush(self) -> None:
        """Write buffered metric points as ``series`` lines."""
        with self._write_lock:
            self._write_or_keep(self._drain_points())

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_run: ActiveRun | None = None
_start_lock = threading.Lock()
_warned = False


def _ensure() -> ActiveRun | None:
    global _run, _warned
    with _start_lock:
        if _run is not None and not _run.finished:
            return _run
        events = os.environ.get(ENV_EVENTS)
        if events:
            _run = ActiveRun(
                id=os.environ.get(ENV_RUN_ID, ""), project=os.environ.get(ENV_PROJECT, ""),
                events_path=events, own=False,
            )
            if events == STDOUT_TARGET:  # the script's prints and the flusher's lines share one pipe
                from workbench.tracking.stdout_lock import lock_stdout

                lock_stdout()
        else:
            from workbench.errors import NotAProjectError

            try:
                from workbench.tracking.ownrun import start_own_run

                owner = start_own_run()
            except NotAProjectError:
                if not _warned:
                    _warned = True
                    warnings.warn(
                        "workbench: not inside a project (no .workbench/ here or above); "
                        "tracking calls are ignored. Run 'workbench init' in the project folder.",
                        stacklevel=3,
                    )
                return None
            _run = ActiveRun(
                id=owner.run_id, project=str(owner.root), events_path=str(owner.events_path), own=True,
            )
            _run._owner = owner
            owner.attach(_run)
            _finish_before_thread_shutdown()
        _start_flusher()
        return _run


_flusher: threading.Thread | None = None
_flush_warned = False


def _start_flusher() -> None:
    global _flusher
    if _flusher is not None and _flusher.is_alive():
        return

    def loop() -> None:
        last = time.monotonic()
        while True:
            time.sleep(BURST_CHECK)
            run = _run
            if run is None or run.finished:
                continue
            if time.monotonic() - last < FLUSH_INTERVAL and not _burst(run):
                continue
            last = time.monotonic()
            try:
                run.flush()
                if run._owner is not None:
                    run._owner.ingest()
            except Exception as exc:  # kept for the next flush; say so once
                global _flush_warned
                if not _flush_warned:
                    _flush_warned = True
                    sys.stderr.write(f"workbench: writing metric events failed, will retry: {exc!r}\n")

    _flusher = threading.Thread(target=loop, name="workbench-flush", daemon=True)
    _flusher.start()


def _burst(run: ActiveRun) -> bool:
    """Whether some key holds a full line's worth of points (a list holds three items a point), in
    a run whose points go to a runner (a script's own run ingests them in this process: no gain)."""
    return run._owner is None and any(
        len(buffer) >= (3 * BURST_POINTS if type(buffer) is list else BURST_POINTS)
        for buffer in list(run.series.values()))


def _after_fork() -> None:
    # A forked worker must not write the parent's buffered points a second time.
    global _run, _flusher
    _run = None
    _flusher = None


os.register_at_fork(after_in_child=_after_fork)


def _number(key: str, value: Any) -> float:
    if isinstance(value, str | bytes) or value is None:
        raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}") from None


# -- the public API ------------------------------------------------------------------------------
def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record one point of metric ``key`` (NaN and infinities allowed); ``step`` defaults to the
    key's previous step plus one."""
    run = _run
    if run is None or run.finished:
        run = _ensure()
        if run is None:
            return
    if type(value) is not float:
        value = _number(key, value)
    if step is None:
        step = run.steps.get(key, 0)
    elif type(step) is not int:
        step = int(step)
    buffer = run.series.get(key)
    if buffer is None:
        buffer = run.series.setdefault(key, _BUFFER())
    try:
        buffer.extend((step, value, _time()))  # atomic: the drain never sees part of a point
    except OverflowError:  # a PointBuffer's step outside int64 (a list's is dropped at the drain)
        _refuse_point(run, key)
    run.steps[key] = step + 1


def _refuse_point(run: ActiveRun, key: str) -> None:
    run.overflowed.append(key)
    warnings.warn(f"workbench: dropped 1 point(s) of metric {key!r} with a step outside 64-bit integers",
                  stacklevel=3)


def _arrays(key: str, flat: list[Any]) -> tuple[array[int], array[float], array[float]]:
    """Steps, values and times of a flat buffer; a step outside int64 drops only its own point."""
    try:
        return array("q", flat[0::3]), array("d", flat[1::3]), array("d", flat[2::3])
    except OverflowError:
        kept = [(s, v, t) for s, v, t in zip(flat[0::3], flat[1::3], flat[2::3], strict=True)
                if -(2**63) <= s < 2**63]
        warnings.warn(f"workbench: dropped {len(flat) // 3 - len(kept)} point(s) of metric {key!r}"
                      " with a step outside 64-bit integers", stacklevel=2)
        return (array("q", (p[0] for p in kept)), array("d", (p[1] for p in kept)),
                array("d", (p[2] for p in kept)))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Record several metrics at one step."""
    for key, value in metrics.items():
        log_metric(key, value, step)


def log(data: Mapping[str, float], step: int | None = None) -> None:
    """W&B-style: ``workbench.log({"loss": 0.3, "acc": 0.9}, step=5)``."""
    log_metrics(data, step)


def log_param(key: str, value: Any) -> None:
    """Record one hyperparameter (a number, string, bool or None; anything else as its str)."""
    run = _ensure()
    if run is not None:
        if not isinstance(value, str | int | float | bool) and value is not None:
            value = str(value)
        if isinstance(value, str) and len(value) > 2 * MAX_TEXT:
            value = value[:2 * MAX_TEXT]  # the store keeps the first MAX_TEXT characters of its JSON
        run.emit({"e": "param", "k": bounded_key(str(key)), "v": value})


def log_params(params: Mapping[str, Any]) -> None:
    """Record several hyperparameters."""
    for key, value in params.items():
        log_param(key, value)


def set_tag(key: str, value: str) -> None:
    """Attach a tag to the run."""
    run = _ensure()
    if run is not None:
        run.emit({"e": "tag", "k": bounded_key(str(key)), "v": str(value)[:MAX_TEXT]})


def input(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Declare a file or folder the run reads; returns ``path`` so it can wrap an ``open``."""
    run = _ensure()
    if run is not None:
        run.emit({"e": "input", "path": os.path.abspath(os.fspath(path)), "src": "api"})
    return path


def output(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Declare a file the run writes; returns ``path``."""
    run = _ensure()
    if run is not None:
        run.emit({"e": "output", "path": os.path.abspath(os.fspath(path)), "src": "api"})
    return path


def log_model(
    path: str | os.PathLike[str], name: str | None = None, framework: str | None = None,
    framework_version: str | None = None,
) -> None:
    """Register a saved model file as a new version of model ``name`` (default: the file's stem)."""
    run = _ensure()
    if run is not None:
        run.emit({
            "e": "model", "path": os.path.abspath(os.fspath(path)), "name": name or "",
            "framework": framework or "", "framework_version": framework_version or "",
        })


def init(name: str | None = None, tags: Mapping[str, str] | None = None,
         params: Mapping[str, Any] | None = None) -> ActiveRun | None:
    """Start (or join) this process's run now, optionally naming and tagging it. Optional: any API
    call starts the run. A script's own run (plain ``python train.py``) takes the name; under
    ``workbench run`` the name applies where ``-n`` gave none. Returns the run (None outside a
    project)."""
    run = _ensure()
    if run is None:
        return None
    if name:
        run.emit({"e": "name", "v": str(name)})
    for key, value in (tags or {}).items():
        set_tag(key, value)
    if params:
        log_params(params)
    return run


def active_run() -> ActiveRun | None:
    """The run this process reports to, if one has started (``None`` before the first call)."""
    run = _run
    if run is None and os.environ.get(ENV_EVENTS):
        run = _ensure()
    return run if run is not None and not run.finished else None


def finish(status: str | None = None) -> None:
    """Write everything buffered now. For a script's own run, also end the run (``status`` defaults
    to succeeded); the next API call then starts a new run."""
    global _run
    run = _run
    if run is None or run.finished:
        return
    run.close()
    if run._owner is not None:
        run.finished = True
        run._owner.finish(status)
        _run = None


def _at_exit() -> None:
    run = _run
    if run is None or run.finished:
        return
    try:
        if run._owner is not None:
            finish()
        else:
            run.close()
    except Exception as exc:  # never turn a finished script into a crash at exit
        sys.stderr.write(f"workbench: could not finish the run: {exc!r}\n")


def _finish_before_thread_shutdown() -> None:
    """Finish an own run while threads still work: the store's snapshot uses a thread pool, and
    ``concurrent.futures`` refuses new work once the interpreter's atexit stage has begun."""
    import concurrent.futures.thread  # noqa: F401 - registers its own exit hook first

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_at_exit)
        except RuntimeError:
            pass


atexit.register(_at_exit)
