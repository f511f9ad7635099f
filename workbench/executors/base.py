"""The contract between the run orchestrator (workbench.tracking.runner) and every executor.

The orchestrator snapshots the inputs, creates the run row, builds a :class:`LaunchSpec` and asks an
:class:`Executor` to launch it. The executor returns a :class:`Job` whose :meth:`Job.lines` yields the
job's output line by line as it happens: ordinary stdout/stderr lines, and wire-format event lines
(see workbench.tracking.events) either from an events file the job writes (local, Docker) or marked
on stdout (cluster pods). The orchestrator ingests them, then calls :meth:`Job.wait` for the exit.
An executor that runs the job in a folder of its own (Docker, Kubernetes) hands that folder back
through :meth:`Executor.output_folder` (a :class:`JobOutputs`: the job's finished files, the ones it
created or changed, and how to release the folder); the orchestrator records, hashes and copies them
into the project by its own rule. :meth:`Executor.collect_outputs` copies them back unconditionally
(used by a re-attached run). Cancel must be safe to call at any time, from any thread, more than once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def _nothing() -> None:
    return None


@dataclass
class JobOutputs:
    """The files a job wrote, as they came out of its container or pod, in a local folder."""

    folder: Path
    """Holds the job's files at their project-relative paths (a full checkout, or only the changed)."""
    paths: list[str]
    """Project-relative paths the job created or changed (from the executor's manifest)."""
    discard: Callable[[], None] = _nothing
    """Removes the folder once the orchestrator is done with it (safe to call more than once)."""


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

    def output_folder(self, spec: LaunchSpec, job: Job) -> JobOutputs | None:
        """The job's finished files in a local folder, nothing copied into the project; None when
        the job ran in the project itself (local) or left nothing to bring back (cancelled)."""
        ...
