"""Retention for auto snapshots: thin old ones out, never touching what anything else refers to.

The rule (``[watch] retention`` in the project config) is a comma-separated list of ``AGE:KEEP``
pairs with increasing ages, for example ``1h:all,1d:1h,30d:1d``:

- an auto snapshot younger than ``1h`` is kept;
- between ``1h`` and ``1d`` old, one per hour is kept (the newest of each clock hour);
- between ``1d`` and ``30d``, one per day;
- older than the last age (30 days here) it is deleted; end with ``forever:1w`` (or ``inf:1w``) to
  keep one a week forever instead.

``KEEP`` is ``all``, ``none`` or a duration; durations are a number and a unit: ``s``, ``m``,
``h``, ``d``, ``w``. An empty rule keeps everything. Buckets are aligned to the clock (the hour,
the UTC day), so thinning again later gives the same survivors.

Only ``auto`` snapshots are thinned, and only runs of consecutive ones: a manual, run or safety
snapshot between two autos splits their buckets. Never deleted: the newest snapshot, HEAD (the one
the folder was last taken or restored from), any snapshot
that is another table's ``*snapshot*`` column value (runs, tags, models ...: see
docs/CONTRACTS.md), and any that a foreign key without ``ON DELETE CASCADE`` refuses to let go.
Deleting a snapshot re-points its children's ``parent`` to its own parent; the objects it alone
used are reclaimed by ``workbench gc``.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import ConfigError
from workbench.paths import HEAD_FILENAME
from workbench.store.db import atomic

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_FOREVER = {"forever", "inf", "infinity"}
_HINT = "write AGE:KEEP pairs such as '1h:all,1d:1h,30d:1d'; units s m h d w; KEEP is all, none or a duration"


@dataclass(frozen=True)
class Tier:
    """Snapshots younger than ``max_age`` (and older than the previous tier) keep one per ``every``."""

    max_age: float
    every: float | None
    """None: keep all; ``math.inf``: keep none."""


@dataclass(frozen=True)
class RetentionRule:
    tiers: tuple[Tier, ...]
    text: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.tiers)


def parse_duration(text: str, *, what: str = "duration") -> float:
    if text.strip().lower() in _FOREVER:
        return math.inf
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"bad retention {what} '{text.strip()}'", _HINT)
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_rule(text: str) -> RetentionRule:
    """Parse ``AGE:KEEP,...``; ConfigError with the fix on bad input."""
    tiers: list[Tier] = []
    for part in (p for p in text.split(",") if p.strip()):
        if part.count(":") != 1:
            raise ConfigError(f"bad retention pair '{part.strip()}' in '{text}'", _HINT)
        age_text, keep_text = part.split(":")
        age = parse_duration(age_text, what="age")
        keep = keep_text.strip().lower()
        every: float | None
        if keep == "all":
            every = None
        elif keep == "none":
            every = math.inf
        else:
            every = parse_duration(keep_text, what="interval")
        if tiers and age <= tiers[-1].max_age:
            raise ConfigError(f"retention ages must increase: '{age_text.strip()}' in '{text}'", _HINT)
        tiers.append(Tier(age, every))
    return RetentionRule(tuple(tiers), text)


@dataclass(frozen=True)
class SnapshotRow:
    id: str
    created_at: float
    kind: str


def select_to_drop(rows: list[SnapshotRow], rule: RetentionRule, now: float,
                   protected: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The ids the rule thins out of ``rows`` (any order), oldest first. Pure: no database."""
    if not rule.enabled or not rows:
        return []
    ordered = sorted(rows, key=lambda r: (r.created_at, r.id))
    newest = ordered[-1].id
    run = 0
    keepers: dict[tuple[int, int, float], SnapshotRow] = {}  # (run, tier, bucket) -> newest row
    candidates: list[tuple[SnapshotRow, tuple[int, int, float] | None]] = []
    for row in ordered:
        if row.kind != "auto":
            run += 1  # a non-auto snapshot ends a run of consecutive autos
            continue
        if row.id in protected:
            continue
        age = max(0.0, now - row.created_at)
        tier_index = next((i for i, t in enumerate(rule.tiers) if age < t.max_age), None)
        if tier_index is None:
            candidates.append((row, None))  # older than every tier: dropped
            continue
        every = rule.tiers[tier_index].every
        if every is None:
            continue  # keep all in this tier
        if math.isinf(every):
            candidates.append((row, None))
            continue
        key = (run, tier_index, math.floor(row.created_at / every))
        keepers[key] = row  # rows come oldest first: the last one seen is the newest
        candidates.append((row, key))
    return [row.id for row, key in candidates
            if row.id != newest and (key is None or keepers[key].id != row.id)]


# -- the database side ---------------------------------------------------------------------------

@dataclass
class PruneReport:
    """What a prune did (or, with ``dry_run``, would do)."""

    rule: str
    examined: int = 0
    dropped: list[str] = field(default_factory=list)
    protected: int = 0
    kept_by_constraint: list[str] = field(default_factory=list)
    dry_run: bool = False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def referenced_snapshot_ids(db: sqlite3.Connection) -> set[str]:
    """Snapshot ids that other tables point at: runs, tags, models, lineage ...

    Found by shape, not by name, so that tables added later by other packages are honoured: every
    column whose name contains ``snapshot`` in a table other than ``snapshots``, and every column with
    a foreign key to ``snapshots``, except foreign keys declared ``ON DELETE CASCADE`` (those rows
    belong to the snapshot and go with it).
    """
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    found: set[str] = set()
    for table in tables:
        if table == "snapshots":
            continue
        cascade: set[str] = set()
        fk_cols: set[str] = set()
        for fk in db.execute(f"PRAGMA foreign_key_list({_quote(table)})"):
            if str(fk["table"]).lower() != "snapshots":
                continue
            if str(fk["on_delete"]).upper() == "CASCADE":
                cascade.add(fk["from"])
            else:
                fk_cols.add(fk["from"])
        names = {c["name"] for c in db.execute(f"PRAGMA table_info({_quote(table)})")}
        columns = ({n for n in names if "snapshot" in n.lower()} | fk_cols) - cascade
        for column in columns:
            sql = f"SELECT DISTINCT {_quote(column)} FROM {_quote(table)} WHERE {_quote(column)} IS NOT NULL"
            found.update(str(v[0]) for v in db.execute(sql))
    return found


def head_snapshot_id(store_dir: Path) -> str | None:
    """The snapshot the working folder was last synchronised with (``.workbench/HEAD``), if any."""
    try:
        return (store_dir / HEAD_FILENAME).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def prune_auto(db: sqlite3.Connection, rule: RetentionRule, *, now: float | None = None,
               dry_run: bool = False, keep: frozenset[str] = frozenset()) -> PruneReport:
    """Apply ``rule`` to this project's auto snapshots in one write transaction (``keep``: never drop)."""
    report = PruneReport(rule=rule.text, dry_run=dry_run)
    if not rule.enabled:
        return report
    now = time.time() if now is None else now
    with atomic(db):
        rows = [SnapshotRow(r["id"], float(r["created_at"]), r["kind"])
                for r in db.execute("SELECT id, created_at, kind FROM snapshots")]
        protected = referenced_snapshot_ids(db) | keep
        report.examined = sum(1 for r in rows if r.kind == "auto")
        report.protected = sum(1 for r in rows if r.kind == "auto" and r.id in protected)
        drop = select_to_drop(rows, rule, now, protected)
        if dry_run:
            report.dropped = drop
            return report
        for snapshot_id in drop:
            if delete_snapshot(db, snapshot_id):
                report.dropped.append(snapshot_id)
            else:
                report.kept_by_constraint.append(snapshot_id)
    return report


def delete_snapshot(db: sqlite3.Connection, snapshot_id: str) -> bool:
    """Delete one snapshot row, splicing it out of the parent chain; False if a constraint refuses.
    Its objects stay until ``gc``."""
    try:
        with atomic(db):  # a savepoint inside prune_auto's transaction
            row = db.execute("SELECT parent FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()
            if row is None:
                return False
            db.execute("UPDATE snapshots SET parent = ? WHERE parent = ?", (row["parent"], snapshot_id))
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot_id,))
    except sqlite3.IntegrityError:
        return False
    return True
