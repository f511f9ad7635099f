"""RunRequest: what to run and how to record it, as one value.

The CLI (``workbench run``, ``sweep``) and the TUI's launch dialog build one; ``ws.runs.execute``,
the run orchestrator (:mod:`workbench.tracking.runner`), pipelines and sweeps pass it through
unchanged, or derive another with :func:`dataclasses.replace` (a sweep member's name and params, a
rerun's parent and settings). Adding a launch option means adding one field here, not a keyword
argument at every layer. What is not a value stays apart: ``on_line`` and ``cancel_event`` are
arguments of ``execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import UsageError


@dataclass(frozen=True)
class RunRequest:
    """One run to start; see docs/CONTRACTS.md (ws.runs.execute) for what each field does."""

    command: tuple[str, ...]
    """The argv to run (never through a shell)."""
    name: str | None = None
    tags: tuple[str, ...] = ()
    """``KEY=VALUE`` strings."""
    executor: str | None = None
    """local | docker | kubernetes (aliases allowed); None: the project's ``[executor] default``."""
    image: str | None = None
    gpus: int | str | None = None
    """None or 0: no GPU; a count; ``"all"`` (local, docker)."""
    cpu: str | None = None
    memory: str | None = None
    namespace: str | None = None
    workdir: str = "."
    """Working directory, relative to the project root."""
    isolated: bool = False
    """Local runs: in a checkout of :attr:`snapshot_before`, outputs copied back by isolation's rule."""
    snapshot_before: str | None = None
    """The input snapshot (default: a new ``run-before`` snapshot)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Params given from outside the command (sweep members, pipeline stages), source ``api``."""
    models: tuple[str, ...] = ()
    """Paths declared as models whatever their bytes (a pipeline stage's ``models:``)."""
    model_names: Mapping[str, str] = field(default_factory=dict)
    """model path -> registry name for some of :attr:`models` (dvc.yaml ``artifacts``)."""
    metrics: tuple[str, ...] = ()
    """Project paths of JSON/YAML/TOML files whose values become the run's metrics once it ends."""
    plots: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Project path -> plot options (``x``, ``y``) of tabular files that become series once the run
    writes them (dvc.yaml ``plots``; :mod:`workbench.tracking.plot_files`)."""
    parent_run: str | None = None
    sweep_id: str | None = None
    pipeline_run: str | None = None
    stage: str | None = None

    def __post_init__(self) -> None:
        # Lists given by callers become tuples, so the value cannot change under a running job.
        for name in ("command", "tags", "models", "metrics"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not isinstance(self.gpus, (int, type(None))) and str(self.gpus).isdigit():
            object.__setattr__(self, "gpus", int(str(self.gpus)))
        object.__setattr__(self, "params", dict(self.params or {}))
        object.__setattr__(self, "model_names", dict(self.model_names or {}))
        object.__setattr__(self, "plots", {k: dict(v) for k, v in (self.plots or {}).items()})


def as_request(value: RunRequest | Sequence[str]) -> RunRequest:
    """A request as it is, or a bare command as a request with every default."""
    return value if isinstance(value, RunRequest) else RunRequest(tuple(value))


FLAGS = (("--name", "name"), ("--executor", "executor"), ("--image", "image"), ("--gpus", "gpus"),
         ("--cpu", "cpu"), ("--memory", "memory"), ("--namespace", "namespace"))
"""The valued flags of ``workbench run`` and the request field each sets."""


def run_argv(request: RunRequest) -> list[str]:
    """The arguments after ``workbench run`` that ask for ``request`` (``-q`` and ``--json`` are the
    caller's). Refuses fields the command line cannot carry (sweeps, pipelines, reruns set them)."""
    inexpressible = [name for name in ("snapshot_before", "parent_run", "sweep_id", "pipeline_run", "stage")
                     if getattr(request, name) is not None]
    inexpressible += [name for name in ("params", "models", "model_names", "metrics", "plots")
                      if getattr(request, name)]
    inexpressible += ["workdir"] if request.workdir != "." else []
    if inexpressible:
        raise UsageError(f"'workbench run' has no flag for {', '.join(inexpressible)}")
    argv: list[str] = []
    for flag, name in FLAGS:
        value = getattr(request, name)
        if value is not None and value != "":
            argv += [flag, str(value)]
    for tag in request.tags:
        argv += ["--tag", tag]
    argv += ["--isolated"] if request.isolated else []
    return [*argv, "--", *request.command]
