"""The contract between the run orchestrator (workbench.tracking.runner) and every executor.

The orchestrator snapshots the inputs, creates the run row, builds a :class:`LaunchSpec` and asks an
:class:`Executor` to launch it. The executor returns a :class:`Job` whose :meth:`Job.lines` yields the
job's output line by line as it happens: ordinary stdout/stderr lines, and wire-format event lines
(see workbench.tracking.events) either from an events file the job writes (local, Docker) or marked
on stdout (cluster pods). The orchestrator ingests them, then calls :meth:`Job.wait` for the exit
and :meth:`Executor.collect_outputs` to bring files the job wrote back into the project, before the
after-snapshot. Cancel must be safe to call at any time, from any thread, more than once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Channel = Literal["stdout", "stderr", "event"]


@dataclass
class LaunchSpec:
    """Everything an executor needs to start one run."""

    run_id: str
    command: list[str]
    project_root: Path
    input_snapshot: str
    """Snapshot id of the code and data that go in; remote executors stage exactly this."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the job (WORKBENCH_RUN_ID, WORKBENCH_EVENTS ...)."""
    image: str | None = None
    gpus: int | str | None = None
    """None or 0: no GPU; an int: that many; "all": every GPU."""
    cpu: str | None = None
    memory: str | None = None
    namespace: str | None = None
    workdir: str = "."
    """Working directory relative to the project root."""


@dataclass
class JobExit:
    """How a job ended."""

    exit_code: int | None
    status: Literal["succeeded", "failed", "cancelled", "lost"]
    reason: str = ""
    """Words for a person: 'OOMKilled', 'killed by SIGTERM', 'image pull failed: ...'."""


class Job(Protocol):
    """A launched job."""

    def lines(self) -> Iterator[tuple[Channel, bytes]]:
        """Output lines (without the trailing newline) as they come, until the job ends."""
        ...

    def wait(self) -> JobExit:
        """Block until the job has ended; returns how."""
        ...

    def cancel(self) -> None:
        """Stop the job and release what it holds (container, pods)."""
        ...

    def describe(self) -> dict[str, str]:
        """Facts to record with the run (container id, image digest, job name, node ...)."""
        ...


class Executor(Protocol):
    """Something that runs a command somewhere."""

    name: str

    def check(self, spec: LaunchSpec) -> None:
        """Raise ExecutorError with a one-line fix before anything is created, if launching cannot work."""
        ...

    def launch(self, spec: LaunchSpec) -> Job:
        ...

    def collect_outputs(self, spec: LaunchSpec, job: Job) -> list[str]:
        """Copy files the job wrote back into the project; return their project-relative paths."""
        ...
