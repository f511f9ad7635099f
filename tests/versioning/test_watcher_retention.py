"""Retention of auto snapshots: the rule parser, the thinner, and pruning a real project database."""

from __future__ import annotations

import math

import pytest

from workbench.core.workspace import Workspace
from workbench.errors import ConfigError
from workbench.versioning.watch.retention import (
    SnapshotRow,
    parse_rule,
    prune_auto,
    referenced_snapshot_ids,
    select_to_drop,
)

H = 3600.0
D = 86400.0
NOW = 1_000 * D  # aligned to a day, so bucket edges are easy to reason about


def test_parse_rule() -> None:
    rule = parse_rule("1h:all, 1d:1h ,30d:1d,forever:1w")
    assert [(t.max_age, t.every) for t in rule.tiers] == [
        (H, None), (D, H), (30 * D, D), (math.inf, 7 * D)]
    assert not parse_rule("").enabled
    assert parse_rule("2h:none").tiers[0].every == math.inf
    for bad in ("1h", "1d:1h,1h:all", "1x:all", "1h:often", "0h:all", "1h:all:2"):
        with pytest.raises(ConfigError, match="retention"):
            parse_rule(bad)


def _autos(ages: list[float]) -> list[SnapshotRow]:
    return [SnapshotRow(f"s{i:03d}", NOW - age, "auto") for i, age in enumerate(ages)]


def test_thinning_keeps_all_recent_then_one_per_bucket_then_drops_old() -> None:
    rule = parse_rule("1h:all,1d:1h,30d:1d")
    ages = [60.0 * m for m in range(1, 50)]                   # the last 49 minutes: all kept
    ages += [2 * H + 60.0 * m for m in range(1, 51, 5)]        # 10 within one clock hour: keep 1
    ages += [3 * D + 600.0 * m for m in range(1, 13)]           # 12 within one day: keep 1
    ages += [40 * D, 41 * D]                                   # beyond 30 days: dropped
    rows = _autos(sorted(ages, reverse=True))
    dropped = set(select_to_drop(rows, rule, NOW))
    kept = [r for r in rows if r.id not in dropped]
    assert sum(1 for r in kept if NOW - r.created_at < H) == 49
    assert sum(1 for r in kept if H <= NOW - r.created_at < D) == 1
    assert sum(1 for r in kept if D <= NOW - r.created_at < 30 * D) == 1
    assert not any(NOW - r.created_at >= 30 * D for r in kept)
    # the survivor of a bucket is its newest
    hour = [r for r in rows if 2 * H <= NOW - r.created_at < 3 * H]
    assert max(hour, key=lambda r: r.created_at).id not in dropped
    # thinning again drops nothing more (stable, clock-aligned buckets)
    assert select_to_drop(kept, rule, NOW) == []


def test_never_drops_newest_protected_or_non_auto_and_respects_runs() -> None:
    rule = parse_rule("1m:all,1d:1d")
    rows = _autos([5 * H, 4 * H, 3 * H])
    rows.insert(2, SnapshotRow("manual", NOW - 3.5 * H, "manual"))   # splits the autos into two runs
    rows.append(SnapshotRow("newest", NOW - 2 * H, "auto"))
    dropped = select_to_drop(rows, rule, NOW, protected={"s000"})
    # s000 protected; s001 is the newest of its run; manual never; newest never; s002 is newest of run 2
    # but "newest" (same run, same day) is newer, so s002 goes
    assert dropped == ["s002"]
    assert select_to_drop(rows, parse_rule(""), NOW) == []


def _insert(ws: Workspace, sid: str, created_at: float, kind: str = "auto",
            parent: str | None = None) -> None:
    with ws.atomic() as db:
        db.execute("INSERT INTO snapshots (id, root_tree, parent, created_at, kind) VALUES (?, 't', ?, ?, ?)",
                   (sid, parent, created_at, kind))


def test_prune_on_a_real_database_keeps_referenced_and_splices_parents(ws: Workspace) -> None:
    parent = None
    for i in range(6):  # six autos within one hour, two days ago
        sid = f"a{i}"
        _insert(ws, sid, NOW - 2 * D + 60 * i, parent=parent)
        parent = sid
    _insert(ws, "head", NOW - 10, kind="manual", parent=parent)
    with ws.atomic() as db:  # a run and a tag pointing at snapshots, as other packages' tables do
        db.execute("CREATE TABLE test_runs (id TEXT, snapshot_before TEXT, output_snapshot TEXT)")
        db.execute("INSERT INTO test_runs VALUES ('r1', 'a1', NULL)")
        db.execute("CREATE TABLE test_tags (name TEXT, target TEXT REFERENCES snapshots(id))")
        db.execute("INSERT INTO test_tags VALUES ('v1', 'a2')")
        db.execute("CREATE TABLE test_owned "
                   "(snap TEXT REFERENCES snapshots(id) ON DELETE CASCADE, path TEXT)")
        db.execute("INSERT INTO test_owned VALUES ('a3', 'x')")
    assert referenced_snapshot_ids(ws.db) == {"a1", "a2"}
    rule = parse_rule("1h:all,30d:1d")
    dry = prune_auto(ws.db, rule, now=NOW, dry_run=True)
    assert sorted(dry.dropped) == ["a0", "a3", "a4"] and dry.protected == 2
    assert ws.db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 7
    assert sorted(prune_auto(ws.db, rule, now=NOW, dry_run=True, keep=frozenset({"a3"})).dropped) == [
        "a0", "a4"]  # HEAD (passed as keep) is never dropped
    report = prune_auto(ws.db, rule, now=NOW)
    assert sorted(report.dropped) == ["a0", "a3", "a4"]
    left = {r["id"]: r["parent"] for r in ws.db.execute("SELECT id, parent FROM snapshots")}
    assert left == {"a1": None, "a2": "a1", "a5": "a2", "head": "a5"}
    assert ws.db.execute("SELECT COUNT(*) FROM test_owned").fetchone()[0] == 0
