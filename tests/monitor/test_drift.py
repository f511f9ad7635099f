"""Drift over windows: no false alarms in distribution, one shifted feature caught within one window."""

from __future__ import annotations

import numpy as np

from tests.monitor import drift_fixtures
from tests.monitor.drift_fixtures import Traffic, make_rows, truth
from workbench.core.workspace import Workspace

baselined_fixture = drift_fixtures.baselined_fixture  # the fixtures, for pytest to find
traffic_fixture = drift_fixtures.traffic_fixture


def test_in_distribution_traffic_stays_ok_across_20_windows(ws: Workspace, baselined: Traffic) -> None:
    rng = np.random.default_rng(2024)
    for _ in range(20):
        baselined.send(make_rows(rng, 1000))
    report = ws.monitor.report("svc", "1000")
    assert len(report.windows) == 20
    assert [w["state"] for w in report.windows] == ["ok"] * 20
    assert report.state == "ok"
    for name, severities in report.history.items():  # each score over its drifting threshold
        assert max(severities) < 0.4, name  # below every warning threshold
    assert report.prediction["state"] == "ok"


def test_mean_shift_in_one_feature_drifts_within_one_window(ws: Workspace, baselined: Traffic) -> None:
    rng = np.random.default_rng(5)
    for _ in range(3):
        baselined.send(make_rows(rng, 1000))
    assert ws.monitor.report("svc", "1000").state == "ok"
    baselined.send(make_rows(rng, 1000, shift={"b": 2.0}))  # one standard deviation of b
    report = ws.monitor.report("svc", "1000")
    states = {v.name: v.state for v in report.features}
    assert states == {"a": "ok", "b": "drifting", "c": "ok", "color": "ok"}
    assert report.features[0].name == "b"  # worst first
    assert report.state == "drifting"


def test_time_windows_and_incremental_folding(ws: Workspace, baselined: Traffic) -> None:
    rng = np.random.default_rng(11)
    baselined.send(make_rows(rng, 600), seconds_apart=1.0)  # ten minutes
    first = ws.monitor.report("svc", "5m")
    assert sum(w["rows"] for w in first.windows) == 601
    folded = ws.db.execute("SELECT last_id FROM monitor_cursors WHERE deployment = 'svc'").fetchone()[0]
    baselined.send(make_rows(rng, 300, shift={"a": 3.0}), seconds_apart=1.0)
    report = ws.monitor.report("svc", "5m")
    assert ws.db.execute("SELECT last_id FROM monitor_cursors").fetchone()[0] == folded + 300
    assert sum(w["rows"] for w in report.windows) == 901
    assert all(w["end"] - w["start"] == 300 for w in report.windows)
    assert {v.name: v.state for v in report.features}["a"] == "drifting"


def test_quality_counts_missing_unseen_out_of_range_and_errors(ws: Workspace, baselined: Traffic) -> None:
    rows = make_rows(np.random.default_rng(3), 400)
    for row in rows[:100]:
        del row["c"]
    for row in rows[100:200]:
        row["color"] = "purple"
    for row in rows[200:220]:
        row["a"] = 50.0
    baselined.send(rows)
    baselined.error("expects 4 features, got 3", 30)
    report = ws.monitor.report("svc", "1000")
    quality = report.quality
    assert quality["errors"] == 30
    assert quality["error_reasons"] == {"expects 4 features, got 3": 30}
    assert quality["features"]["c"]["missing"] > 0.2
    assert quality["features"]["color"]["unseen"] > 0.2
    assert quality["features"]["a"]["out_of_range"] >= 0.049
    states = {v.name: v.state for v in report.features}
    assert states["c"] == "warning" and states["color"] == "drifting"


def test_positional_names_and_a_malformed_row(ws: Workspace, baselined: Traffic) -> None:
    other = Traffic(ws, deployment="positional")  # serves m:1 too, logs features as f0 .. f3
    rows = make_rows(np.random.default_rng(6), 300)
    other.send([{f"f{i}": value for i, value in enumerate(row.values())} for row in rows],
               [truth(r) for r in rows])
    with ws.atomic() as db:  # a row whose features are not JSON must not stop monitoring
        db.execute("INSERT INTO predictions (deployment, model, version, request_id, ts, features)"
                   " VALUES ('positional', 'm', 1, 'broken', ?, '{not json')", (other.ts + 1,))
    report = ws.monitor.report("positional", "1000")
    assert report.window["rows"] == 301
    assert {v.name: v.state for v in report.features} == dict.fromkeys(("a", "b", "c", "color"), "ok")
    assert 0 < report.quality["features"]["a"]["missing"] < 0.01  # the broken row's
