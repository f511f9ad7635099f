"""What the monitor package needs from the project around it: :class:`MonitorHost`.

Monitoring sits above the services it watches and drives (deployments, runs, pipelines, the blob
cache): capture ingest reads the deployments' records and pod logs, retrain re-runs a run or a
pipeline stage and rolls the winner out. The Workspace is such a host and hands itself in; this
protocol names exactly the parts used, so that nothing here imports the facade above it
(tests/import_rules.py) and a test can stand in a smaller host.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import sqlite3

    from workbench.clock import Clock
    from workbench.config import ProjectConfig
    from workbench.deploy.service import DeployService
    from workbench.monitor.predictions import PredictionService
    from workbench.paths import ProjectPaths
    from workbench.tracking.service import TrackingService
    from workbench.versioning.service import VersioningService
    from workbench.workflows.service import WorkflowService


class MonitorHost(Protocol):
    """The project's store, folders, config and clock, and the services monitoring works through."""

    @property
    def db(self) -> sqlite3.Connection: ...

    def atomic(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def config(self) -> ProjectConfig: ...

    @property
    def paths(self) -> ProjectPaths: ...

    @property
    def runs(self) -> TrackingService: ...

    @property
    def deployments(self) -> DeployService: ...

    @property
    def workflows(self) -> WorkflowService: ...

    @property
    def versions(self) -> VersioningService: ...

    @property
    def predictions(self) -> PredictionService: ...
