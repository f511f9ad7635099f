"""What every importer produces: runs of a foreign tool in one shape, and the error for a missing extra."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError

SOURCE_TAG = "imported_from"
"""The tag holding ``KIND:SOURCE_ID`` on every imported run: how a re-import finds it again."""


class ImportSourceError(WorkbenchError):
    """A source that cannot be read: missing, not of the kind named, or its server refuses."""


class MissingExtraError(WorkbenchError):
    """An importer needs a package that the base install leaves out."""

    def __init__(self, package: str, extra: str = "import", what: str = "this importer",
                 also: str = "") -> None:
        super().__init__(f"{what} needs the '{package}' package, which is not installed",
                         f"pip install 'workbench[{extra}]'{also}")


@dataclass(slots=True)
class Series:
    """One metric's points, in parallel lists (steps ints, times in seconds, values floats)."""

    steps: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: int, time: float, value: float) -> None:
        self.steps.append(step)
        self.times.append(time)
        self.values.append(value)


@dataclass
class ModelFile:
    """A registered model version of the source: its name, version and the file or folder it points at."""

    name: str
    version: int
    path: Path | None
    run_source_id: str | None
    aliases: list[str] = field(default_factory=list)


@dataclass
class SourceRun:
    """One run of a foreign tool. ``load_metrics`` is called once, when the run is written, so a
    source with many runs never holds every run's points at once."""

    kind: str
    source_id: str
    name: str
    status: str
    started_at: float
    ended_at: float | None
    params: dict[str, object] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    load_metrics: Callable[[], dict[str, Series]] = dict
    load_new_metrics: Callable[[dict[str, int]], dict[str, Series]] | None = None
    """Where the source can filter: the points past the last step stored per key (a re-import
    then reads only what is new)."""
    parent_id: str | None = None
    """The source id of the run this one is nested in (MLflow's ``mlflow.parentRunId``)."""
    artifacts: Path | None = None
    """A folder of the run's artifacts (or one file), stored in the blob cache and listed as outputs."""

    @property
    def source_key(self) -> str:
        return f"{self.kind}:{self.source_id}"


@dataclass
class Source:
    """An opened source: how many runs it has (for progress), the runs, and its registered models."""

    kind: str
    description: str
    count: int
    runs: Callable[[], Iterator[SourceRun]]
    models: Callable[[], list[ModelFile]] = list


def sorted_series(series: Series) -> Series:
    """The points by step, one per step: where a step was logged more than once the latest
    (by time, then by order logged) wins, as MLflow's own "latest value" does."""
    if all(a < b for a, b in zip(series.steps, series.steps[1:], strict=False)):
        return series
    order = sorted(range(len(series.steps)), key=lambda i: (series.steps[i], series.times[i], i))
    out = Series()
    for i in order:
        if out.steps and out.steps[-1] == series.steps[i]:
            out.times[-1], out.values[-1] = series.times[i], series.values[i]
        else:
            out.add(series.steps[i], series.times[i], series.values[i])
    return out
