"""Labels arriving later turn a deployment degraded; a state change runs the alert command once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tests.monitor import drift_fixtures
from tests.monitor.drift_fixtures import Traffic, make_rows, truth
from workbench.core.workspace import Workspace

baselined_fixture = drift_fixtures.baselined_fixture  # the fixtures, for pytest to find
traffic_fixture = drift_fixtures.traffic_fixture


def _configure_alert(ws: Workspace, out: Path) -> None:
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')"
    argv = json.dumps([sys.executable, "-c", script])
    ws.paths.config.write_text(f"[monitor]\non_alert = {argv}\n", encoding="utf-8")
    ws.__dict__.pop("config", None)


def _send_labelled(traffic: Traffic, rng: np.random.Generator, n: int, accuracy: float) -> None:
    rows = make_rows(rng, n)
    labels = [truth(r) for r in rows]
    answers = [y if rng.random() < accuracy else 1 - y for y in labels]
    ids = traffic.send(rows, answers)
    traffic.label(ids, labels)


def test_falling_accuracy_turns_degraded_and_runs_the_alert_once(
    ws: Workspace, baselined: Traffic, tmp_path: Path,
) -> None:
    alerts = tmp_path / "alerts.jsonl"
    _configure_alert(ws, alerts)
    rng = np.random.default_rng(8)
    _send_labelled(baselined, rng, 1000, accuracy=0.9)
    report = ws.monitor.report("svc", "1000")
    assert report.state == "ok"
    assert report.labels["metric"] == "accuracy" and abs(report.labels["accuracy"] - 0.9) < 0.04
    assert not alerts.exists()  # first sight of an ok deployment is no change

    for accuracy in (0.8, 0.6):
        _send_labelled(baselined, rng, 1000, accuracy=accuracy)
    report = ws.monitor.report("svc", "1000")
    assert report.state == "degraded"
    assert report.labels["degraded"] is True
    accuracies = [w["labelled"]["accuracy"] for w in report.windows]
    assert accuracies[0] > accuracies[-1] + 0.2

    lines = alerts.read_text().splitlines()
    assert len(lines) == 1
    alert = json.loads(lines[0])
    assert alert["deployment"] == "svc" and alert["state"] == "degraded" and alert["previous"] == "ok"
    ws.monitor.report("svc", "1000")  # the same state again: no second alert
    assert len(alerts.read_text().splitlines()) == 1
    assert ws.monitor.states() == {"svc": "degraded"}


def test_estimated_accuracy_from_confidence_beside_measured(ws: Workspace, baselined: Traffic) -> None:
    rng = np.random.default_rng(4)
    rows = make_rows(rng, 500)
    outputs = [[0.2, 0.8] if truth(r) else [0.7, 0.3] for r in rows]
    ids = baselined.send(rows, outputs)
    report = ws.monitor.report("svc", "1000")
    assert abs(report.prediction["estimated_accuracy"] - (0.8 * 0.5 + 0.7 * 0.5)) < 0.05
    assert report.labels["rows"] == 0
    baselined.label(ids[:200], [truth(r) for r in rows[:200]])
    report = ws.monitor.report("svc", "1000")
    assert report.labels["rows"] == 200 and report.labels["accuracy"] == 1.0


def test_a_failing_alert_command_is_a_warning_not_an_error(ws: Workspace, baselined: Traffic) -> None:
    ws.paths.config.write_text('[monitor]\non_alert = ["/nonexistent/alert-tool"]\n', encoding="utf-8")
    ws.__dict__.pop("config", None)
    notes: list[str] = []
    baselined.send(make_rows(np.random.default_rng(1), 1000, shift={"a": 3.0}))
    report = ws.monitor.report("svc", "1000", notes=notes.append)
    assert report.state == "drifting"
    assert notes == ["alert command not found: /nonexistent/alert-tool"]


def test_regression_turns_degraded_on_mae(ws: Workspace, traffic: Traffic, tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    reference = tmp_path / "reg.csv"
    x = rng.normal(0, 1, 3000)
    noise = rng.normal(0, 0.5, 3000)
    reference.write_text("x,prediction,label\n" + "".join(
        f"{a},{2 * a + 0.1},{2 * a + e}\n" for a, e in zip(x, noise, strict=True)))
    traffic.send([{"x": 0.0}], [0.0])
    ws.monitor.baseline("svc", reference)
    profile = ws.monitor.profile("m", 1)
    assert profile is not None and profile.task == "regression"
    assert profile.reference_metric is not None and profile.reference_metric["name"] == "mae"
    for spread in (0.5, 2.0):
        xs = rng.normal(0, 1, 1000)
        ids = traffic.send([{"x": float(a)} for a in xs], [float(2 * a) for a in xs])
        traffic.label(ids, [float(2 * a + e) for a, e in zip(xs, rng.normal(0, spread, 1000), strict=True)])
        report = ws.monitor.report("svc", "1000")
        assert report.labels["metric"] == "mae"
        assert report.state == ("ok" if spread == 0.5 else "degraded"), report.labels
