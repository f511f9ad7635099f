"""Metrics files become a run's metrics: files declared as metrics, and what DVCLive wrote.

When a run ends, two kinds of file among its outputs are read:

* files declared as metrics (a dvc.yaml stage's ``metrics:`` or the top-level ``metrics:`` list,
  passed in as ``RunRequest.metrics``) that the run wrote: JSON, YAML or TOML holding numbers,
  nested keys flattened with ``/`` (``{"train": {"loss": 0.1}}`` is metric ``train/loss``), each
  one point at step 0;
* DVCLive's output: a folder ``D`` (``dvclive/`` by default, ``eval/`` for ``Live("eval")``) is
  recognised by ``D/plots/metrics/**.tsv`` series among the run's outputs, or by ``D`` being named
  ``dvclive``. Each ``D/plots/metrics/train/loss.tsv`` (``step``, optional ``timestamp`` in ms, one
  value column) is series ``train/loss``; ``D/metrics.json`` (DVCLive's summary) adds the keys that
  have no series, at the summary's ``step``; ``D/params.yaml`` gives params (source ``dvclive``);
* a ``metrics.csv`` with a ``step`` (or ``epoch``) column, as Lightning's CSVLogger writes: each
  other column a series by that step (empty cells are no points);
* the config a Hydra app (``@hydra.main``) composed, ``.hydra/config.yaml`` in its output folder:
  each leaf a param under its dotted name (``model.depth``, as an override names it; source
  ``hydra``), beside the overrides the argparse hook already gave. A multirun's several configs
  are not one run's params: a note says so.

Keys the run already logged through Workbench itself are left alone, so nothing is counted twice.
Only regular files inside the run's folder are read (never through a link out of it), at most
:data:`MAX_BYTES` each; an unreadable or malformed file is a note in the run's log, never a failure.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.errors import WorkbenchError
from workbench.tracking.ingest import Ingester

MAX_BYTES = 32 * 1024 * 1024
HYDRA_CONFIG = ".hydra/config.yaml"
MAX_CONFIG_PARAMS = 2000
"""Params taken from one Hydra config at most (a config holding a whole dataset is not params)."""
PLOTS = "plots/metrics"
DVCLIVE_DIR = "dvclive"


class Unreadable(WorkbenchError):
    """A metrics file that cannot be parsed."""


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key, leaf) pairs of nested dicts, keys joined with ``/``; lists are indexed (``a/0``)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from flatten(value, f"{prefix}/{index}" if prefix else str(index))
    elif prefix:
        yield prefix, data


def numeric(value: Any) -> float | None:
    """The value as a metric, or None (bools and strings are not metrics)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def read_text(root: Path, rel: str) -> str | None:
    """A regular file inside ``root`` (no link out of it), or None."""
    path = root / rel
    try:
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(root.resolve()):
            return None
        if path.stat().st_size > MAX_BYTES:
            raise Unreadable(f"'{rel}' is larger than {MAX_BYTES // (1024 * 1024)} MiB")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"cannot read '{rel}': {exc}") from None


def load_values(root: Path, rel: str) -> Any:
    """Parse a JSON, YAML or TOML file (by extension; anything else is tried as YAML)."""
    text = read_text(root, rel)
    if text is None:
        return None
    try:
        if rel.endswith(".json"):
            return json.loads(text)
        if rel.endswith(".toml"):
            import tomllib  # here, not at the top: `workbench run` imports this module

            return tomllib.loads(text)
        from workbench import yamlsafe  # PyYAML costs ~20 ms: only for runs that wrote YAML

        return yamlsafe.load(text, rel, Unreadable)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"'{rel}' is malformed: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def read_tsv(root: Path, rel: str) -> tuple[list[int], list[float], list[float]] | None:
    """DVCLive's series file: steps, values and times (ms timestamps become seconds, else NaN)."""
    text = read_text(root, rel)
    if text is None:
        return None
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows:
        return None
    header = rows[0]
    value_cols = [i for i, name in enumerate(header) if name not in ("step", "timestamp")]
    if not value_cols:
        return None
    col = value_cols[-1]
    step_col = header.index("step") if "step" in header else None
    time_col = header.index("timestamp") if "timestamp" in header else None
    steps: list[int] = []
    values: list[float] = []
    times: list[float] = []
    for index, row in enumerate(rows[1:]):
        try:
            value = float(row[col])
            step = int(float(row[step_col])) if step_col is not None else index
            when = float(row[time_col]) / 1000.0 if time_col is not None else math.nan
        except (ValueError, IndexError):
            continue
        steps.append(step)
        values.append(value)
        times.append(when)
    return steps, values, times


STEP_CSV = "metrics.csv"
"""A CSV of series by step among a run's outputs: Lightning's CSVLogger writes one per version
(``lightning_logs/version_0/metrics.csv``: ``epoch,step,train_loss,val_loss``)."""


def read_step_csv(root: Path, rel: str) -> dict[str, tuple[list[int], list[float], list[float]]] | None:
    """Each numeric column of a CSV with a ``step`` (else ``epoch``) column as a series by that
    step, in step order; an empty cell is no point (Lightning writes a row for each ``log`` call, the
    others empty); a step written twice keeps its last value. None: not such a file."""
    text = read_text(root, rel)
    if text is None:
        return None
    rows = csv.reader(text.splitlines())
    header = next(rows, [])
    by = "step" if "step" in header else "epoch" if "epoch" in header else None
    if by is None:
        return None
    step_col = header.index(by)
    columns = [(i, name) for i, name in enumerate(header) if i != step_col and name]
    found: dict[str, dict[int, float]] = {name: {} for _, name in columns}
    for row in rows:
        try:
            step = int(float(row[step_col]))
        except (ValueError, IndexError):
            continue
        for i, name in columns:
            if i < len(row) and row[i].strip():
                try:
                    found[name][step] = float(row[i])
                except ValueError:
                    continue
    return {name: ([step for step, _ in ordered], [value for _, value in ordered], [math.nan] * len(ordered))
            for name, points in found.items() if (ordered := sorted(points.items()))}


def dvclive_dirs(outputs: Iterable[str]) -> set[str]:
    """Folders (``""`` for the run's root) that DVCLive wrote into, from the run's output paths."""
    found: set[str] = set()
    for path in outputs:
        parts = PurePosixPath(path).parts
        for i in range(len(parts) - 2):
            if parts[i] == "plots" and parts[i + 1] == "metrics" and path.endswith(".tsv"):
                found.add("/".join(parts[:i]))
                break
        if len(parts) >= 2 and parts[-1] == "metrics.json" and parts[-2] == DVCLIVE_DIR:
            found.add("/".join(parts[:-1]))
    return found


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class MetricFiles:
    """Reads one finished run's metrics files into its ingester."""

    def __init__(self, ingester: Ingester, root: Path) -> None:
        self.ingester = ingester
        self.root = root
        self.taken = {str(key) for (key,) in ingester.conn.execute(
            "SELECT key FROM metric_keys WHERE run_id = ?", (ingester.run_id,))} - ingester.parsed_only()
        """Keys the run already has (logged through Workbench): never overwritten. A key only read
        from the job's output is replaced by the file's series."""
        self.now = ingester.clock.now()

    def add(self, key: str, steps: list[int], values: list[float], times: list[float],
            source: str = "a metrics file") -> bool:
        if key in self.taken or not steps:
            return False
        self.ingester.replaces_parsed(key, source)
        times = [self.now if math.isnan(t) else t for t in times]
        try:
            self.ingester.add_points(key, steps, values, times)
        except ValueError as exc:
            self.ingester.note(f"metrics file: {exc}")
            return False
        self.taken.add(key)
        return True

    def values(self, rel: str, *, step: int = 0, skip: tuple[str, ...] = ()) -> int:
        """Every number in a JSON/YAML/TOML file as one point of its flattened key."""
        data = load_values(self.root, rel)
        count = 0
        for key, leaf in flatten(data):
            number = numeric(leaf)
            if number is not None and key not in skip and self.add(key, [step], [number], [self.now],
                                                                   f"'{rel}'"):
                count += 1
        return count

    def dvclive(self, folder: str) -> int:
        count = 0
        plots = self.root / _join(folder, PLOTS)
        if plots.is_dir() and not plots.is_symlink():
            for tsv in sorted(plots.rglob("*.tsv")):
                rel = tsv.relative_to(self.root).as_posix()
                series = read_tsv(self.root, rel)
                key = tsv.relative_to(plots).as_posix()[: -len(".tsv")]
                if series is not None and self.add(key, *series, source=f"'{rel}'"):
                    count += 1
        summary = load_values(self.root, _join(folder, "metrics.json"))
        if isinstance(summary, dict):
            step = summary.get("step")
            step = step if isinstance(step, int) and not isinstance(step, bool) else 0
            count += self.values(_join(folder, "metrics.json"), step=step, skip=("step",))
        params = load_values(self.root, _join(folder, "params.yaml"))
        for key, value in flatten(params) if isinstance(params, dict) else ():
            try:
                self.ingester.add_param(key, value, "dvclive")
            except ValueError:
                continue
        return count

    def step_csv(self, rel: str) -> int:
        """The series of a step-indexed CSV (:func:`read_step_csv`)."""
        count = 0
        for key, (steps, values, times) in sorted((read_step_csv(self.root, rel) or {}).items()):
            if self.add(key, steps, values, times, f"'{rel}'"):
                count += 1
        return count

    def hydra(self, rel: str) -> int:
        """The params of a Hydra app's composed config (``rel``), under the keys no other source
        gave (an override given on the command line keeps its own)."""
        config = load_values(self.root, rel)
        if not isinstance(config, dict):
            return 0
        from workbench.yamlsafe import flatten_dotted  # PyYAML: only where a Hydra config was written

        self.ingester.flush()
        given = {str(key) for (key,) in self.ingester.conn.execute(
            "SELECT key FROM run_params WHERE run_id = ?", (self.ingester.run_id,))}
        count = 0
        for key, value in flatten_dotted(config).items():
            value = json.dumps(value) if isinstance(value, list) else value  # a list is one value
            if count >= MAX_CONFIG_PARAMS:
                self.ingester.note(f"Hydra config '{rel}': more than {MAX_CONFIG_PARAMS} values; the "
                                   "rest are not params")
                break
            if key in given:
                continue
            try:
                self.ingester.add_param(key, value, "hydra")
            except ValueError:
                continue
            count += 1
        return count


def ingest_metric_files(ingester: Ingester, root: Path, declared: Iterable[str],
                        plots: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """Read declared metrics files, declared plot files (:mod:`workbench.tracking.plot_files`) and
    DVCLive output among the run's outputs; returns how many metric keys were added. Problems are
    notes in the run's log."""

    outputs = [str(path) for (path,) in ingester.conn.execute(
        "SELECT path FROM run_files WHERE run_id = ? AND direction = 'output'", (ingester.run_id,))]
    reader = MetricFiles(ingester, root)
    count = 0
    written = set(outputs)  # a declared file counts only when this run wrote it
    # DVCLive's folders first: their summary knows the step a declared copy of it would lack.
    jobs: list[tuple[Callable[[str], int], str]] = [
        (reader.dvclive, folder) for folder in sorted(dvclive_dirs(outputs))]
    jobs += [(reader.values, rel) for rel in declared if rel in written]
    jobs += [(reader.step_csv, rel) for rel in sorted(outputs)
             if rel.rpartition("/")[2] == STEP_CSV and rel not in declared]
    for read, rel in jobs:
        try:
            count += read(rel)
        except Unreadable as exc:
            ingester.note(f"metrics file not read: {exc.message}")
    configs = [rel for rel in outputs if rel == HYDRA_CONFIG or rel.endswith("/" + HYDRA_CONFIG)]
    if len(configs) == 1:
        try:
            reader.hydra(configs[0])
        except Unreadable as exc:
            ingester.note(f"Hydra config not read: {exc.message}")
    elif configs:
        ingester.note(f"{len(configs)} Hydra configs among the outputs (a multirun): their params are "
                      "each job's, not this run's; not read")
    if plots:
        from workbench.tracking.plot_files import ingest_plot_files

        count += ingest_plot_files(reader, plots, written, dvclive_dirs(outputs))
    ingester.flush()
    return count
