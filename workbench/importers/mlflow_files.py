"""MLflow's file store (an ``mlruns`` folder, deprecated since MLflow 3.13 but still everywhere),
read directly: ``EXPERIMENT/meta.yaml``, ``EXPERIMENT/RUN/{meta.yaml,params,tags,metrics}`` (one
file per key; a metric file has one ``timestamp value step`` line per point) and
``models/NAME/version-N/meta.yaml``. Reading the files is much faster than MLflow's own client,
which opens one file per run per key through several layers (see docs/performance.md), and needs
no MLflow installed."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from workbench.importers.mlflow_common import FILE_STATUS, PARENT_TAG, local_path, split_tags, status_of
from workbench.importers.model import ImportSourceError, ModelFile, Series, Source, SourceRun

SKIP = {".trash", "models", ".git"}


def _meta(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _key_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(key, file) for each key file (keys may hold '/': nested folders)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path.relative_to(folder).as_posix(), path


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def read_metrics(run_dir: Path) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for key, path in _key_files(run_dir / "metrics"):
        series = out[key] = Series()
        for line in _read(path).splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            try:
                series.add(int(parts[2]) if len(parts) > 2 else 0, int(parts[0]) / 1000.0, float(parts[1]))
            except ValueError:
                continue
    return out


def is_file_store(path: Path) -> bool:
    return path.is_dir() and any(
        (child / "meta.yaml").is_file() for child in path.iterdir() if child.name not in SKIP)


def open_file_store(root: Path) -> Source:
    if not is_file_store(root):
        raise ImportSourceError(f"{root} is not an MLflow file store (no EXPERIMENT/meta.yaml in it)",
                                "give the mlruns folder, an mlflow.db, sqlite:///PATH or http(s)://SERVER")
    experiments: list[tuple[str, Path]] = []
    for child in sorted(root.iterdir()):
        meta = _meta(child / "meta.yaml") if child.name not in SKIP and child.is_dir() else {}
        if meta and meta.get("lifecycle_stage", "active") == "active":
            experiments.append((str(meta.get("name") or child.name), child))
    run_dirs = [(name, run) for name, exp in experiments for run in sorted(exp.iterdir())
                if run.is_dir() and (run / "meta.yaml").is_file()]

    def runs() -> Iterator[SourceRun]:
        for experiment, run_dir in run_dirs:
            meta = _meta(run_dir / "meta.yaml")
            if not meta or meta.get("lifecycle_stage", "active") != "active":
                continue
            tags = {key: _read(path) for key, path in _key_files(run_dir / "tags")}
            name, tags = split_tags(tags)
            start = meta.get("start_time")
            end = meta.get("end_time")
            status = meta.get("status")
            yield SourceRun(
                kind="mlflow", source_id=str(meta.get("run_id") or run_dir.name),
                name=str(meta.get("run_name") or name or run_dir.name),
                status=status_of(FILE_STATUS.get(status, status) if isinstance(status, int) else status),
                started_at=(int(start) if start else 0) / 1000.0,
                ended_at=int(end) / 1000.0 if end else None,
                params={key: _read(path) for key, path in _key_files(run_dir / "params")},
                tags={**tags, "experiment": experiment}, parent_id=tags.get(PARENT_TAG),
                load_metrics=partial(read_metrics, run_dir),
                artifacts=local_path(str(meta.get("artifact_uri") or ""), [root.parent, Path.cwd()])
                or (run_dir / "artifacts" if (run_dir / "artifacts").is_dir() else None),
            )

    def models() -> list[ModelFile]:
        found: list[ModelFile] = []
        for model_dir in sorted((root / "models").glob("*")):
            aliases: dict[int, list[str]] = {}
            for alias_file in sorted((model_dir / "aliases").glob("*")):
                try:
                    aliases.setdefault(int(_read(alias_file).strip()), []).append(alias_file.name)
                except ValueError:
                    continue
            name = str(_meta(model_dir / "meta.yaml").get("name") or model_dir.name)
            for version_dir in sorted(model_dir.glob("version-*")):
                meta = _meta(version_dir / "meta.yaml")
                if not meta or str(meta.get("current_stage", "")).lower().startswith("deleted"):
                    continue
                version = int(meta.get("version") or version_dir.name.split("-")[-1])
                source = str(meta.get("storage_location") or meta.get("source") or "")
                found.append(ModelFile(name, version, local_path(source, [root.parent, Path.cwd()]),
                                       str(meta.get("run_id") or "") or None, aliases.get(version, [])))
        return found

    return Source("mlflow", str(root), len(run_dirs), runs, models)
