"""How the runs commands draw what is not a plain table: the input and code differences of
``compare``, the tree of ``lineage`` and the terminal charts of ``metrics --plot`` and ``compare
--plot`` (Rich renderables and plotext text; imported only by those commands)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from rich.markup import escape

if TYPE_CHECKING:
    from workbench.tracking.lineage import LineageNode


def print_differences(out: Any, data: dict[str, Any], ws: Any) -> None:
    """The input files whose hashes differ, and the code/data changes between the runs' input
    snapshots (``ws`` given: a unified diff of each changed text file against the first run)."""
    first = data["runs"][0]["id"]
    if data["inputs"]:
        out.print("[bold]inputs that differ[/] (hash per run)")
        for path, hashes in data["inputs"].items():
            cells = "  ".join((h or "-")[:10] for h in hashes)
            out.print(f"  {escape(path)}  {cells}")
    for entry in data["code"]:
        if not entry.get("compared", True):
            missing = first if not entry["from"] else entry["run"]
            out.print(f"code and data of {entry['run']}: not compared ({missing} has no input snapshot)")
            continue
        if not entry["changes"]:
            out.print(f"code and data of {entry['run']}: identical to {first}'s")
            continue
        out.print(f"[bold]code and data of {entry['run']} against {first}[/] ({len(entry['changes'])} files)")
        for change in entry["changes"][:50]:
            out.print(f"  {CHANGE_MARK.get(change['change'], '?')} {escape(change['path'])}")
        if len(entry["changes"]) > 50:
            out.print(f"  ... and {len(entry['changes']) - 50} more (--json lists all)")
        if ws is not None:
            for change in entry["changes"]:
                if change["change"] == "modified":
                    text = ws.versions.unified_diff(entry["from"], entry["to"], change["path"])
                    if text:
                        sys.stdout.write(text if text.endswith("\n") else text + "\n")


CHANGE_MARK = {"added": "+", "modified": "~", "deleted": "-"}


def lineage_tree(node: LineageNode, parent: Any) -> None:
    branch = parent.add(escape(_lineage_label(node)))
    for child in node.children:
        lineage_tree(child, branch)


def _lineage_label(node: LineageNode) -> str:
    d = node.details
    if node.kind == "run":
        command = " ".join(d.get("command") or [])
        label = f"run {node.label} {d.get('name') or ''} [{d.get('status')}] {command}"
        if d.get("code_snapshot"):
            label += f"  code@{str(d['code_snapshot'])[:12]}"
        return label
    if node.kind == "model":
        label = f"model {node.label} ({d.get('framework')} {d.get('framework_version')}) {d.get('path')}"
        rolled = [f"{x['deployment']} r{x['revision']}" + (" (serving)" if x["current"] else "")
                  for x in d.get("deployments") or []]
        return label + (f"  deployed as {', '.join(rolled)}" if rolled else "")
    if node.kind == "retrain":
        label = (f"retrain {node.label} of {d['deployment']} r{d['revision']} "
                 f"({d['model']}:{d['champion_version']})")
        if d.get("champion_score") is not None and d.get("challenger_score") is not None:
            label += (f": {d['metric']} champion {d['champion_score']:.4g}, "
                      f"challenger {d['challenger_score']:.4g}")
        label += f" -> {d['decision']}"
        if d.get("deployed_revision") is not None:
            label += f" as r{d['deployed_revision']}"
        return label
    if node.kind == "predictions":
        return (f"predictions of {d['deployment']} r{d['revision']}: {d['predictions']} answered, "
                f"{d['labelled']} labelled when retrained")
    if node.kind == "deployment":
        label = f"deployment {d['deployment']} r{d['revision']} serving {d['model']}:{d['version']}"
        if "state" in d:
            label += f" [{d['state']}] {d['predictions']} predictions, {d['labelled']} labelled"
        return label
    return f"file {node.label} {(d.get('hash') or '')[:12]}"


def metric_plot(key: str, curves: list[tuple[str, list[int], list[float]]], width: int, height: int,
                colour: bool) -> str:
    """Curves of one metric as terminal text (plotext), for ``workbench metrics RUN KEY --plot``
    (one curve) and ``workbench compare RUNS --plot KEY`` (one a run, told apart by colour, or by
    their marks where the output has no colour: ``•``, ``x``, ``+``...). NaN and infinite points
    are left out of the drawing."""
    import math
    import re

    import plotext as plt

    plt.clf()
    plt.plotsize(width, height)
    plt.theme("clear")
    colours = ["cyan", "magenta", "green", "orange", "blue", "red"]
    marks = ["braille"] if len(curves) == 1 else ["•", "x", "+", "o", "*", "#"]
    summary = []
    for i, (label, steps, values) in enumerate(curves):
        points = [(s, v) for s, v in zip(steps, values, strict=False) if math.isfinite(v)]
        if points:
            plt.plot([s for s, _ in points], [v for _, v in points], marker=marks[i % len(marks)],
                     color=colours[i % len(colours)] if colour else None,
                     label=label if len(curves) > 1 else None)
        summary.append(f"last {points[-1][1]:.4g} at step {points[-1][0]}" if points else "no finite value")
    if len(curves) == 1:
        plt.title(f"{key}: {len(curves[0][2])} points, {summary[0]}")
    else:  # the legend names each run; the title must fit the width or plotext leaves it out
        plt.title(f"{key}, {len(curves)} runs")
    plt.xlabel("step")
    text: str = plt.build()
    return text if colour else re.sub(r"\x1b\[[0-9;]*m", "", text)


def _chart_width() -> int:
    import shutil

    return max(40, min(shutil.get_terminal_size((100, 24)).columns, 160))


def plot_metrics(ws: Any, info: Any, keys: list[str]) -> int:
    """``workbench metrics RUN [KEY] --plot``: a chart a metric (``keys``: every metric, or one)."""
    from workbench.errors import UnknownIdError

    if not keys:
        print(f"run {info.id} has no metrics")
        return 0
    width = _chart_width()
    for key in keys:
        if key not in info.metrics:
            raise UnknownIdError(f"run {info.id} has no metric {key!r}",
                                 f"its metrics: {', '.join(sorted(info.metrics)) or 'none'}")
        series = ws.runs.metric_series(info.id, key, max_points=2 * width)
        curve = [(info.id, series.steps, series.values)]
        sys.stdout.write(metric_plot(key, curve, width, 16, sys.stdout.isatty()) + "\n")
    return 0


def plot_compared(ws: Any, data: dict[str, Any], key: str) -> None:
    """``workbench compare RUNS --plot KEY``: every run's curve of KEY in one chart, from what
    ``compare`` found (``data``); the runs without it are left out (the caller checked that one has it)."""
    width = _chart_width()
    curves = []
    for run, summary in zip(data["runs"], data["metrics"][key], strict=True):
        if summary:
            series = ws.runs.metric_series(run["id"], key, max_points=2 * width)
            curves.append((run["id"][:10], series.steps, series.values))
    sys.stdout.write(metric_plot(key, curves, width, 18, sys.stdout.isatty()) + "\n")
