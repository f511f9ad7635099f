"""What the three MLflow readers share: status names, artifact locations, the run's shape."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from workbench.importers.model import Series

STATUS = {
    "FINISHED": "succeeded", "FAILED": "failed", "KILLED": "cancelled", "RUNNING": "running",
    "SCHEDULED": "running",
}
"""MLflow's run status -> Workbench's."""
FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
"""The file store writes the status as RunStatus's number."""
KEPT_AS_NAME = "mlflow.runName"


def status_of(name: object) -> str:
    return STATUS.get(str(name).upper(), "failed")


def local_path(uri: str | None, bases: list[Path]) -> Path | None:
    """Where an artifact URI is on this machine, or None (a remote store, or gone).

    An absolute path that no longer exists (the store was copied or moved) is looked for again from
    its ``mlruns/`` or ``mlartifacts/`` part on under each of ``bases``; a relative one is taken from
    each base."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":  # a server's proxied store: ./mlartifacts where it ran
        served = unquote(parsed.path).lstrip("/")
        return next((p for base in bases if (p := base / "mlartifacts" / served).exists()), None)
    if parsed.scheme not in ("", "file") or (len(parsed.scheme) == 1 and uri[1] == ":"):
        return None  # s3://, gs://, models:/ ... are not read here
    raw = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
    candidates: list[Path] = []
    if raw.is_absolute():
        candidates.append(raw)
        parts = raw.parts
        for anchor in ("mlruns", "mlartifacts"):
            if anchor in parts:
                tail = Path(*parts[len(parts) - 1 - parts[::-1].index(anchor):])
                candidates.extend(base / tail for base in bases)
    else:
        candidates.extend(base / raw for base in bases)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return None


def split_tags(tags: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(run name, the other tags): ``mlflow.runName`` is the run's name, not a tag."""
    name = tags.pop(KEPT_AS_NAME, "")
    return name, tags


PARENT_TAG = "mlflow.parentRunId"
"""A nested run's parent (``mlflow.start_run(nested=True)``)."""


def as_series(points: list[tuple[int, float, float]]) -> Series:
    """The (step, unix seconds, value) points :mod:`workbench.tracking.mlflow_store` reads, as a Series."""
    return Series([p[0] for p in points], [p[1] for p in points], [p[2] for p in points])
