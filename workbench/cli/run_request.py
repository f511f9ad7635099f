"""``workbench run``'s flags and :class:`~workbench.tracking.request.RunRequest`, both ways.

:func:`request_from_args` builds the request the CLI hands to ``ws.runs.execute``;
:func:`~workbench.tracking.request.run_argv` (beside the request, so that the TUI can use it too)
writes the ``workbench run`` arguments that give back the same request, which is how the TUI
starts a run in a process of its own; tests/cli/test_run_request.py checks that the two are each
other's inverse through the real parser.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from workbench.errors import UsageError
from workbench.tracking.request import RunRequest, run_argv

__all__ = ["in_current_folder", "request_from_args", "run_argv"]


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


def in_current_folder(request: RunRequest, root: Path) -> RunRequest:
    """``request`` run in the folder the user typed it in (``cd src && workbench run -- python
    train.py`` runs ``src/train.py``, as the shell would), where that folder is inside the project
    ``root``; from anywhere else (``-C DIR``), at the project's top."""
    from workbench.tracking.run_paths import current_workdir

    workdir = current_workdir(root)
    return request if workdir == "." else dataclasses.replace(request, workdir=workdir)
