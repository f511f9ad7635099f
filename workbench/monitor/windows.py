"""Fold predictions into mergeable buckets once, then sum buckets into windows.

:func:`fold` reads only predictions newer than the deployment's cursor (``monitor_cursors``), counts
each row on its model version's reference bins (:mod:`workbench.monitor.profile`) and adds the counts
to buckets of at most :data:`GRAIN` rows that never cross a minute boundary (``monitor_buckets``).
A window of ``1000`` predictions (the latest 1000, then the 1000 before...) or of ``1h`` (aligned
to the hour) is then a sum of buckets: monitoring a year of traffic never rescans raw predictions.
Count windows are exact to a bucket (a window holds at least N rows, at most N + GRAIN - 1).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import UsageError
from workbench.monitor.extract import read_rows
from workbench.monitor.labels import confidence, parse_output, predicted_value
from workbench.monitor.profile import NUMBER, Profile, fold_by_group
from workbench.store.db import atomic

GRAIN = 100
"""Most rows in one bucket: the resolution of count windows."""
SPAN = 50_000
"""Prediction ids scanned per transaction while folding (keeps the write lock short)."""
_UNITS = {"": 0, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WindowSpec:
    """``1000`` (a count of predictions) or ``1h`` (a time span, a whole number of minutes)."""

    kind: str  # count | time
    size: int  # rows, or seconds
    text: str


def parse_window(text: str) -> WindowSpec:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(text))
    if not match or int(match.group(1)) <= 0:
        raise UsageError(f"bad window {text!r}", "give a count of predictions (1000) or a span (30m, 1h, 1d)")
    number, unit = int(match.group(1)), match.group(2)
    if not unit:
        return WindowSpec("count", number, f"{number}")
    seconds = number * _UNITS[unit]
    if seconds % 60:
        raise UsageError(f"bad window {text!r}", "time windows are whole minutes (60s, 5m, 1h)")
    return WindowSpec("time", seconds, f"{number}{unit}")


@dataclass
class Layout:
    """Where each feature's slots sit in a bucket's count vector."""

    profile: Profile
    offsets: list[int]
    prediction_offset: int
    size: int

    @classmethod
    def of(cls, profile: Profile) -> Layout:
        offsets, at = [], 0
        for feature in profile.features:
            offsets.append(at)
            at += feature.width
        prediction_offset = at
        if profile.prediction is not None:
            at += profile.prediction.width
        return cls(profile, offsets, prediction_offset, at)

    def span(self, index: int) -> slice:
        feature = self.profile.features[index]
        return slice(self.offsets[index], self.offsets[index] + feature.width)

    def prediction_slice(self) -> slice | None:
        if self.profile.prediction is None:
            return None
        return slice(self.prediction_offset, self.prediction_offset + self.profile.prediction.width)


# -- folding ------------------------------------------------------------------------------------------
def _keys_for(db: sqlite3.Connection, where: str, args: tuple[Any, ...], profile: Profile) -> list[str]:
    """The JSON keys holding the profile's features: their names, else ``f0 .. fN`` by position."""
    names = [f.name for f in profile.features]
    row = db.execute(f"SELECT features FROM predictions WHERE {where} AND status = 'ok' LIMIT 1",
                     args).fetchone()
    if row is None:
        return names
    try:
        keys = set(json.loads(row[0]))
    except (ValueError, TypeError):
        return names
    positional = [f"f{i}" for i in range(len(names))]
    if not keys & set(names) and keys == set(positional):
        return positional
    return names


def fold(db: sqlite3.Connection, deployment: str) -> int:
    """Fold every prediction of ``deployment`` newer than its cursor; return the rows folded.

    Each step reads and counts up to :data:`SPAN` rows *outside* the write lock and then, in one short
    write transaction, checks that nobody moved the cursor, re-baselined the version or changed its
    last bucket meanwhile, writes the buckets and moves the cursor: two processes folding at once (the
    ingest worker and a ``monitor``) count each row exactly once, and neither blocks ingest for long.
    Rows of a version without a reference profile are passed over (a later baseline refolds them).
    """
    folded = 0
    profiles: dict[tuple[str, int], tuple[str, Profile] | None] = {}
    while True:
        step = _fold_step(db, deployment, profiles)
        if step is None:
            return folded
        folded += step


def _fold_step(db: sqlite3.Connection, deployment: str,
               profiles: dict[tuple[str, int], tuple[str, Profile] | None]) -> int | None:
    """Fold the next span; None when nothing is left, 0 when another folder got there first."""
    low = _cursor(db, deployment)
    top = db.execute("SELECT MAX(id) FROM predictions").fetchone()[0] or 0
    if top <= low:
        return None
    high = min(top, low + SPAN)
    where = "id > ? AND id <= ? AND +deployment = ?"
    plans: list[_Plan] = []
    passed: list[tuple[str, int]] = []  # versions without a reference: their rows are passed over
    for model, version in db.execute(
        f"SELECT DISTINCT model, version FROM predictions WHERE {where}", (low, high, deployment),
    ).fetchall():
        key = (str(model), int(version or 0))
        if key not in profiles:
            profiles[key] = _profile_row(db, *key)
        found = profiles[key]
        if found is None:
            passed.append(key)
        else:
            plan = _plan_range(db, deployment, key, found, f"{where} AND +model = ? AND +version IS ?",
                               (low, high, deployment, model, version))
            if plan is not None:
                plans.append(plan)
    with atomic(db):
        if _cursor(db, deployment) != low:
            return 0
        changed = any(_profile_text(db, *key) is not None for key in passed) or any(
            _profile_text(db, *plan.key) != plan.profile[0]
            or _last_bucket(db, deployment, plan.key) != plan.last for plan in plans)
        if changed:  # (re-)baselined meanwhile: count again on the new edges
            profiles.clear()
            return 0
        for plan in plans:
            db.executemany(_INSERT_BUCKET, plan.rows)
        db.execute("INSERT OR REPLACE INTO monitor_cursors (deployment, last_id) VALUES (?, ?)",
                   (deployment, high))
    return sum(plan.folded for plan in plans)


def _cursor(db: sqlite3.Connection, deployment: str) -> int:
    row = db.execute("SELECT last_id FROM monitor_cursors WHERE deployment = ?", (deployment,)).fetchone()
    return int(row[0]) if row else 0


def refold(db: sqlite3.Connection, model: str, version: int, profile: Profile) -> None:
    """Recount one version's buckets from its raw predictions (after a new baseline moved the edges)."""
    text = _profile_text(db, model, version) or ""
    with atomic(db):
        db.execute("DELETE FROM monitor_buckets WHERE model = ? AND version = ?", (model, version))
        for deployment, last_id in db.execute("SELECT deployment, last_id FROM monitor_cursors").fetchall():
            plan = _plan_range(db, deployment, (model, version), (text, profile),
                               "deployment = ? AND id <= ? AND model = ? AND version = ?",
                               (deployment, last_id, model, version))
            if plan is not None:
                db.executemany(_INSERT_BUCKET, plan.rows)


def load_profile(db: sqlite3.Connection, model: str, version: int) -> Profile | None:
    found = _profile_row(db, model, version)
    return found[1] if found else None


def _profile_text(db: sqlite3.Connection, model: str, version: int) -> str | None:
    row = db.execute("SELECT profile FROM monitor_profiles WHERE model = ? AND version = ?",
                     (model, version)).fetchone()
    return str(row[0]) if row else None


def _profile_row(db: sqlite3.Connection, model: str, version: int) -> tuple[str, Profile] | None:
    """The stored profile's text (what a fold checks did not change under it) and the profile."""
    text = _profile_text(db, model, version)
    return (text, Profile.from_dict(json.loads(text))) if text is not None else None


_INSERT_BUCKET = (
    "INSERT OR REPLACE INTO monitor_buckets (deployment, model, version, seq, minute, id_min, id_max,"
    " rows, errors, counts, conf_sum, conf_rows, reasons) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass
class _Plan:
    """The bucket rows counted for one version's rows of a span, and what they were counted against."""

    key: tuple[str, int]
    profile: tuple[str, Profile]
    last: tuple[Any, ...] | None
    rows: list[tuple[Any, ...]]
    folded: int


def _last_bucket(db: sqlite3.Connection, deployment: str, key: tuple[str, int]) -> tuple[Any, ...] | None:
    row = db.execute(
        "SELECT seq, minute, rows, errors, counts, conf_sum, conf_rows, reasons, id_min, id_max"
        " FROM monitor_buckets WHERE deployment = ? AND model = ? AND version = ? ORDER BY seq DESC LIMIT 1",
        (deployment, *key),
    ).fetchone()
    return tuple(row) if row is not None else None


def _plan_range(db: sqlite3.Connection, deployment: str, key: tuple[str, int],
                found: tuple[str, Profile], where: str, args: tuple[Any, ...]) -> _Plan | None:
    """Count the rows of ``where`` into bucket rows (continuing the version's last bucket); no writes."""
    profile = found[1]
    keys = _keys_for(db, where, args, profile)
    numeric = all(f.kind == NUMBER for f in profile.features)
    got = read_rows(db, where, args, keys, numeric)
    if got is None:
        return None
    layout = Layout.of(profile)
    model, version = key
    last = _last_bucket(db, deployment, key)
    ids, ok = got.ids, got.ok
    bucket, bucket_minutes, continuing = _assign((got.ts // 60).astype(np.int64).tolist(), last)
    count = int(bucket[-1]) + 1
    matrix = np.zeros((count, layout.size))
    ok_bucket = bucket[ok]
    for index, feature in enumerate(profile.features):
        matrix[:, layout.span(index)] = fold_by_group(feature, got.columns[index], ok_bucket, count)
    plain = not any(isinstance(o, str) and o[:1] in "[{" for o in got.outputs)
    outputs = got.outputs if plain else [parse_output(o) for o in got.outputs]
    prediction = layout.prediction_slice()
    if prediction is not None and profile.prediction is not None:
        answers = outputs if plain else [predicted_value(o, profile.classes) for o in outputs]
        matrix[:, prediction] = fold_by_group(profile.prediction, answers, ok_bucket, count)
    conf = np.full(len(outputs), np.nan) if plain else np.array(
        [c if (c := confidence(o)) is not None else np.nan for o in outputs], dtype=np.float64)
    has_conf = ~np.isnan(conf)
    conf_sum = np.bincount(ok_bucket[has_conf], weights=conf[has_conf], minlength=count)
    conf_rows = np.bincount(ok_bucket[has_conf], minlength=count)
    answered = np.bincount(ok_bucket, minlength=count)
    errors = np.bincount(bucket[~ok], minlength=count)
    reasons: list[Counter[str]] = [Counter() for _ in range(count)]
    for position in np.flatnonzero(~ok):
        reasons[int(bucket[position])][got.errors[position][:200]] += 1
    first_seq = 0 if last is None else int(last[0]) + (0 if continuing else 1)
    # Rows come in id order and buckets are consecutive runs of them: each bucket is one slice.
    bounds = np.searchsorted(bucket, np.arange(count + 1)).tolist()
    rows: list[tuple[Any, ...]] = []
    for b in range(count):
        members = ids[bounds[b]:bounds[b + 1]]
        counts, n_rows, n_errors = matrix[b], int(answered[b]), int(errors[b])
        c_sum, c_rows, why, id_min = float(conf_sum[b]), int(conf_rows[b]), reasons[b], int(members[0])
        if b == 0 and continuing and last is not None:
            counts = counts + np.frombuffer(last[4], dtype=np.float64)
            n_rows, n_errors = n_rows + int(last[2]), n_errors + int(last[3])
            c_sum, c_rows = c_sum + float(last[5]), c_rows + int(last[6])
            why = why + Counter(json.loads(last[7]))
            id_min = int(last[8])
        rows.append((deployment, model, version, first_seq + b, bucket_minutes[b], id_min, int(members[-1]),
                     n_rows, n_errors, counts.astype("<f8").tobytes(), c_sum, c_rows, json.dumps(dict(why))))
    return _Plan(key, found, last, rows, len(ids))


def _assign(minutes: list[int], last: tuple[Any, ...] | None) -> tuple[np.ndarray, list[int], bool]:
    """Bucket of each row (0-based here), each bucket's minute, and whether bucket 0 continues ``last``."""
    continuing = last is not None and int(last[1]) == minutes[0] and int(last[2]) + int(last[3]) < GRAIN
    current, fill = (0, int(last[2]) + int(last[3])) if continuing and last is not None else (-1, GRAIN)
    minute = minutes[0]
    out = np.empty(len(minutes), dtype=np.int64)
    bucket_minutes = [minute] if continuing else []
    for i, m in enumerate(minutes):
        if m != minute or fill >= GRAIN:
            current, minute, fill = current + 1, m, 0
            bucket_minutes.append(m)
        out[i] = current
        fill += 1
    return out, bucket_minutes, continuing


# -- windows --------------------------------------------------------------------------------------------
@dataclass
class Window:
    """The sum of consecutive buckets."""

    start: float  # unix seconds of the first minute
    end: float  # unix seconds just past the last minute
    id_min: int
    id_max: int
    rows: int
    errors: int
    counts: np.ndarray
    conf_sum: float = 0.0
    conf_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    buckets: list[tuple[int, int]] = field(default_factory=list)  # (id_min, id_max) of each bucket

    def describe(self, spec: WindowSpec) -> dict[str, Any]:
        return {"size": spec.text, "kind": spec.kind, "start": self.start, "end": self.end,
                "rows": self.rows, "errors": self.errors}


def load_windows(db: sqlite3.Connection, deployment: str, model: str, version: int, spec: WindowSpec,
                 history: int, layout: Layout) -> list[Window]:
    """The latest ``history`` windows, oldest first (count windows trail back from the newest row)."""
    cursor = db.execute(
        "SELECT minute, id_min, id_max, rows, errors, counts, conf_sum, conf_rows, reasons"
        " FROM monitor_buckets WHERE deployment = ? AND model = ? AND version = ? ORDER BY seq DESC",
        (deployment, model, version),
    )
    groups: list[list[tuple[Any, ...]]] = []
    filled = 0
    latest_slot: int | None = None
    slot_of: dict[int, int] = {}
    for row in cursor:
        if spec.kind == "count":
            if not groups or filled >= spec.size:
                if len(groups) == history:
                    break
                groups.append([])
                filled = 0
            groups[-1].append(row)
            filled += int(row[3]) + int(row[4])
        else:
            slot = int(row[0]) * 60 // spec.size
            latest_slot = slot if latest_slot is None else latest_slot
            if latest_slot - slot >= history:
                break
            if slot not in slot_of:
                slot_of[slot] = len(groups)
                groups.append([])
            groups[slot_of[slot]].append(row)
    windows = [_merge(group, layout.size) for group in groups]
    if spec.kind == "time":
        for window, slot in zip(windows, slot_of, strict=True):
            window.start, window.end = float(slot * spec.size), float((slot + 1) * spec.size)
    windows.sort(key=lambda w: w.id_min)
    return windows


def _merge(rows: list[tuple[Any, ...]], size: int) -> Window:
    counts = np.zeros(size)
    reasons: Counter[str] = Counter()
    for row in rows:
        blob = np.frombuffer(row[5], dtype=np.float64)
        if len(blob) == size:
            counts += blob
        if row[8] != "{}":
            reasons.update(json.loads(row[8]))
    return Window(
        start=min(int(r[0]) for r in rows) * 60.0, end=(max(int(r[0]) for r in rows) + 1) * 60.0,
        id_min=min(int(r[1]) for r in rows), id_max=max(int(r[2]) for r in rows),
        rows=sum(int(r[3]) for r in rows), errors=sum(int(r[4]) for r in rows), counts=counts,
        conf_sum=sum(float(r[6]) for r in rows), conf_rows=sum(int(r[7]) for r in rows),
        reasons=dict(reasons), buckets=sorted((int(r[1]), int(r[2])) for r in rows),
    )


__all__ = ["GRAIN", "NUMBER", "Layout", "Window", "WindowSpec", "fold", "load_windows", "parse_window",
           "refold"]
