"""One deployment's monitoring report: per-feature drift, prediction drift, quality and labels.

Built from folded windows (:mod:`workbench.monitor.windows`) and the reference profile; the latest
window decides the states, the earlier ones give the history (sparklines, accuracy over time).
``Report.to_json()`` is the ``workbench monitor --json`` document.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.config import MonitorConfig
from workbench.monitor import labels as labelling
from workbench.monitor.drift import Comparison, compare
from workbench.monitor.profile import Profile
from workbench.monitor.states import DEGRADED, ERROR_SHARE, OK, WARNING, Verdict, judge, worst
from workbench.monitor.windows import Layout, Window, WindowSpec

MIN_LABELS = 30
"""Labelled rows a window needs before its measured metric can turn the deployment ``degraded``."""


@dataclass
class Report:
    """What ``workbench monitor`` prints for one deployment."""

    deployment: str
    model: str
    version: int
    state: str
    window: dict[str, Any]
    features: list[Verdict] = field(default_factory=list)
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)  # feature -> severity per window
    references: dict[str, tuple[list[str], list[float]]] = field(default_factory=dict)  # bins, shares
    prediction: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    windows: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment, "model": self.model, "version": self.version, "state": self.state,
            "window": self.window, "features": [
                v.to_dict() | {"kind": v.kind, "reasons": v.reasons, "scores": {
                    k: round(x, 6) for k, x in self.comparisons[v.name].scores.items()},
                    "trend": [round(x, 4) for x in self.history.get(v.name, [])]}
                for v in self.features],
            "prediction": self.prediction, "quality": self.quality, "labels": self.labels,
            "windows": self.windows, "message": self.message,
        }


def empty_report(deployment: str, model: str, version: int, spec: WindowSpec, message: str) -> Report:
    return Report(deployment, model, version, OK, {"size": spec.text, "kind": spec.kind, "rows": 0},
                  message=message)


def build_report(db: sqlite3.Connection, deployment: str, model: str, version: int, profile: Profile,
                 windows: list[Window], spec: WindowSpec, config: MonitorConfig,
                 training_metric: dict[str, Any] | None) -> Report:
    """Judge the latest window; score every window for the history."""
    layout = Layout.of(profile)
    if not windows:
        return empty_report(deployment, model, version, spec, "no predictions yet")
    history: dict[str, list[float]] = {f.name: [] for f in profile.features}
    window_states: list[str] = []
    for window in windows:
        verdicts = []
        for index, feature in enumerate(profile.features):
            comparison = compare(feature, window.counts[layout.span(index)])
            verdicts.append(judge(comparison, config, window.rows, feature.missing_rate))
            history[feature.name].append(verdicts[-1].severity)
        window_states.append(worst([v.state for v in verdicts]))
    latest = windows[-1]
    report = Report(deployment, model, version, OK, latest.describe(spec), history=history)
    for index, feature in enumerate(profile.features):
        comparison = compare(feature, latest.counts[layout.span(index)])
        report.comparisons[feature.name] = comparison
        report.references[feature.name] = (feature.bin_labels(), feature.reference_shares())
        report.features.append(judge(comparison, config, latest.rows, feature.missing_rate))
    report.features.sort(key=lambda v: (-_rank(v), -v.score, v.name))
    report.prediction = _prediction(profile, layout, latest, config, report)
    report.quality = _quality(report, latest)
    report.labels, per_window = _labels(db, deployment, model, version, profile, windows, training_metric,
                                        config)
    report.windows = [
        w.describe(spec) | {"state": window_states[i], "estimated_accuracy":
                            w.conf_sum / w.conf_rows if w.conf_rows else None} | per_window[i]
        for i, w in enumerate(windows)
    ]
    states = [v.state for v in report.features]
    if "state" in report.prediction:
        states.append(report.prediction["state"])
    if report.quality["error_rate"] > ERROR_SHARE and latest.rows + latest.errors >= config.min_rows:
        states.append(WARNING)
    if report.labels.get("degraded"):
        states.append(DEGRADED)
    report.state = worst(states)
    return report


def _rank(verdict: Verdict) -> int:
    from workbench.monitor.states import ORDER

    return ORDER[verdict.state]


def _prediction(profile: Profile, layout: Layout, window: Window, config: MonitorConfig,
                report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {"task": profile.task or None, "estimated_accuracy":
                           window.conf_sum / window.conf_rows if window.conf_rows else None}
    where = layout.prediction_slice()
    if where is None or profile.prediction is None:
        out["message"] = "no reference predictions (the model could not be loaded for the profile)"
        return out
    comparison = compare(profile.prediction, window.counts[where])
    verdict = judge(comparison, config, window.rows)
    report.comparisons["prediction"] = comparison
    out |= {"metric": verdict.metric, "score": round(verdict.score, 6), "state": verdict.state,
            "bins": profile.prediction.bin_labels(), "reference": profile.prediction.reference_shares(),
            "current": comparison.histogram}
    return out


def _quality(report: Report, window: Window) -> dict[str, Any]:
    total = window.rows + window.errors
    features = {
        name: {k: round(v, 6) for k, v in comparison.quality.items()}
        for name, comparison in report.comparisons.items() if name != "prediction"
    }
    return {"rows": window.rows, "errors": window.errors,
            "error_rate": window.errors / total if total else 0.0,
            "error_reasons": dict(sorted(window.reasons.items(), key=lambda kv: -kv[1])[:10]),
            "features": features}


def _labels(db: sqlite3.Connection, deployment: str, model: str, version: int, profile: Profile,
            windows: list[Window], training: dict[str, Any] | None,
            config: MonitorConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Measured metrics per window from feedback joined to predictions; degraded against training."""
    per_window: list[dict[str, Any]] = [{} for _ in windows]
    rows = db.execute(
        # CROSS JOIN keeps feedback the outer loop: labels are few, predictions millions.
        "SELECT p.id, json_extract(p.output, '$'), json_extract(f.label, '$') FROM feedback f"
        " CROSS JOIN predictions p ON p.deployment = f.deployment AND p.request_id = f.request_id"
        " AND p.row_index = f.row_index WHERE f.deployment = ? AND p.model = ? AND p.version IS ?"
        " AND p.id BETWEEN ? AND ? AND p.status = 'ok'",
        (deployment, model, version, windows[0].id_min, windows[-1].id_max),
    ).fetchall()
    if not rows:
        return {"rows": 0, "training": training}, per_window
    starts: list[int] = []
    owner: list[tuple[int, int]] = []  # (window index, bucket id_max)
    for w_index, window in enumerate(windows):
        for id_min, id_max in window.buckets:
            starts.append(id_min)
            owner.append((w_index, id_max))
    order = np.argsort(starts)
    sorted_starts = np.asarray(starts)[order]
    grouped: list[tuple[list[Any], list[Any]]] = [([], []) for _ in windows]
    for pid, output, label in rows:
        position = int(np.searchsorted(sorted_starts, pid, side="right")) - 1
        if position < 0:
            continue
        w_index, id_max = owner[int(order[position])]
        if pid > id_max:
            continue
        grouped[w_index][0].append(labelling.predicted_value(labelling.parse_output(output), profile.classes))
        grouped[w_index][1].append(labelling.parse_output(label))
    task = profile.task or labelling.infer_task(*grouped[-1]) if grouped[-1][0] else profile.task
    task = task or labelling.CLASSIFICATION
    for i, (predicted, truth) in enumerate(grouped):
        if predicted:
            per_window[i] = {"labelled": labelling.score(task, predicted, truth)}
    latest = per_window[-1].get("labelled", {"rows": 0})
    out: dict[str, Any] = {"task": task, "training": training, **latest}
    metric = (training or {}).get("name") or ("accuracy" if task == labelling.CLASSIFICATION else "mae")
    out["metric"] = metric
    if training and metric in latest and latest["rows"] >= MIN_LABELS:
        out["degraded"] = labelling.is_degraded(metric, float(latest[metric]), float(training["value"]),
                                                config.degraded_drop)
    return out, per_window
