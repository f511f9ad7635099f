"""Exports for the tools users already have: runs as rows, model versions as files or MLflow models.

* :func:`run_rows` / :func:`write_runs`: one row per run (id, name, status, times, executor,
  command, then ``params.*``, ``metrics.*`` (last value) and ``tags.*`` columns) as CSV for a
  spreadsheet or JSON for pandas (``pd.read_json(path)``). Columns are the union over the runs.
* :func:`export_model`: ``raw`` writes the version's bytes as they were registered (verified against
  the blob cache on the way out). ``mlflow`` writes an MLflow model directory (``MLmodel`` with the
  ``python_function`` and ``sklearn`` flavors, ``model.pkl``, ``requirements.txt``, ``conda.yaml``,
  ``python_env.yaml``) that MLflow, MLServer's MLflow runtime and KServe serve. The MLflow format
  is written for scikit-learn models (pickle or joblib); joblib files are re-serialised as a plain
  pickle, which MLflow's ``serialization_format: pickle`` loads, by loading them with joblib:
  export is for a model you trust, as serving it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import pickle
import platform
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from workbench.errors import UsageError, WorkbenchError
from workbench.tracking.records import RunInfo
from workbench.tracking.registry import DISTRIBUTIONS, ModelVersion

FORMATS = ("raw", "mlflow")
FIXED_COLUMNS = ("id", "name", "status", "started_at", "ended_at", "duration_s", "executor", "command")


def _iso(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def run_rows(runs: Iterable[RunInfo]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns (fixed ones first, then params, metrics and tags sorted) and one dict per run."""
    rows: list[dict[str, Any]] = []
    extra: set[str] = set()
    for run in runs:
        command = run.command
        row: dict[str, Any] = {
            "id": run.id, "name": run.name, "status": run.status,
            "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
            "duration_s": None if run.ended_at is None else round(run.ended_at - run.started_at, 3),
            "executor": run.executor,
            "command": command if isinstance(command, str) else " ".join(command),
        }
        for key, value in run.params.items():
            row[f"params.{key}"] = value
        for key, summary in run.metrics.items():
            row[f"metrics.{key}"] = summary.last
        for key, value in run.tags.items():
            row[f"tags.{key}"] = value
        extra.update(k for k in row if k not in FIXED_COLUMNS)
        rows.append(row)
    order = {"params": 0, "metrics": 1, "tags": 2}
    columns = [*FIXED_COLUMNS, *sorted(extra, key=lambda c: (order[c.split(".", 1)[0]], c))]
    return columns, rows


def render_runs(runs: Iterable[RunInfo], fmt: str) -> tuple[str, int]:
    """The runs as ``csv`` or ``json`` text, and how many rows it holds."""
    columns, rows = run_rows(runs)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        text = buffer.getvalue()
    elif fmt == "json":
        text = json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=1, default=str) + "\n"
    else:
        raise UsageError(f"unknown format {fmt!r}", "use --csv FILE or --json FILE")
    return text, len(rows)


def write_runs(runs: Iterable[RunInfo], dest: Path, fmt: str) -> int:
    """Write the runs to ``dest`` whole or not at all; returns how many rows were written."""
    text, count = render_runs(runs, fmt)
    write_whole(dest, text.encode("utf-8"))
    return count


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and value != value:  # NaN: pandas reads the empty cell as NaN
        return ""
    return value


def write_whole(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp:
        tmp.write(data)
    Path(tmp.name).replace(dest)


def export_model(version: ModelVersion, fetch: Callable[[Path], None], dest: Path, fmt: str = "raw",
                 *, force: bool = False) -> Path:
    """Write a model version to ``dest``; returns the file (raw) or folder (mlflow) written.

    ``fetch(path)`` writes the version's verified bytes to ``path`` (the blob cache's export).
    ``raw`` into an existing folder writes ``dest/<file name>``. Nothing existing is overwritten
    unless ``force``."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    filename = Path(version.path).name or f"{version.name}.bin"
    if fmt == "raw":
        target = dest / filename if dest.is_dir() else dest
        if target.exists() and not force:
            raise UsageError(f"{target} already exists", "choose another destination or pass --force")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wb-export-") as scratch:
            part = Path(scratch) / filename
            fetch(part)
            part.replace(target)
        return target
    if version.framework != "sklearn":
        raise UsageError(
            f"{version.name}:{version.version} is a {version.framework or 'unknown'} model; the MLflow "
            "format is written for scikit-learn models", "export it with --format raw",
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        if not force:
            raise UsageError(f"{dest} exists and is not an empty folder",
                             "choose a new folder or pass --force")
        if dest.is_dir():
            shutil.rmtree(dest)
        else:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".wb-export-") as scratch:
        folder = Path(scratch) / "model"
        folder.mkdir()
        source = Path(scratch) / filename
        fetch(source)
        _as_plain_pickle(source, folder / "model.pkl")
        _write_mlflow_files(folder, version)
        if dest.exists():
            dest.rmdir()
        folder.replace(dest)
    return dest


def _as_plain_pickle(source: Path, target: Path) -> None:
    """Copy a plain pickle as is; load a joblib file with joblib and pickle the object again."""
    data = source.read_bytes()
    if data[:1] == b"\x80" and b"NumpyArrayWrapper" not in data:
        shutil.copyfile(source, target)
        return
    try:
        import joblib
    except ImportError:
        raise WorkbenchError(
            "converting a joblib file to MLflow's pickle needs joblib", "pip install joblib"
        ) from None
    try:
        model = joblib.load(source)
    except Exception as exc:  # any failure to load is the one-line answer
        raise WorkbenchError(f"cannot load {source.name} to convert it: {exc}",
                             "export it with --format raw") from None
    with target.open("wb") as out:
        pickle.dump(model, out, protocol=pickle.DEFAULT_PROTOCOL)


def _write_mlflow_files(folder: Path, version: ModelVersion) -> None:
    import yaml

    python = platform.python_version()
    requirement = f"{DISTRIBUTIONS['sklearn']}=={version.framework_version}" if version.framework_version \
        else DISTRIBUTIONS["sklearn"]
    mlmodel = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": python,
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "pickle",
                "sklearn_version": version.framework_version or None,
            },
        },
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "metadata": {
            "workbench_model": version.name, "workbench_version": version.version,
            "workbench_run": version.run_id, "workbench_hash": version.hash,
        },
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    (folder / "requirements.txt").write_text(f"mlflow\n{requirement}\n", encoding="utf-8")
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", "pip", {"pip": ["mlflow", requirement]}],
    }
    (folder / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False), encoding="utf-8")
    env = {"python": python, "build_dependencies": ["pip"], "dependencies": ["-r requirements.txt"]}
    (folder / "python_env.yaml").write_text(yaml.safe_dump(env, sort_keys=False), encoding="utf-8")
