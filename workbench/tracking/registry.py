"""The model registry: named models, numbered versions that point at a run and a blob, and aliases.

A model file among a run's outputs (by suffix, see :data:`MODEL_SUFFIXES`) or one given to
``workbench.log_model`` becomes version N+1 of the model named after the file's stem (or the name
given). A version records the content hash of the file in the blob cache (so deploy can export the
exact bytes), the run that wrote it, and the framework and its version where they can be known:
from the suffix, from the module names inside a pickle (read with :mod:`pickletools`, never
unpickled), and from the packages installed in the run's environment. Aliases (``production``,
``staging`` ...) point at one version each and move when set again.
"""

from __future__ import annotations

import io
import pickletools
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import UnknownIdError, UsageError
from workbench.store.db import atomic

MODEL_SUFFIXES = (
    ".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".onnx", ".safetensors", ".h5", ".keras", ".ubj",
    ".cbm",
)
_SUFFIX_FRAMEWORK = {
    ".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".onnx": "onnx", ".safetensors": "safetensors",
    ".h5": "keras", ".keras": "keras", ".ubj": "xgboost", ".cbm": "catboost",
}
_MODULE_FRAMEWORK = {
    "sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost",
    "torch": "torch", "keras": "keras", "tensorflow": "tensorflow", "statsmodels": "statsmodels",
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


def is_model_path(path: str) -> bool:
    return path.lower().endswith(MODEL_SUFFIXES)


def model_name_for(path: str) -> str:
    """The default model name of a file: its stem, made safe."""
    stem = Path(path).name
    for suffix in MODEL_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    cleaned = re.sub(r"[^\w.\-]", "-", stem).strip("-.") or "model"
    return cleaned[:128]


def _pickle_modules(data: bytes) -> list[str]:
    modules: list[str] = []
    previous: list[Any] = []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "GLOBAL" and isinstance(arg, str):
                modules.append(arg.split(" ", 1)[0])
            elif opcode.name == "STACK_GLOBAL" and len(previous) >= 2:
                modules.append(str(previous[-2]))
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                previous = [*previous[-1:], arg]
            if len(modules) > 200:
                break
    except Exception:
        pass  # joblib puts raw array bytes inside the stream; what came before is enough
    return modules


def detect_framework(path: Path, packages: dict[str, str] | None = None) -> tuple[str, str]:
    """``(framework, version)`` of a model file, each '' where it cannot be known."""
    suffix = path.suffix.lower()
    framework = _SUFFIX_FRAMEWORK.get(suffix, "")
    if not framework and suffix in (".pkl", ".pickle", ".joblib"):
        try:
            with path.open("rb") as handle:
                head = handle.read(4 * 1024 * 1024)
        except OSError:
            head = b""
        for module in _pickle_modules(head):
            root = module.split(".", 1)[0]
            if root in _MODULE_FRAMEWORK:
                framework = _MODULE_FRAMEWORK[root]
                break
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
    framework: str = "", framework_version: str = "",
) -> ModelVersion:
    """Add a version (or return the latest one when it holds the same bytes)."""
    if not _NAME.match(name):
        raise UsageError(f"bad model name {name!r}", "use letters, digits, '.', '_' or '-'")
    now = time.time()
    with atomic(db):
        db.execute("INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)", (name, now))
        latest = db.execute(
            "SELECT version, hash FROM model_versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
        ).fetchone()
        if latest is not None and latest[1] == hash:
            return get_version(db, f"{name}:{latest[0]}")
        version = 1 if latest is None else int(latest[0]) + 1
        db.execute(
            "INSERT INTO model_versions (name, version, run_id, path, hash, size, framework,"
            " framework_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, version, run_id, path, hash, size, framework, framework_version, now),
        )
    return get_version(db, f"{name}:{version}")


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
    """The model versions a run registered."""
    return _versions_where(db, "WHERE run_id = ?", (run_id,))


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


def set_alias(db: sqlite3.Connection, name: str, version: int, alias: str) -> ModelVersion:
    """Point ``alias`` at ``name:version`` (moving it if it pointed elsewhere)."""
    if not _NAME.match(alias) or alias.isdigit() or alias == "latest":
        raise UsageError(f"bad alias {alias!r}", "use a word such as 'production' or 'staging'")
    get_version(db, f"{name}:{version}")
    with atomic(db):
        db.execute(
            "INSERT OR REPLACE INTO model_aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)",
            (name, alias, version, time.time()),
        )
    return get_version(db, f"{name}:{version}")
