"""``workbench run``'s flags and :class:`~workbench.tracking.request.RunRequest`, both ways.

:func:`request_from_args` builds the request the CLI hands to ``ws.runs.execute``;
:func:`run_argv` writes the ``workbench run`` arguments that give back the same request, which is
how the TUI starts a run in a process of its own. Keeping both here keeps them each other's inverse
(tests/cli/test_run_request.py checks the round trip through the real parser).
"""

from __future__ import annotations

import argparse

from workbench.errors import UsageError
from workbench.tracking.request import RunRequest

FLAGS = (("--name", "name"), ("--executor", "executor"), ("--image", "image"), ("--gpus", "gpus"),
         ("--cpu", "cpu"), ("--memory", "memory"), ("--namespace", "namespace"))
"""The valued flags of ``workbench run`` and the request field each sets."""


def request_from_args(args: argparse.Namespace) -> RunRequest:
    """The request ``workbench run`` parsed into ``args`` asks for (``--executor`` unset: None, the
    project's default). An empty command is refused before any project is opened."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command to run", "put it after '--': workbench run -- python train.py --lr 0.1")
    return RunRequest(
        tuple(command), name=args.name, tags=tuple(args.tag), executor=args.executor, image=args.image,
        gpus=args.gpus, cpu=args.cpu, memory=args.memory, namespace=args.namespace, isolated=args.isolated)


def run_argv(request: RunRequest) -> list[str]:
    """The arguments after ``workbench run`` that ask for ``request`` (``-q`` and ``--json`` are the
    caller's). Refuses fields the command line cannot carry (sweeps, pipelines, reruns set them)."""
    inexpressible = [name for name in ("snapshot_before", "parent_run", "sweep_id", "pipeline_run", "stage")
                     if getattr(request, name) is not None]
    inexpressible += [name for name in ("params", "models") if getattr(request, name)]
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
