"""MLflow's file store (an ``mlruns`` folder, deprecated since MLflow 3.13 but still everywhere),
read directly: ``EXPERIMENT/meta.yaml``, ``EXPERIMENT/RUN/{meta.yaml,params,tags,metrics}`` (one
file per key; a metric file has one ``timestamp value step`` line per point) and
``models/NAME/version-N/meta.yaml``. The runs are read by :mod:`workbench.tracking.mlflow_store`
(the reader live capture uses: links are never followed); this module adds the registry's models.
Reading the files is much faster than MLflow's own client, which opens one file per run per key
through several layers (see docs/performance.md), and needs no MLflow installed."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from workbench.importers.mlflow_common import (
    FILE_STATUS,
    PARENT_TAG,
    as_series,
    local_path,
    split_tags,
    status_of,
)
from workbench.importers.model import ImportSourceError, ModelFile, Series, Source, SourceRun
from workbench.tracking.mlflow_store import file_store_runs, metric_points, read_each, read_meta, read_text

SKIP = {".trash", "models", ".git"}


def read_metrics(run_dir: Path) -> dict[str, Series]:
    return {key: as_series(points) for key, points in read_each(run_dir / "metrics", metric_points).items()}


def is_file_store(path: Path) -> bool:
    return path.is_dir() and any(
        (child / "meta.yaml").is_file() for child in path.iterdir() if child.name not in SKIP)


def open_file_store(root: Path) -> Source:
    if not is_file_store(root):
        raise ImportSourceError(f"{root} is not an MLflow file store (no EXPERIMENT/meta.yaml in it)",
                                "give the mlruns folder, an mlflow.db, sqlite:///PATH or http(s)://SERVER")
    live = list(file_store_runs(root))
    bases = [root.parent, Path.cwd()]

    def runs() -> Iterator[SourceRun]:
        for experiment, run_dir, meta in live:
            name, tags = split_tags(read_each(run_dir / "tags", read_text))
            start = meta.get("start_time")
            end = meta.get("end_time")
            status = meta.get("status")
            yield SourceRun(
                kind="mlflow", source_id=str(meta.get("run_id") or run_dir.name),
                name=str(meta.get("run_name") or name or run_dir.name),
                status=status_of(FILE_STATUS.get(status, status) if isinstance(status, int) else status),
                started_at=(int(str(start)) if start else 0) / 1000.0,
                ended_at=int(str(end)) / 1000.0 if end else None,
                params=read_each(run_dir / "params", read_text),
                tags={**tags, "experiment": experiment}, parent_id=tags.get(PARENT_TAG),
                load_metrics=partial(read_metrics, run_dir),
                artifacts=local_path(str(meta.get("artifact_uri") or ""), bases)
                or (run_dir / "artifacts" if (run_dir / "artifacts").is_dir() else None),
            )

    def models() -> list[ModelFile]:
        found: list[ModelFile] = []
        for model_dir in sorted((root / "models").glob("*")):
            aliases: dict[int, list[str]] = {}
            for alias_file in sorted((model_dir / "aliases").glob("*")):
                try:
                    aliases.setdefault(int(read_text(alias_file).strip()), []).append(alias_file.name)
                except (OSError, ValueError):
                    continue
            name = str(read_meta(model_dir / "meta.yaml").get("name") or model_dir.name)
            for version_dir in sorted(model_dir.glob("version-*")):
                meta = read_meta(version_dir / "meta.yaml")
                if not meta or str(meta.get("current_stage", "")).lower().startswith("deleted"):
                    continue
                version = int(str(meta.get("version") or version_dir.name.split("-")[-1]))
                source = str(meta.get("storage_location") or meta.get("source") or "")
                found.append(ModelFile(name, version, local_path(source, bases),
                                       str(meta.get("run_id") or "") or None, aliases.get(version, [])))
        return found

    return Source("mlflow", str(root), len(live), runs, models)
