"""What every executor offers: run a :class:`LaunchSpec` somewhere and hand back its lines, its exit
and its files. Executors know nothing of runs; the orchestration that records one (markers,
ingest, finalising, re-attaching) lives above them in :mod:`workbench.tracking`.

The caller builds a :class:`LaunchSpec` and asks an :class:`Executor` to launch it. The executor
returns a :class:`Job` whose :meth:`Job.lines` yields the job's output line by line as it happens:
ordinary stdout/stderr lines, and the lines of the spec's :class:`SideChannel` (channel
``"event"``), either from a file the job writes (local, Docker) or behind the channel's marker on
stdout (cluster pods); :meth:`Job.wait` gives the exit. An executor that runs the job in a folder
of its own (Docker, Kubernetes) says where the job sees that folder (:attr:`Executor.workspace`)
and hands it back through :meth:`Executor.output_folder` (a :class:`JobOutputs`: the job's
finished files, the ones it created or changed, and how to release the folder); the caller decides
what to do with them. :meth:`Executor.collect_outputs` copies them back unconditionally (used by a
re-attached job). Cancel must be safe to call at any time, from any thread, more than once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Channel = Literal["stdout", "stderr", "event"]


@dataclass(frozen=True)
class SideChannel:
    """Lines a job writes apart from its output; to an executor they are opaque lines.

    The executor sets :attr:`env` in the job's environment to where the job should write them: a
    file it can read (:attr:`path` here, or a file in a folder it mounts), or :attr:`on_stdout`
    where no file can come back (a cluster pod), in which case the job prints each line on stdout
    behind :attr:`marker`.
    """

    env: str
    """The environment variable that tells the job where to write the lines."""
    path: Path
    """A file on this host for them (the local executor tails it)."""
    on_stdout: str
    """The value of :attr:`env` that makes the job print them on stdout behind :attr:`marker`."""
    marker: bytes
    """Prefix of such a stdout line: stripped, and the line is never cut (streams.MAX_SIDE_LINE)."""


@dataclass
class LaunchSpec:
    """Everything an executor needs to start one job."""

    job_id: str
    """The caller's id for the job: names its folder, container or Job, and its record."""
    command: list[str]
    project_root: Path
    input_snapshot: str
    """Snapshot id of the code and data that go in; remote executors stage exactly this."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the job."""
    side: SideChannel | None = None
    """Where the job's side-channel lines go (None: it has none)."""
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
    """Removes the folder once the caller is done with it (safe to call more than once)."""


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
        """Facts about the job for the caller to keep (container id, image digest, job name, node ...)."""
        ...


class Executor(Protocol):
    """Something that runs a command somewhere."""

    name: str
    workspace: str
    """Where the job sees the project ("" when it runs in the project folder itself): paths the job
    reports are paths there."""

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
