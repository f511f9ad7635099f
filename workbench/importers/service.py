"""The import service: opens a source of the kind named and writes it into the project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from workbench.importers.model import ImportSourceError, Source
from workbench.importers.writer import ImportReport, ImportWriter
from workbench.tracking.service import TrackingService

KINDS = ("mlflow", "tensorboard", "wandb", "dvc")


def open_mlflow(target: str) -> Source:
    """An ``mlruns`` folder, ``sqlite:///PATH``, a path to an SQLite file, or ``http(s)://SERVER``."""
    from workbench.importers.mlflow_files import open_file_store
    from workbench.importers.mlflow_sqlite import open_sqlite_store

    if target.startswith(("http://", "https://")):
        from workbench.importers.mlflow_rest import open_server

        return open_server(target)
    if target.startswith("sqlite:"):
        rest = target[len("sqlite:"):]  # sqlite:///relative/path or sqlite:////absolute/path
        return open_sqlite_store(Path(rest[3:] if rest.startswith("///") else rest.lstrip("/")).expanduser())
    if target.startswith("file:"):
        target = target[len("file:"):].removeprefix("//")
    path = Path(target).expanduser()
    if path.is_file():
        return open_sqlite_store(path)
    if path.is_dir():
        return open_file_store(path)
    raise ImportSourceError(f"no such MLflow store: {target}",
                            "give an mlruns folder, an mlflow.db, sqlite:///PATH or http(s)://SERVER")


def open_source(kind: str, target: str, *, lock_only: bool = False) -> Source:
    if kind == "mlflow":
        return open_mlflow(target)
    if kind == "tensorboard":
        from workbench.importers.tensorboard import open_logdir

        return open_logdir(Path(target))
    if kind == "wandb":
        from workbench.importers.wandb import open_wandb

        return open_wandb(Path(target))
    if kind == "dvc":
        from workbench.importers.dvc import open_dvc

        return open_dvc(Path(target), lock_only=lock_only)
    raise ImportSourceError(f"unknown import kind {kind!r}", f"use one of {', '.join(KINDS)}")


class ImportService:
    """``ws.imports``: bring other tools' runs into the project."""

    def __init__(self, runs: TrackingService) -> None:
        self.runs = runs

    def open(self, kind: str, target: str, *, lock_only: bool = False) -> Source:
        return open_source(kind, target, lock_only=lock_only)

    def write(self, source: Source, *, artifacts: bool = True,
              progress: Callable[[int, int], None] | None = None) -> ImportReport:
        return ImportWriter(self.runs, artifacts=artifacts).write_source(source, progress)

    def import_(self, kind: str, target: str, *, artifacts: bool = True,
                progress: Callable[[int, int], None] | None = None) -> ImportReport:
        return self.write(self.open(kind, target), artifacts=artifacts, progress=progress)
