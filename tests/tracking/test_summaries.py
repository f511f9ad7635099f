"""Metric summaries (count, last, last_step, min, max) against known series, through every reader:
``ws.runs.list()``, ``ws.runs.get()``, ``workbench runs --json`` and ``workbench show --json``."""

from __future__ import annotations

import json
import math
from array import array
from typing import Any

import pytest

from workbench.core.workspace import Workspace
from workbench.tracking import events
from workbench.tracking.ingest import Ingester
from workbench.tracking.records import create_run, end_run

# key -> (count, last, last_step, min, max) expected after _populate
EXPECTED: dict[str, tuple[int, float, int, float, float]] = {
    # three flushes, steps out of order in the last one; last = value at the largest step
    "loss": (6, 0.25, 9, 0.25, 3.5),
    # the largest step logged again with a new value: the newest value wins, counted once
    "acc": (3, 0.875, 2, 0.5, 0.9),
    # auto steps from stdout-style points (no step given)
    "lr": (4, 0.001, 3, 0.001, 0.1),
    # packed series (what the API sends)
    "big": (1000, 999.5, 999, 0.5, 999.5),
}


def _populate(ws: Workspace, run_id: str = "known") -> None:
    create_run(ws.db, run_id, name="known", command=["python", "t.py"])
    ing = Ingester(ws.db, run_id, ws.root)
    ing.add_points("loss", [0, 1, 2], [3.5, 2.0, 1.0], [100.0, 101.0, 102.0])
    ing.add_points("acc", [0, 1, 2], [0.5, 0.9, 0.7], [100.0, 101.0, 102.0])
    ing.flush()
    ing.add_points("loss", [9, 4], [0.25, 0.75], [109.0, 104.0])
    ing.add_points("acc", [2], [0.875], [103.0])
    ing.add_points("lr", [None, None, None, None], [0.1, 0.01, 0.005, 0.001], [200.0] * 4)
    ing.flush()
    ing.add_points("loss", [5], [0.5], [105.0])  # an earlier step: last stays at step 9
    packed = events.pack_series(
        "big", array("q", range(1000)), array("d", [i + 0.5 for i in range(1000)]),
        array("d", [300.0 + i for i in range(1000)]),
    )
    ing.feed_line(events.encode(packed))
    ing.flush()
    end_run(ws.db, run_id, status="succeeded", exit_code=0)


def _check(summaries: dict[str, Any]) -> None:
    assert set(summaries) == set(EXPECTED)
    for key, (count, last, last_step, lo, hi) in EXPECTED.items():
        got = summaries[key]
        assert (got["count"], got["last"], got["last_step"], got["min"], got["max"]) == (
            count, last, last_step, lo, hi
        ), key


def test_summaries_through_list_and_get(ws: Workspace) -> None:
    _populate(ws)
    listed = ws.runs.list()[0]
    got = ws.runs.get("known")
    for run in (listed, got):
        _check({k: m.to_dict() for k, m in run.metrics.items()})
        assert isinstance(run.metrics["loss"].last_step, int) and isinstance(run.metrics["loss"].last, float)


def test_summaries_through_the_cli_json(ws: Workspace, project_dir: Any, cli: Any) -> None:
    _populate(ws)
    result = cli(project_dir, "runs", "--json")
    assert result.code == 0, result.err
    row = json.loads(result.out)[0]
    assert row["metrics"] == {k: v[1] for k, v in EXPECTED.items()}
    shown = cli(project_dir, "show", "known", "--json")
    assert shown.code == 0, shown.err
    _check({m["key"]: m for m in json.loads(shown.out)["metric_summaries"]})


def test_nan_and_infinity_summaries(ws: Workspace) -> None:
    create_run(ws.db, "odd", name="odd", command=["x"])
    ing = Ingester(ws.db, "odd", ws.root)
    ing.add_points("n", [0, 1], [math.nan, math.nan], [0.0, 0.0])
    ing.add_points("i", [0, 1, 2], [1.0, math.inf, -math.inf], [0.0] * 3)
    ing.add_points("tail_nan", [0, 1], [2.0, math.nan], [0.0, 0.0])
    ing.flush()
    run = ws.runs.get("odd")
    assert run.metrics["n"].count == 2 and math.isnan(run.metrics["n"].last)
    assert run.metrics["n"].min is None and run.metrics["n"].max is None
    assert run.metrics["i"].last == -math.inf and run.metrics["i"].max == math.inf
    assert run.metrics["i"].min == -math.inf and run.metrics["i"].last_step == 2
    assert math.isnan(run.metrics["tail_nan"].last) and run.metrics["tail_nan"].min == 2.0


@pytest.mark.parametrize("value", [0.1 + 0.2, 1e-300, 123456789.123456789, 2.0**53 + 2, 1e300])
def test_summary_values_are_exact(ws: Workspace, value: float) -> None:
    create_run(ws.db, "exact", name="", command=["x"])
    ing = Ingester(ws.db, "exact", ws.root)
    ing.add_points("v", [0, 1], [value, -value], [0.0, 0.0])
    ing.add_param("p", value, "api")
    ing.flush()
    for run in (ws.runs.get("exact"), ws.runs.list()[0]):
        summary = run.metrics["v"]
        assert (summary.last, summary.min, summary.max) == (-value, min(value, -value), max(value, -value))
        assert run.params["p"] == value
