"""Plot files become series: a dvc.yaml ``plots`` file a run wrote, where its rows are steps.

DVC draws plots from tabular files (CSV, TSV, JSON or YAML lists of records). A plot is a series the
TUI can show when its x axis is a step: the plot's ``x`` option naming a column of whole numbers, or,
without ``x``, a ``step``/``epoch``/``iteration`` column, or else the row number (DVC's own default).
Each y column (the plot's ``y`` option, or every numeric column other than x) becomes series
``<file path without its extension>/<column>``: ``plots/train.csv``'s ``loss`` is
``plots/train/loss``. A plot whose x is not a step (a ROC curve's ``fpr``) stays an output only,
with a note in the run's log saying so.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.tracking.metric_files import MetricFiles, Unreadable, numeric, read_text

STEP_COLUMNS = ("step", "epoch", "iteration", "iter")


def read_records(root: Path, rel: str) -> list[dict[str, Any]] | None:
    """A plot file's rows as records (None: not written, or not a table)."""
    text = read_text(root, rel)
    if text is None:
        return None
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        return [dict(row) for row in reader]
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            from workbench import yamlsafe  # PyYAML only for runs that wrote a YAML plot

            data = yamlsafe.load(text, rel, Unreadable)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"'{rel}' is malformed: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if isinstance(data, dict) and len(data) == 1:  # DVC also reads {"name": [records...]}
        data = next(iter(data.values()))
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return data
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    number = numeric(value)
    return number if number is not None and math.isfinite(number) else None


def _as_list(option: Any) -> list[str]:
    if isinstance(option, str):
        return [option]
    if isinstance(option, list):
        return [str(item) for item in option if isinstance(item, str)]
    return []


def plot_series(rel: str, records: list[dict[str, Any]], options: Mapping[str, Any]
                ) -> tuple[dict[str, tuple[list[int], list[float]]], str | None]:
    """``{key: (steps, values)}`` of one plot file, or ``({}, why not)``."""
    if not records:
        return {}, f"plot '{rel}' has no rows"
    columns = list(records[0])
    x = options.get("x") if isinstance(options.get("x"), str) else None
    if x is None:
        x = next((c for c in STEP_COLUMNS if c in columns), None)
    if x is not None:
        xs = [_number(row.get(x)) for row in records]
        if any(v is None or v != int(v) for v in xs):
            return {}, f"plot '{rel}' is drawn over '{x}', which is not a step: kept as an output only"
        steps = [int(v) for v in xs if v is not None]
        if len(set(steps)) != len(steps):
            return {}, f"plot '{rel}' repeats values of '{x}': kept as an output only"
    else:
        steps = list(range(len(records)))
    wanted = _as_list(options.get("y")) or [c for c in columns if c != x]
    stem = str(PurePosixPath(rel).with_suffix(""))
    out: dict[str, tuple[list[int], list[float]]] = {}
    for column in wanted:
        values = [_number(row.get(column)) for row in records]
        if column not in columns or any(v is None for v in values):
            continue
        out[f"{stem}/{column}"] = (steps, [v for v in values if v is not None])
    return out, (None if out else f"plot '{rel}' has no numeric y column")


def ingest_plot_files(reader: MetricFiles, plots: Mapping[str, Mapping[str, Any]], written: Iterable[str],
                      skip_folders: Iterable[str] = ()) -> int:
    """Series from the declared plot files this run wrote; returns how many keys were added.
    ``skip_folders``: DVCLive folders, whose ``plots/metrics`` series are read as DVCLive's already."""
    wrote = set(written)
    skipped = [f"{folder}/plots/metrics/" if folder else "plots/metrics/" for folder in skip_folders]
    count = 0
    for rel, options in sorted(plots.items()):
        if rel not in wrote or any(rel.startswith(prefix) for prefix in skipped):
            continue
        try:
            records = read_records(reader.root, rel)
        except Unreadable as exc:
            reader.ingester.note(f"plot file not read: {exc.message}")
            continue
        if records is None:
            continue
        series, why_not = plot_series(rel, records, options)
        if why_not:
            reader.ingester.note(why_not)
        for key, (steps, values) in series.items():
            if reader.add(key, steps, values, [math.nan] * len(steps)):
                count += 1
    return count
