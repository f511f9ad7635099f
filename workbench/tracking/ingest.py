"""The one ingester: wire-format events and output lines in, batched rows in SQLite out.

Every executor's lines go through an :class:`Ingester` bound to one run. Rows are kept in memory
and written by :meth:`Ingester.flush` in one short ``BEGIN IMMEDIATE`` transaction with
``executemany`` (so a training job never waits on SQLite, and concurrent runs only queue briefly on
the write lock). Metric points are kept as per-key chunks of parallel lists and streamed into
``executemany`` without building a tuple per point first. A step logged again replaces the
earlier point (the newest value wins) and is counted once: ``metric_keys.count`` is the number
of points stored. In the same transaction it merges the batch into the key's rollups
(:mod:`workbench.tracking.rollups`) and refreshes the run's summary row (params, tags and metric
summaries as JSON, what listings read). Bad input never raises: a malformed line, a non-numeric
metric value or an absurd key is skipped and noted in the run's log (stream ``workbench``), and
nothing already stored is lost. Every event line that could not be recorded (not an event, too
long, a corrupt packed series, a bad key, or a ``dropped`` event from a writer) is counted in
``runs.dropped_events``, added in the transaction of the next flush. A flush whose transaction
fails keeps every buffered row for the next one. Each use of the connection (a flush, a new metric
key) holds the ingester's lock, so the threads that feed one run may share it.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from workbench.clock import SYSTEM_CLOCK, Clock
from workbench.store.db import atomic
from workbench.tracking.events import MAX_TEXT, EventError, decode, unpack_series, valid_key
from workbench.tracking.records import refresh_summary
from workbench.tracking.redact import redact_param
from workbench.tracking.run_paths import model_path_refusal, relative_path

MAX_NOTES = 20
"""At most this many 'ignored ...' notes per run in its log, then one summary."""
MAX_STEP = 2**62
MAX_LOG_LINE = 64 * 1024
FLUSH_ROWS = 100_000
FLUSH_SECONDS = 0.25


def _is_number(value: object) -> bool:
    kind = type(value)
    return kind is float or kind is int


def warm_points_path() -> None:
    """Import what the first metric points need (numpy, zstandard, the block and rollup writers:
    about 0.1 s), so that it is not spent when the first points arrive. Safe on any thread: the
    import system's module locks make a concurrent import of the same module wait for this one."""
    try:
        import workbench.tracking.point_writes  # noqa: F401
    except Exception:  # the first points import it again and report what is wrong
        pass


class Ingester:
    """Buffers one run's events, log lines and metric points; writes them in batches."""

    def __init__(self, conn: sqlite3.Connection, run_id: str, root: Path,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.conn = conn
        self.clock = clock
        """Stamps points and log lines that arrive without a time of their own."""
        self.run_id = run_id
        self.root = root
        self._lock = threading.RLock()
        self._points: dict[int, list[tuple[Sequence[int], Sequence[float], Sequence[float]]]] = {}
        """key id -> chunks of (steps, times, values) waiting for the next flush."""
        self._open: dict[int, tuple[list[int], list[float], list[float]]] = {}
        """key id -> its last chunk if add_points made it: that key's next single points extend it."""
        self._point_count = 0
        self._summaries: dict[int, list[Any]] = {}
        """key id -> [last_step, last_value, last_time, min, max] of the waiting points."""
        self._logs: list[tuple[str, int, str, float, str]] = []
        self._params: dict[str, tuple[str, str]] = {}
        self._drop_argv: set[str] = set()
        """Params from the command's flags that an argparse parse replaced (deleted at the next flush)."""
        self._tags: dict[str, str] = {}
        self._files: dict[tuple[str, str], str] = {}
        self._env: dict[str, Any] = {}
        self._key_ids: dict[str, int] = {}
        self._parsed: set[str] = set()
        """Keys with points read from the job's output (``add_points(parsed=True)``) ..."""
        self._owned: set[str] = set()
        """... and keys with points from anywhere else (the tracking API, a library, a file)."""
        self._last_step: dict[int, int] = {}
        self._notes = 0
        self._last_flush = time.monotonic()
        self.models: list[dict[str, Any]] = []
        self.status: dict[str, Any] | None = None
        self._name = ""
        """A name the job gave itself, written at the next flush where the run has none."""
        self.bad_lines = 0
        """Event lines not recorded: malformed, or an event this ingester could not use."""
        self._dropped_unsaved = 0  # those (and 'dropped' events) not yet added to runs.dropped_events
        self.refused = 0
        self.points_written = 0
        row = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM run_logs WHERE run_id = ?", (run_id,)
        ).fetchone()
        self._seq = int(row[0])
        for key_id, key, last_step in conn.execute(
            "SELECT id, key, last_step FROM metric_keys WHERE run_id = ?", (run_id,)
        ):
            self._key_ids[key] = key_id
            self._last_step[key_id] = -1 if last_step is None else int(last_step)

    # -- feeding -------------------------------------------------------------------------------
    def feed_line(self, line: bytes | str) -> None:
        """One wire-format line (marker allowed)."""
        try:
            event = decode(line)
        except EventError as exc:
            with self._lock:
                self.bad_lines += 1
                self._dropped_unsaved += 1
            self.note(f"ignored malformed event line: {exc}")
            return
        self.feed_event(event)

    def feed_lines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            if line.strip():
                self.feed_line(line)

    def feed_event(self, event: dict[str, Any]) -> None:
        """One decoded event; unknown kinds are skipped quietly (newer writers)."""
        with self._lock:
            try:
                self._dispatch(event)
            except (TypeError, ValueError, OverflowError) as exc:
                self.bad_lines += 1
                self._dropped_unsaved += 1
                self.note(f"ignored bad {event.get('e')!s:.20} event: {exc}")

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["e"]
        if kind == "series" and "sb" in event:
            try:
                steps_, values_, times_ = unpack_series(event)
            except EventError as exc:
                raise ValueError(str(exc)) from None
            self.add_series(event.get("k"), steps_, values_, times_)
        elif kind == "series":
            key, steps, values = event.get("k"), event.get("s"), event.get("v")
            times = event.get("t")
            if not isinstance(values, list):
                raise ValueError("series needs a list 'v'")
            count = len(values)
            if not isinstance(steps, list) or len(steps) != count:
                steps = [None] * count
            if not isinstance(times, list) or len(times) != count:
                times = [self.clock.now()] * count
            self.add_points(key, steps, values, times)
        elif kind == "metric":
            self.add_points(event.get("k"), [event.get("s")], [event.get("v")], [event.get("t")])
        elif kind == "metrics":
            values = event.get("v")
            if not isinstance(values, dict):
                raise ValueError("metrics needs an object 'v'")
            for key, value in values.items():
                self.add_points(key, [event.get("s")], [value], [event.get("t")])
        elif kind == "param":
            self.add_param(event.get("k"), event.get("v"), "api")
        elif kind == "params":
            values = event.get("v")
            if not isinstance(values, dict):
                raise ValueError("params needs an object 'v'")
            for key, value in values.items():
                self.add_param(key, value, "api")
        elif kind == "argparse":
            self._add_argparse(event)
        elif kind == "tag":
            self.add_tag(event.get("k"), event.get("v"))
        elif kind == "name":
            self._name = " ".join(str(event.get("v") or "").split())[:200]
        elif kind in ("input", "output"):
            path = event.get("path")
            if not isinstance(path, str) or not path or "\x00" in path:
                raise ValueError("needs a 'path'")
            source = event.get("src") if event.get("src") in ("api", "audit", "executor") else "api"
            self.add_file(kind, path, str(source))
        elif kind == "model":
            path = event.get("path")
            if not isinstance(path, str) or not path or "\x00" in path:
                raise ValueError("model needs a 'path'")
            rel = relative_path(path, self.root)
            why = model_path_refusal(rel)
            if rel is None or why:
                self.refuse("model", path, why or "inside .workbench/")
                return
            self.models.append({
                "path": rel,
                "name": str(event.get("name") or ""),
                "framework": str(event.get("framework") or ""),
                "framework_version": str(event.get("framework_version") or ""),
            })
            self._files[("output", rel)] = "api"
        elif kind == "env":
            values = event.get("v")
            if isinstance(values, dict):
                packages, known = values.get("packages"), self._env.get("packages")
                self._env.update(values)
                if isinstance(packages, dict) and isinstance(known, dict):
                    self._env["packages"] = {**known, **packages}
        elif kind == "status":
            self.status = {k: event.get(k) for k in ("status", "exit_code", "reason")}
        elif kind == "dropped":
            self._dropped_unsaved += 1
            self.note(f"lost an event the job could not send: kind {event.get('kind')!s:.40},"
                      f" {event.get('bytes')!s:.20} bytes (over the line bound)")
        elif kind == "refused":  # a remote job's path that its executor refused (confine.relativise)
            self.refuse(str(event.get("kind")), str(event.get("path")), str(event.get("reason")))

    def add_points(
        self, key: object, steps: Sequence[object], values: Sequence[object], times: Sequence[object],
        *, parsed: bool = False,
    ) -> None:
        """Metric points of one key; bad values are skipped with a note, NaN/inf kept. ``parsed``:
        read from the job's output (see :meth:`replaces_parsed`)."""
        if not valid_key(key):
            raise ValueError(f"bad metric key {str(key)[:40]!r}")
        assert isinstance(key, str)
        (self._parsed if parsed else self._owned).add(key)
        key_id = self._key_id(key)
        bad = 0
        now = self.clock.now()
        with self._lock:
            last = self._last_step.get(key_id, -1)
            out_steps: list[int] = []
            out_times: list[float] = []
            out_values: list[float] = []
            for step, value, when in zip(steps, values, times, strict=False):
                if not _is_number(value):
                    bad += 1
                    continue
                if type(step) is not int:
                    step = int(step) if type(step) is float and step.is_integer() else last + 1
                if not -MAX_STEP < step < MAX_STEP:
                    bad += 1
                    continue
                if type(when) is not float:
                    when = float(when) if type(when) is int else now
                out_steps.append(step)
                out_values.append(float(value))  # type: ignore[arg-type]
                out_times.append(when)
                if step > last:
                    last = step
            self._last_step[key_id] = last
            if out_steps:
                self._queue_points(key_id, out_steps, out_times, out_values, max(out_steps), own=True)
        if bad:
            self.note(f"ignored {bad} non-numeric or out-of-range value(s) of metric {key!r}")
        if self._point_count >= FLUSH_ROWS:
            self.flush()

    def add_series(
        self, key: object, steps: Sequence[int], values: Sequence[float], times: Sequence[float]
    ) -> None:
        """A clean batch of one key (int steps, float values and times, as a packed series carries):
        taken as numpy arrays (no copy of an ``array`` or numpy buffer), no per-point Python work."""
        if not valid_key(key):
            raise ValueError(f"bad metric key {str(key)[:40]!r}")
        assert isinstance(key, str)
        import numpy as np  # on the first points: a run that logs none never imports numpy

        step_array = np.asarray(steps, dtype=np.int64)
        value_array = np.asarray(values, dtype=np.float64)
        time_array = np.asarray(times, dtype=np.float64)
        count = len(step_array)
        if not count:
            return
        if len(value_array) != count or len(time_array) != count:
            raise ValueError(f"series of metric {key!r} has lists of different lengths")
        high = int(step_array.max())
        if int(step_array.min()) <= -MAX_STEP or high >= MAX_STEP:
            raise ValueError(f"step out of range in metric {key!r}")
        self._owned.add(key)
        key_id = self._key_id(key)
        with self._lock:
            self._queue_points(key_id, step_array, time_array, value_array, high)  # type: ignore[arg-type]
            self._last_step[key_id] = max(self._last_step.get(key_id, -1), high)
        if self._point_count >= FLUSH_ROWS:
            self.flush()

    def _queue_points(self, key_id: int, steps: Sequence[int], times: Sequence[float],
                      values: Sequence[float], high: int, own: bool = False) -> None:
        """Queue one chunk (``high``: its largest step) and fold it into the key's waiting summary
        (the caller holds the lock). ``own``: the lists are the ingester's, free to extend;
        otherwise numpy arrays."""
        count = len(steps)
        chunks = self._points.setdefault(key_id, [])
        open_chunk = self._open.get(key_id) if own else None
        if open_chunk is not None and chunks and chunks[-1] is open_chunk:
            for part, more in zip(open_chunk, (steps, times, values), strict=True):
                part.extend(more)  # type: ignore[attr-defined]
        else:
            chunk = (steps, times, values)
            chunks.append(chunk)
            if own:
                self._open[key_id] = chunk  # type: ignore[assignment]
            else:
                self._open.pop(key_id, None)
        self._point_count += count
        lo: float | None
        hi: float | None
        if own:
            last = count - 1 - list(reversed(steps)).index(high) if steps[-1] != high else count - 1
            finite = [v for v in values if v == v] if any(map(math.isnan, values)) else values
            lo, hi = (min(finite), max(finite)) if finite else (None, None)
            last_value, last_time = values[last], times[last]
        else:
            import numpy as np

            step_array, value_array = np.asarray(steps), np.asarray(values)
            last = count - 1
            if step_array[-1] != high:
                last -= int(np.argmax(step_array[::-1] == high))
            with np.errstate(invalid="ignore"):
                lo, hi = float(np.fmin.reduce(value_array)), float(np.fmax.reduce(value_array))
            lo, hi = (None, None) if lo != lo else (lo, hi)  # fmin/fmax skip NaN: NaN = no finite value
            last_value, last_time = float(value_array[last]), float(np.asarray(times)[last])
        summary = self._summaries.get(key_id)
        if summary is None:
            summary = self._summaries[key_id] = [None, None, None, None, None]
        if summary[0] is None or high >= summary[0]:
            summary[0], summary[1], summary[2] = high, last_value, last_time
        if lo is not None:
            summary[3] = lo if summary[3] is None else min(summary[3], lo)
            summary[4] = hi if summary[4] is None else max(summary[4], hi)

    def parsed_only(self) -> set[str]:
        """Keys whose every point was read from the job's output."""
        return self._parsed - self._owned

    def replaces_parsed(self, key: str, by: str) -> bool:
        """Before a library's own series of ``key`` is added (TensorBoard, MLflow, DVCLive, a
        metrics file): drop the points of ``key`` that were only read from the job's output (a
        progress bar's ``train_loss`` at each epoch, beside the library's at every step), so the
        key holds one series, not two merged; a note names ``by``. False (nothing dropped) when the
        key also has points of any other source, or none read from the output."""
        if key not in self._parsed or key in self._owned:
            return False
        self.flush()
        from workbench.tracking.rollups import delete_points

        with self._lock:
            key_id = self._key_ids.pop(key, None)
            self._parsed.discard(key)
            if key_id is None:
                return False
            for table in (self._last_step, self._points, self._open, self._summaries):
                table.pop(key_id, None)
            with atomic(self.conn):
                delete_points(self.conn, [key_id])
                self.conn.execute("DELETE FROM metric_keys WHERE id = ?", (key_id,))
        self.note(f"metric {key}: the series {by} recorded replaces the one read from the output")
        return True

    def add_param(self, key: object, value: object, source: str) -> None:
        if not valid_key(key):
            raise ValueError(f"bad param key {str(key)[:40]!r}")
        if not isinstance(value, str | int | float | bool) and value is not None:
            value = str(value)
        value = redact_param(str(key), value)  # every source of params passes here
        text = json.dumps(value, allow_nan=True)
        if len(text) > MAX_TEXT:
            text = json.dumps(text[:MAX_TEXT])
        with self._lock:
            self._params[str(key)] = (text, source)

    def _add_argparse(self, event: dict[str, Any]) -> None:
        """A parsed argparse namespace: each dest a param, source ``argparse`` where the command
        line gave it, ``argparse-default`` where it defaulted. Params taken from the command's flags
        under the parser's flag names give way (``--batch-size`` is the dest ``batch_size``)."""
        values, given, flags = event.get("v"), event.get("given"), event.get("flags")
        if not isinstance(values, dict):
            raise ValueError("argparse needs an object 'v'")
        given_set = {g for g in given if isinstance(g, str)} if isinstance(given, list) else set()
        with self._lock:
            for flag in flags if isinstance(flags, list) else ():
                if isinstance(flag, str) and flag not in values:
                    self._drop_argv.add(flag)
                    if self._params.get(flag, ("", ""))[1] == "argv":
                        del self._params[flag]
            for key, value in values.items():
                self.add_param(key, value, "argparse" if key in given_set else "argparse-default")

    def add_tag(self, key: object, value: object) -> None:
        if not valid_key(key):
            raise ValueError(f"bad tag key {str(key)[:40]!r}")
        with self._lock:
            self._tags[str(key)] = str(value if value is not None else "")[:MAX_TEXT]

    def add_file(self, direction: str, path: str, source: str) -> None:
        rel = relative_path(path, self.root)
        if rel is None:
            return
        with self._lock:
            self._files.setdefault((direction, rel), source)

    def refuse(self, kind: str, path: str, reason: str) -> None:
        """Record a path the boundary refused on the run (table ``run_refusals``) and in its log."""
        from workbench.tracking import refusals

        with self._lock:
            self.refused += 1
            kept = refusals.record(self.conn, self.run_id, kind, path, reason)
        if kept:
            self.add_log("workbench", f"refused {kind[:40]} path {path[:200]!r}: {reason}")

    def add_log(self, stream: str, line: bytes | str, when: float | None = None) -> None:
        """One output line; undecodable bytes are replaced, very long lines cut."""
        if isinstance(line, bytes):
            text = line[:MAX_LOG_LINE].decode("utf-8", errors="replace")
        else:
            text = line[:MAX_LOG_LINE]
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")
        with self._lock:
            self._seq += 1
            self._logs.append((self.run_id, self._seq, stream, when or self.clock.now(), text))

    def lost(self, message: str) -> None:
        """Output or events the run could not read (a reader that died): counted with the dropped
        event lines (``runs.dropped_events``) and said in the run's log, never suppressed."""
        with self._lock:
            self._dropped_unsaved += 1
            self.add_log("workbench", message[:MAX_TEXT])

    def note(self, message: str) -> None:
        """A line of our own in the run's log (stream ``workbench``)."""
        self._notes += 1
        if self._notes <= MAX_NOTES:
            self.add_log("workbench", message)
        elif self._notes == MAX_NOTES + 1:
            self.add_log("workbench", "further notes about ignored input suppressed")

    def _key_id(self, key: str) -> int:
        key_id = self._key_ids.get(key)
        if key_id is not None:
            return key_id
        with self._lock:  # every use of the connection holds the lock: the threads feeding one run share it
            key_id = self._key_ids.get(key)
            if key_id is not None:
                return key_id
            with atomic(self.conn) as db:
                db.execute("INSERT OR IGNORE INTO metric_keys (run_id, key) VALUES (?, ?)",
                           (self.run_id, key))
                row = db.execute(
                    "SELECT id, last_step FROM metric_keys WHERE run_id = ? AND key = ?", (self.run_id, key)
                ).fetchone()
            key_id = int(row[0])
            self._key_ids[key] = key_id
            self._last_step[key_id] = -1 if row[1] is None else int(row[1])
            return key_id

    @property
    def lock(self) -> threading.RLock:
        """Held by every use of the run's connection from here (each flush, each new metric key):
        a caller that uses the same connection itself holds it meanwhile."""
        return self._lock

    # -- writing -------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return (self._point_count + len(self._logs) + len(self._params) + len(self._files)
                + self._dropped_unsaved)

    def maybe_flush(self) -> None:
        """Flush when enough rows are waiting or enough time has passed."""
        if self.pending and (
            self._point_count >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        ):
            self.flush()

    def flush(self, events_offset: int | None = None) -> int:
        """Write everything buffered in one transaction; returns the number of metric points.

        The buffers are emptied only once the transaction has committed (the lock is held
        throughout, so nothing arrives meanwhile): a flush that fails (the database locked past
        the busy timeout, a full disk) raises with everything still buffered, for the next one.
        """
        with self._lock:
            self._last_flush = time.monotonic()
            points, point_count, summaries = self._points, self._point_count, self._summaries
            logs, params, dropped_argv = self._logs, self._params, self._drop_argv
            tags, files, env = self._tags, self._files, self._env
            dropped, name = self._dropped_unsaved, self._name
            if not (points or logs or params or dropped_argv or tags or files or env or dropped or name
                    or events_offset is not None):
                return 0
            run_id = self.run_id
            with atomic(self.conn) as db:
                if points:
                    from workbench.tracking.point_writes import EXACT_RANGE_SQL, SUMMARY_SQL, insert_points

                    added = {key_id: insert_points(db, key_id, chunks) for key_id, chunks in points.items()}
                    db.executemany(SUMMARY_SQL, [
                        (added[k][0], step, value, step, when, step, step, lo, lo, lo, hi, hi, hi, k)
                        for k, (step, value, when, lo, hi) in summaries.items()
                    ])
                    # A replaced point may have been the min or max: take them from the rebuilt rollups.
                    replaced = [(k, k, k) for k, (_, again) in added.items() if again]
                    db.executemany(EXACT_RANGE_SQL, replaced)
                if logs:
                    db.executemany("INSERT OR REPLACE INTO run_logs VALUES (?, ?, ?, ?, ?)", logs)
                if dropped_argv:
                    db.executemany("DELETE FROM run_params WHERE run_id = ? AND key = ? AND source = 'argv'",
                                   [(run_id, key) for key in sorted(dropped_argv)])
                if params:
                    db.executemany(
                        "INSERT OR REPLACE INTO run_params (run_id, key, value, source) VALUES (?, ?, ?, ?)",
                        [(run_id, k, v, s) for k, (v, s) in params.items()],
                    )
                if tags:
                    db.executemany(
                        "INSERT OR REPLACE INTO run_tags (run_id, key, value) VALUES (?, ?, ?)",
                        [(run_id, k, v) for k, v in tags.items()],
                    )
                if files:
                    db.executemany(
                        "INSERT OR IGNORE INTO run_files (run_id, direction, path, source)"
                        " VALUES (?, ?, ?, ?)",
                        [(run_id, d, p, s) for (d, p), s in files.items()],
                    )
                if env:
                    db.execute(
                        "UPDATE runs SET environment = json_patch(environment, ?) WHERE id = ?",
                        (json.dumps(env, default=str), run_id),
                    )
                if events_offset is not None:
                    db.execute("UPDATE runs SET events_offset = ? WHERE id = ?", (events_offset, run_id))
                if dropped:
                    db.execute("UPDATE runs SET dropped_events = dropped_events + ? WHERE id = ?",
                               (dropped, run_id))
                if name:  # a name given on the command line (run -n) wins
                    db.execute("UPDATE runs SET name = ? WHERE id = ? AND name = ''", (name, run_id))
                if points or params or dropped_argv or tags:
                    refresh_summary(db, run_id)
            self._points, self._point_count, self._summaries = {}, 0, {}
            self._open.clear()
            self._logs, self._params, self._drop_argv = [], {}, set()
            self._tags, self._files, self._env = {}, {}, {}
            self._dropped_unsaved, self._name = 0, ""
            self.points_written += point_count
            return point_count


def ingest_events_file(ingester: Ingester, path: Path, offset: int) -> int:
    """Ingest complete lines of an events file from ``offset``; returns the new offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return offset
    end = data.rfind(b"\n")
    if end < 0:
        return offset
    for line in data[: end + 1].split(b"\n"):
        if line.strip():
            ingester.feed_line(line)
    new_offset = offset + end + 1
    ingester.flush(events_offset=new_offset)
    return new_offset
