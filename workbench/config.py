"""The project configuration: one typed model, read from ``.workbench/config.toml``.

Every field has a default, so a missing file or a missing key is fine. Everything wrong with the
file is one :class:`~workbench.errors.ConfigError` line naming the file and the key: text that is not
UTF-8 or not TOML, an unknown key, a value of the wrong type, a number outside its range
(:data:`RANGES`: no negative intervals, no zero debounce, no absurd sizes) and a ``metric_patterns``
regex that does not compile or lacks the ``name`` and ``value`` groups.
Domain packages read their own section (``config.watch``, ``config.tracking`` ...).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError


@dataclass
class StoreConfig:
    """``[store]``: where objects live and how they are written."""

    cache_dir: str = ""
    """Blob cache folder; empty means ``.workbench/cache``. Share one between projects by pointing here."""
    chunk_threshold: int = 8 * 1024 * 1024
    """Files at least this large are split by content-defined chunking."""
    compression_level: int = 3
    """zstd level for compressible objects."""


@dataclass
class WatchConfig:
    """``[watch]``: the auto-versioning watcher."""

    quiet_seconds: float = 1.0
    """Snapshot once the folder has been quiet this long."""
    max_interval_seconds: float = 30.0
    """Snapshot at least this often while changes keep coming."""
    retention: str = "1h:all,1d:1h,30d:1d"
    """Thinning rule for auto snapshots: AGE:KEEP pairs (keep all younger than 1h, one per hour to 1d...)."""


@dataclass
class TrackingConfig:
    """``[tracking]``: zero-code capture for ``workbench run``."""

    capture_stdout_metrics: bool = True
    """Parse ``name: value`` and ``name=value`` lines on stdout as metrics."""
    metric_patterns: list[str] = field(default_factory=list)
    """Extra regexes with named groups ``name`` and ``value`` (and optionally ``step``)."""
    capture_file_access: bool = True
    """Record files a Python child opens, through audit hooks."""
    capture_argv_params: bool = True
    """Turn ``--flag value`` arguments into params."""
    capture_own_output: bool = True
    """Store what a plain ``python train.py`` (a script's own run) prints, as ``workbench run`` does."""


@dataclass
class ExecutorConfig:
    """``[executor]``: where runs go by default."""

    default: str = "local"
    image: str = ""
    namespace: str = ""
    gpus: int = 0
    remote_inputs: bool = True
    """With a default remote, Docker/Kubernetes jobs fetch their inputs from it and push outputs back
    (false: stage them through this host; ``workbench run --no-remote-inputs`` for one run)."""


@dataclass
class DeployConfig:
    """``[deploy]``: defaults for ``workbench deploy``."""

    target: str = "local"
    namespace: str = ""
    image: str = ""
    server: str = "mlserver"
    """The model server behind the V2 protocol: ``mlserver`` or ``kserve`` (``deploy --server``)."""
    storage_class: str = ""
    """Cluster deployments without an S3 remote: the StorageClass of the model volume ("" for the
    cluster's default)."""
    storage_access: str = "ReadWriteOnce"
    """Its access mode; several replicas need ``ReadWriteMany`` (or an S3 remote, from which each pod
    fetches the model itself)."""
    remote_endpoint: str = ""
    """The S3 endpoint pods use to fetch models when it differs from the remote's (an in-cluster
    address); "" for the remote's own."""
    fetch_secret: str = ""
    """An existing Secret (keys ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optionally
    ``AWS_SESSION_TOKEN``) the pods fetch models with, e.g. a read-only key; "" copies the deploying
    user's own credentials into a Secret ``NAME-model-fetch``."""
    image_frameworks: list[str] = field(default_factory=list)
    """The framework versions ``image`` holds (``["scikit-learn==1.5.2"]``): a model saved with one it
    cannot load is refused before any rollout."""


@dataclass
class MonitorConfig:
    """``[monitor]``: what is kept of the predictions deployments answered; drift, data quality and
    alerts on them (docs/monitor.md)."""

    retention: str = ""
    """Applied on ingest: an age (``30d``, ``12h``), a count per deployment (``1000000``), both
    (``30d,1000000``), or "" to keep every prediction."""
    window: str = "1000"
    """Default window: a count of predictions (``1000``) or a time span (``30m``, ``1h``, ``1d``)."""
    history: int = 20
    """How many past windows ``monitor`` and the Monitor screen show (sparklines)."""
    min_rows: int = 100
    """A window with fewer answered rows is reported but never turns a feature warning or drifting."""
    psi_warning: float = 0.1
    """Population stability index at which a feature (or the prediction) turns ``warning``."""
    psi_drifting: float = 0.25
    """PSI at which it turns ``drifting``."""
    wasserstein_warning: float = 0.25
    """Wasserstein distance over the reference standard deviation at which a number turns ``warning``."""
    wasserstein_drifting: float = 0.5
    """Normalised Wasserstein distance at which a number turns ``drifting``."""
    js_warning: float = 0.1
    """Jensen-Shannon distance (base 2) at which a category turns ``warning``."""
    js_drifting: float = 0.2
    """Jensen-Shannon distance at which a category turns ``drifting``."""
    degraded_drop: float = 0.1
    """Relative loss against the training metric (accuracy, F1 down; MAE, RMSE up) that means ``degraded``."""
    on_alert: list[str] = field(default_factory=list)
    """A command (argv, no shell) run with the alert as JSON on stdin when a deployment's state changes."""


@dataclass
class UiConfig:
    """``[ui]``: remembered TUI preferences."""

    theme: str = "workbench-dark"


@dataclass
class ProjectConfig:
    """The whole project configuration."""

    store: StoreConfig = field(default_factory=StoreConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)


RANGES: dict[str, tuple[float, float]] = {
    "store.chunk_threshold": (64 * 1024, 1 << 40),
    "store.compression_level": (1, 22),
    "watch.quiet_seconds": (0.01, 86_400.0),
    "watch.max_interval_seconds": (0.01, 7 * 86_400.0),
    "executor.gpus": (0, 1024),
    "monitor.history": (1, 1000),
    "monitor.min_rows": (1, 1 << 40),
    "monitor.psi_warning": (0.0, 100.0),
    "monitor.psi_drifting": (0.0, 100.0),
    "monitor.wasserstein_warning": (0.0, 100.0),
    "monitor.wasserstein_drifting": (0.0, 100.0),
    "monitor.js_warning": (0.0, 1.0),
    "monitor.js_drifting": (0.0, 1.0),
    "monitor.degraded_drop": (0.0, 1.0),
}
"""Inclusive bounds of each numeric key, ``section.key`` -> (lowest, highest)."""


MODEL_SERVERS = ("mlserver", "kserve")
"""What ``[deploy] server`` accepts (``workbench.deploy.servers`` implements each)."""


def _check_ranges(config: ProjectConfig) -> None:
    for name, (low, high) in RANGES.items():
        section, key = name.split(".")
        value = getattr(getattr(config, section), key)
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"config '{name}' must be between {low:g} and {high:g}, got {value:g}",
                              f"fix [{section}] {key}")
    if config.watch.max_interval_seconds < config.watch.quiet_seconds:
        raise ConfigError(f"config 'watch.max_interval_seconds' ({config.watch.max_interval_seconds:g}) "
                          f"is below 'watch.quiet_seconds' ({config.watch.quiet_seconds:g})",
                          "the longest wait cannot be shorter than the quiet period")
    _check_monitor(config.monitor)
    if config.deploy.server not in MODEL_SERVERS:
        raise ConfigError(f"config 'deploy.server' is {config.deploy.server!r}, not a model server",
                          f"use one of {', '.join(MODEL_SERVERS)}")
    for index, pattern in enumerate(config.tracking.metric_patterns):
        where = f"config 'tracking.metric_patterns[{index}]'"
        if not isinstance(pattern, str):
            raise ConfigError(f"{where} must be a string (a regex)", "quote the pattern")
        try:
            groups = re.compile(pattern).groupindex
        except re.error as exc:
            raise ConfigError(f"{where} is not a valid regex: {exc}", "fix the pattern") from None
        if not {"name", "value"} <= set(groups):
            raise ConfigError(f"{where} has no (?P<name>...) and (?P<value>...) groups",
                              "name the groups that capture the metric's name and value")


_WINDOW = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def _check_monitor(monitor: MonitorConfig) -> None:
    for low, high in (("psi_warning", "psi_drifting"), ("wasserstein_warning", "wasserstein_drifting"),
                      ("js_warning", "js_drifting")):
        if getattr(monitor, high) < getattr(monitor, low):
            raise ConfigError(f"config 'monitor.{high}' is below 'monitor.{low}'",
                              "drifting must be at least the warning threshold")
    if not _WINDOW.match(monitor.window):
        raise ConfigError(f"config 'monitor.window' must be a count (1000) or a time span (30m, 1h), "
                          f"got {monitor.window!r}")
    if not all(isinstance(part, str) for part in monitor.on_alert):
        raise ConfigError("config 'monitor.on_alert' must be a list of strings (a command's argv)",
                          'write on_alert = ["program", "arg"]')


def _build(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{where}{key}'", f"valid keys: {', '.join(known)}")
        default = getattr(cls(), key)
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config '{where}{key}' must be a table")
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
            continue
        if isinstance(default, bool) != isinstance(value, bool) or (
            isinstance(default, float) and not isinstance(value, int | float)
        ) or (not isinstance(default, float | bool) and not isinstance(value, type(default))):
            raise ConfigError(
                f"config '{where}{key}' must be {type(default).__name__}, got {type(value).__name__}"
            )
        kwargs[key] = float(value) if isinstance(default, float) else value
    return cls(**kwargs)


def load_config(path: Path) -> ProjectConfig:
    """Read and validate a config file; a missing file gives the defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ProjectConfig()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None
    except OSError as exc:  # a folder of that name, no permission, an I/O error
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}",
                          "it must be a readable TOML file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}", "fix the TOML syntax") from None
    try:
        config: ProjectConfig = _build(ProjectConfig, data, "")
        _check_ranges(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", exc.hint) from None
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def dump_config(config: ProjectConfig) -> str:
    """Render a config as TOML (every section, every key, so users see what they can set)."""
    lines: list[str] = []
    for section, values in asdict(config).items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def save_config(path: Path, config: ProjectConfig) -> None:
    """Write a config atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dump_config(config), encoding="utf-8")
    tmp.replace(path)
