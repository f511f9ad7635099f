"""The model registry: named models, numbered versions that point at a run and a blob, and aliases.

A file becomes a version of a model when a run declares it (``workbench.log_model``) or when its
bytes are a model's (:mod:`workbench.tracking.model_formats`: a pickle whose top-level object is
an estimator of a known framework, a torch checkpoint, ONNX, safetensors, Keras, XGBoost,
LightGBM, CatBoost); a pickled array, DataFrame or dict is not, whatever its name. The version is
N+1 of the model named after the file's stem (or the name given), unless a version of that model
already holds the same bytes: then that version is reused and the run is linked to it. A version
records the content hash of the file in the blob cache (so deploy can export the exact bytes), the
run that wrote it, and the framework and its version: as the file states it, else from the packages
installed in the run's environment. Aliases (``production``, ``staging`` ...) point at one version
each and move when set again.
"""
from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import UnknownIdError, UsageError
from workbench.store.db import atomic
from workbench.tracking.model_formats import sniff

MODEL_SUFFIXES = (
    ".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".onnx", ".safetensors", ".h5", ".keras", ".ubj",
    ".cbm", ".json", ".model", ".txt", ".bin",
)
"""Suffixes a model's default name leaves out."""
_SUFFIX_FRAMEWORK = {
    ".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".onnx": "onnx", ".safetensors": "safetensors",
    ".h5": "keras", ".keras": "keras", ".ubj": "xgboost", ".cbm": "catboost",
}
DISTRIBUTIONS = {
    "sklearn": "scikit-learn", "torch": "torch", "onnx": "onnx", "safetensors": "safetensors",
    "keras": "keras", "tensorflow": "tensorflow", "xgboost": "xgboost", "catboost": "catboost",
    "lightgbm": "lightgbm", "statsmodels": "statsmodels",
}
_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]{0,127}$")


@dataclass
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    run_id: str | None
    path: str
    hash: str
    size: int
    framework: str
    framework_version: str
    created_at: float
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ModelInfo:
    """A model and its versions at a glance; ``version_list`` holds every version, newest first."""

    name: str
    latest_version: int
    versions: int
    framework: str
    updated_at: float
    aliases: dict[str, int] = field(default_factory=dict)
    version_list: list[ModelVersion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["version_list"] = [v.to_dict() for v in self.version_list]
        return data


def model_name_for(path: str) -> str:
    """The default model name of a file: its stem, made safe."""
    cleaned = re.sub(r"[^\w.\-]", "-", _stem(Path(path).name)).strip("-.") or "model"
    return cleaned[:128]


def _stem(name: str) -> str:
    for suffix in MODEL_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def natural_key(path: str) -> list[Any]:
    """Sort key putting ``epoch2`` before ``epoch10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def series_names(paths: list[str]) -> dict[str, str]:
    """Model files of one run that differ only in their numbers (``checkpoints/epoch0.pt``,
    ``epoch1.pt``...; ``ckpt_step_1000.pt``; Lightning's ``epoch=2-step=300.ckpt``): a series of
    checkpoints, each a version of one model named after what the names share once counter words
    are dropped (``bert-finetuned-epoch3.pt``: ``bert_finetuned``), else after their folder
    (``checkpoints``). A file alone whose name is counter words and numbers only (Lightning's one
    ``epoch=9-step=600.ckpt``) is named after its folder too, so each run's
    checkpoint is a version of one model, not a model of its own. Other files keep
    :func:`model_name_for`; the result maps only the files named here."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        groups.setdefault((folder, re.sub(r"\d+", "#", name)), []).append(path)
    out: dict[str, str] = {}
    for (folder, pattern), members in groups.items():
        words = [w for w in re.split(r"[^A-Za-z0-9]+", _stem(pattern).replace("#", " "))
                 if w and w.lower() not in _COUNTER_WORDS]
        if len(members) < 2 and (words or "#" not in pattern):
            continue  # a file alone keeps its name unless it is a numbered checkpoint
        name = "_".join(words) or model_name_for(folder.rpartition("/")[2] or "model")
        out.update((member, name) for member in members)
    return out


_COUNTER_WORDS = frozenset({"epoch", "epochs", "ep", "e", "step", "steps", "global", "iter", "it",
                            "iteration", "ckpt", "checkpoint", "v", "version", "last", "best"})
"""Words of a checkpoint's name that count or mark it (``epoch=2-step=300``, ``ckpt_step_1000``,
``model_v3``): not the model's name."""


def detect_framework(path: Path, packages: dict[str, str] | None = None) -> tuple[str, str]:
    """``(framework, version)`` of a model file, each '' where it cannot be known: from its bytes
    (:func:`model_formats.sniff`; the version the file states wins), else from its suffix; the
    version else from the run's packages."""
    found = sniff(path)
    if found is not None:
        return found.framework, found.version or framework_version(found.framework, packages)
    framework = _SUFFIX_FRAMEWORK.get(path.suffix.lower(), "")
    return framework, framework_version(framework, packages)


def framework_version(framework: str, packages: dict[str, str] | None) -> str:
    """The installed version of a framework, from the run's packages (or this interpreter's)."""
    dist = DISTRIBUTIONS.get(framework)
    if not dist:
        return ""
    if packages:
        lowered = {k.lower().replace("_", "-"): v for k, v in packages.items()}
        if dist in lowered:
            return lowered[dist]
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:
        return ""


def register_version(
    db: sqlite3.Connection, *, name: str, run_id: str | None, path: str, hash: str, size: int,
    framework: str = "", framework_version: str = "", now: float | None = None,
) -> ModelVersion:
    """Add a version (or return the existing one that holds the same bytes)."""
    return register_or_reuse(db, name=name, run_id=run_id, path=path, hash=hash, size=size,
                             framework=framework, framework_version=framework_version, now=now)[0]


def register_or_reuse(
    db: sqlite3.Connection, *, name: str, run_id: str | None, path: str, hash: str, size: int,
    framework: str = "", framework_version: str = "", now: float | None = None,
) -> tuple[ModelVersion, bool]:
    """Version N+1 of ``name``, or, when a version of ``name`` already holds these bytes (the same
    hash), that version: ``(version, reused)``. Either way the run is linked to the version (table
    ``model_version_runs``), so ``run_models`` lists it for this run too. ``now``: the time to
    record (default: the system clock)."""
    if not _NAME.match(name):
        raise UsageError(f"bad model name {name!r}", "use letters, digits, '.', '_' or '-'")
    now = time.time() if now is None else now
    with atomic(db):
        db.execute("INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)", (name, now))
        same = db.execute(
            "SELECT version FROM model_versions WHERE name = ? AND hash = ? ORDER BY version LIMIT 1",
            (name, hash),
        ).fetchone()
        if same is not None:
            version, reused = int(same[0]), True
        else:
            latest = db.execute("SELECT MAX(version) FROM model_versions WHERE name = ?", (name,)).fetchone()
            version, reused = (1 if latest[0] is None else int(latest[0]) + 1), False
            db.execute(
                "INSERT INTO model_versions (name, version, run_id, path, hash, size, framework,"
                " framework_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, run_id, path, hash, size, framework, framework_version, now),
            )
        if run_id is not None:
            db.execute(
                "INSERT OR IGNORE INTO model_version_runs (run_id, name, version, path, reused, linked_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (run_id, name, version, path, int(reused), now),
            )
    return get_version(db, f"{name}:{version}"), reused


def parse_spec(spec: str) -> tuple[str, int | None, str | None]:
    """``name``, ``name:3`` or ``name@production`` -> (name, version, alias)."""
    if "@" in spec:
        name, alias = spec.split("@", 1)
        return name, None, alias
    if ":" in spec:
        name, text = spec.rsplit(":", 1)
        if text.isdigit():
            return name, int(text), None
        if text == "latest":
            return name, None, None
        raise UsageError(f"bad model version {text!r} in {spec!r}", "write NAME:VERSION or NAME@ALIAS")
    return spec, None, None


def get_version(db: sqlite3.Connection, spec: str) -> ModelVersion:
    """Resolve ``name[:version|@alias]`` (no version: the latest)."""
    name, version, alias = parse_spec(spec)
    if alias is not None:
        row = db.execute(
            "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
        ).fetchone()
        if row is None:
            raise UnknownIdError(f"model {name!r} has no alias {alias!r}", "see 'workbench models'")
        version = int(row[0])
    if version is None:
        row = db.execute("SELECT MAX(version) FROM model_versions WHERE name = ?", (name,)).fetchone()
        if row is None or row[0] is None:
            raise UnknownIdError(f"no model named {name!r}", "see 'workbench models'")
        version = int(row[0])
    row = db.execute(
        "SELECT name, version, run_id, path, hash, size, framework, framework_version, created_at"
        " FROM model_versions WHERE name = ? AND version = ?", (name, version),
    ).fetchone()
    if row is None:
        raise UnknownIdError(f"model {name!r} has no version {version}", "see 'workbench models'")
    aliases = [r[0] for r in db.execute(
        "SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias", (name, version)
    )]
    return ModelVersion(
        name=row[0], version=int(row[1]), run_id=row[2], path=row[3], hash=row[4], size=int(row[5]),
        framework=row[6], framework_version=row[7], created_at=float(row[8]), aliases=aliases,
    )


_VERSION_COLUMNS = "name, version, run_id, path, hash, size, framework, framework_version, created_at"


def _versions_where(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[ModelVersion]:
    """Versions matching ``where``, newest first per name, with their aliases: two queries."""
    aliases: dict[tuple[str, int], list[str]] = {}
    for name, alias, version in db.execute(
        f"SELECT name, alias, version FROM model_aliases WHERE name IN"
        f" (SELECT name FROM model_versions {where}) ORDER BY alias", args,
    ):
        aliases.setdefault((name, int(version)), []).append(alias)
    return [
        ModelVersion(
            name=r[0], version=int(r[1]), run_id=r[2], path=r[3], hash=r[4], size=int(r[5]), framework=r[6],
            framework_version=r[7], created_at=float(r[8]), aliases=aliases.get((r[0], int(r[1])), []),
        )
        for r in db.execute(
            f"SELECT {_VERSION_COLUMNS} FROM model_versions {where} ORDER BY name, version DESC", args
        )
    ]


def versions(db: sqlite3.Connection, name: str) -> list[ModelVersion]:
    """Every version of one model, newest first (two queries)."""
    return _versions_where(db, "WHERE name = ?", (name,))


def versions_of_run(db: sqlite3.Connection, run_id: str) -> list[ModelVersion]:
    """The model versions a run registered or reused (identical bytes)."""
    return _versions_where(
        db, "WHERE (name, version) IN (SELECT name, version FROM model_version_runs WHERE run_id = ?)",
        (run_id,),
    )


def list_models(db: sqlite3.Connection) -> list[ModelInfo]:
    """All models, most recently updated first, each with every version (three queries in all)."""
    by_name: dict[str, list[ModelVersion]] = {}
    for version in _versions_where(db, "", ()):
        by_name.setdefault(version.name, []).append(version)
    aliases: dict[str, dict[str, int]] = {}
    for name, alias, number in db.execute("SELECT name, alias, version FROM model_aliases ORDER BY alias"):
        aliases.setdefault(name, {})[alias] = int(number)
    models = [
        ModelInfo(
            name=name, latest_version=found[0].version, versions=len(found), framework=found[0].framework,
            updated_at=max(v.created_at for v in found), aliases=aliases.get(name, {}), version_list=found,
        )
        for name, found in by_name.items()
    ]
    models.sort(key=lambda m: m.updated_at, reverse=True)
    return models


def set_alias(db: sqlite3.Connection, name: str, version: int, alias: str,
              now: float | None = None) -> ModelVersion:
    """Point ``alias`` at ``name:version`` (moving it if it pointed elsewhere), stamped ``now``."""
    if not _NAME.match(alias) or alias.isdigit() or alias == "latest":
        raise UsageError(f"bad alias {alias!r}", "use a word such as 'production' or 'staging'")
    get_version(db, f"{name}:{version}")
    with atomic(db):
        db.execute(
            "INSERT OR REPLACE INTO model_aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)",
            (name, alias, version, time.time() if now is None else now),
        )
    return get_version(db, f"{name}:{version}")
