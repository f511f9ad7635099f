"""CLI command ``monitor``: drift, data quality and labelled metrics of deployments; reference baselines.

``workbench monitor [DEPLOYMENT] [--window 1000|1h] [--json]`` folds new predictions and prints each
feature's score and state, worst first; ``workbench monitor baseline DEPLOYMENT|MODEL:V FILE``
fixes a version's reference profile from a file (see docs/monitor.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.cli.common import add_json_flag, console, open_workspace, print_json

if TYPE_CHECKING:
    from workbench.monitor.report import Report

STATE_STYLE = {"ok": "green", "warning": "yellow", "drifting": "red", "degraded": "bold magenta"}


def register(subparsers: Any) -> None:
    """Add the ``monitor`` command to the top-level parser."""
    p = subparsers.add_parser(
        "monitor", help="drift, data quality and live metrics of deployed models (monitor baseline ...)",
        description="workbench monitor [DEPLOYMENT] shows each feature's drift, worst first; "
        "workbench monitor baseline DEPLOYMENT|MODEL:V FILE fixes the reference profile from a file.",
    )
    p.add_argument("args", nargs="*", metavar="DEPLOYMENT | baseline TARGET FILE",
                   help="a deployment (default: every deployment), or 'baseline' with a deployment or "
                   "MODEL:VERSION and a CSV, Parquet or .npy file of training data")
    p.add_argument("--window", metavar="SIZE",
                   help="a count of predictions (1000) or a time span (30m, 1h, 1d); default: [monitor] "
                   "window")
    p.add_argument("--label", metavar="COLUMN", help="baseline: the label column (default: label/target/y)")
    p.add_argument("--prediction", metavar="COLUMN",
                   help="baseline: a column of the model's predictions (default: 'prediction', else the "
                   "model's own on the file when it can be loaded)")
    add_json_flag(p)
    p.set_defaults(handler=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    from workbench.errors import UsageError

    words: list[str] = args.args
    if words[:1] == ["baseline"]:
        if len(words) != 3:
            raise UsageError("monitor baseline takes a deployment or MODEL:VERSION and a file",
                             "workbench monitor baseline DEPLOYMENT FILE")
        return _baseline(args, words[1], Path(words[2]))
    if len(words) > 1:
        raise UsageError(f"monitor takes one deployment, got {len(words)}", "workbench monitor [DEPLOYMENT]")
    if args.label or args.prediction:
        raise UsageError("--label and --prediction go with 'monitor baseline'")
    ws = open_workspace()
    notes: list[str] = []
    if words:
        reports = [ws.monitor.report(words[0], args.window, notes=notes.append)]
    else:
        reports = ws.monitor.reports(args.window, notes=notes.append)
    for note in notes:
        sys.stderr.write(f"warning: {note}\n")
    if args.json:
        print_json(reports[0].to_json() if words else [r.to_json() for r in reports])
        return 0
    if not reports:
        console().print("nothing to monitor (no deployment has answered a request yet)")
        return 0
    for report in reports:
        _print_report(report)
    return 0


def _baseline(args: argparse.Namespace, target: str, file: Path) -> int:
    ws = open_workspace()
    model, version, profile = ws.monitor.baseline(target, file, label=args.label, prediction=args.prediction)
    if args.json:
        print_json({"model": model, "version": version, "source": str(file), "profile": profile.to_dict()})
        return 0
    extra = f", predictions ({profile.task})" if profile.prediction else ""
    metric = profile.reference_metric
    scored = f", {metric['name']} {metric['value']:.4g}" if metric else ""
    console().print(f"{model}:{version}: reference of {profile.rows} rows, {len(profile.features)} features"
                    f"{extra}{scored} from {file}")
    return 0


def _print_report(report: Report) -> None:
    from rich.table import Table

    from workbench.format import number, sparkline

    out = console()
    window = report.window
    style = STATE_STYLE.get(report.state, "")
    out.print(f"[bold]{report.deployment}[/bold]  {report.model}:{report.version}  "
              f"[{style}]{report.state}[/{style}]  window {window.get('size')}: "
              f"{window.get('rows', 0)} rows, {window.get('errors', 0)} errors")
    if report.message:
        out.print(f"  {report.message}")
        return
    table = Table("FEATURE", "METRIC", "SCORE", "STATE", "TREND", "MISSING", "NOTES")
    for verdict in report.features:
        quality = report.quality["features"].get(verdict.name, {})
        notes = list(verdict.reasons)
        for key in ("out_of_range", "unseen"):
            if quality.get(key):
                notes.append(f"{key.replace('_', ' ')} {quality[key]:.1%}")
        s = STATE_STYLE.get(verdict.state, "")
        trend = sparkline(report.history.get(verdict.name, []), 1.0)
        table.add_row(verdict.name, verdict.metric, number(verdict.score), f"[{s}]{verdict.state}[/{s}]",
                      trend, f"{quality.get('missing', 0):.1%}", "; ".join(notes))
    out.print(table)
    out.print("  " + _prediction_line(report.prediction, report.labels))
    if report.quality.get("error_reasons"):
        reasons = ", ".join(f"{k} ({v})" for k, v in report.quality["error_reasons"].items())
        out.print(f"  refused requests: {reasons}")


def _prediction_line(prediction: dict[str, Any], labels: dict[str, Any]) -> str:
    from workbench.format import number

    parts = []
    if "state" in prediction:
        score = number(prediction["score"])
        parts.append(f"prediction {prediction['metric']} {score} ({prediction['state']})")
    elif prediction.get("message"):
        parts.append(prediction["message"])
    if prediction.get("estimated_accuracy") is not None:
        parts.append(f"estimated accuracy {prediction['estimated_accuracy']:.3f}")
    metric = labels.get("metric")
    if labels.get("rows") and metric in labels:
        training = labels.get("training") or {}
        versus = f" (training {number(training['value'])})" if training.get("name") == metric else ""
        parts.append(f"measured {metric} {number(labels[metric])} on {labels['rows']} labels{versus}"
                     + (" DEGRADED" if labels.get("degraded") else ""))
    return "; ".join(parts) or "no prediction reference"
