"""``workbench monitor``: the table, the --json shape, baselines, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.monitor import drift_fixtures
from tests.monitor.drift_fixtures import Traffic, make_rows, write_reference
from workbench.core.workspace import Workspace

baselined_fixture = drift_fixtures.baselined_fixture  # the fixtures, for pytest to find
traffic_fixture = drift_fixtures.traffic_fixture


def test_json_shape(ws: Workspace, baselined: Traffic, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    baselined.send(make_rows(np.random.default_rng(1), 1500, shift={"b": 4.0}))
    result = cli(project_dir, "monitor", "svc", "--window", "1000", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert {"deployment", "state", "window", "features", "prediction", "quality"} <= set(doc)
    assert doc["deployment"] == "svc" and doc["state"] == "drifting"
    assert doc["window"]["size"] == "1000" and doc["window"]["rows"] >= 1000
    assert [set(f) >= {"name", "metric", "score", "state"} for f in doc["features"]] == [True] * 4
    assert set(doc["features"][0]["scores"]) == {"psi", "wasserstein", "ks"}
    assert doc["features"][0]["name"] == "b"
    assert {"metric", "score", "state"} <= set(doc["prediction"])
    everything = json.loads(cli(project_dir, "monitor", "--json").out)
    assert [d["deployment"] for d in everything] == ["svc"]


def test_table_lists_features_worst_first(  # type: ignore[no-untyped-def]
    ws: Workspace, baselined: Traffic, project_dir: Path, cli,
) -> None:
    baselined.send(make_rows(np.random.default_rng(1), 1000, shift={"a": 2.0}))
    result = cli(project_dir, "monitor", "svc")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if "drifting" in line or " ok " in line]
    assert "svc" in result.out and "drifting" in lines[0]
    assert result.out.index(" a ") < result.out.index(" color ")


def test_baseline_from_the_cli(  # type: ignore[no-untyped-def]
    ws: Workspace, traffic: Traffic, project_dir: Path, tmp_path: Path, cli,
) -> None:
    traffic.send(make_rows(np.random.default_rng(2), 10))
    reference = write_reference(tmp_path / "train.csv", np.random.default_rng(3), 500)
    assert "no reference profile for m:1" in cli(project_dir, "monitor", "svc").out  # scanned, not folded
    result = cli(project_dir, "monitor", "baseline", "svc", str(reference))
    assert result.code == 0, result.err
    assert "m:1: reference of 500 rows, 4 features" in result.out
    profile = json.loads(ws.db.execute("SELECT profile FROM monitor_profiles").fetchone()[0])
    assert profile["signature"] == {"names": ["a", "b", "c", "color"], "count": 4,
                                    "dtypes": ["float", "float", "float", "str"]}
    # The 10 predictions scanned before the baseline existed were folded on its edges.
    assert ws.db.execute("SELECT SUM(rows) FROM monitor_buckets").fetchone()[0] == 10


def test_bad_input_is_one_line(  # type: ignore[no-untyped-def]
    ws: Workspace, traffic: Traffic, project_dir: Path, tmp_path: Path, cli,
) -> None:
    traffic.send(make_rows(np.random.default_rng(2), 10))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    cases = [
        (("monitor", "nope"), "no deployment named 'nope'"),
        (("monitor", "svc", "--window", "10x"), "bad window '10x'"),
        (("monitor", "svc", "--window", "90s"), "whole minutes"),
        (("monitor", "baseline", "svc"), "monitor baseline takes"),
        (("monitor", "baseline", "svc", str(tmp_path / "missing.csv")), "no such file"),
        (("monitor", "baseline", "svc", str(bad)), "line 3 has 1 fields"),
        (("monitor", "baseline", "nomodel:3", str(bad)), "model 'nomodel' has no version 3"),
    ]
    for argv, expected in cases:
        result = cli(project_dir, *argv)
        assert result.code == 2, argv
        assert expected in result.err and len(result.err.strip().splitlines()) == 1, result.err
    result = cli(project_dir, "monitor", "svc")
    assert result.code == 0 and "no reference profile for m:1" in result.out


def test_bad_monitor_config_is_one_line(project_dir: Path, ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    ws.paths.config.write_text('[monitor]\npsi_warning = 0.5\npsi_drifting = 0.2\n', encoding="utf-8")
    result = cli(project_dir, "monitor")
    assert result.code == 2 and "monitor.psi_drifting" in result.err
