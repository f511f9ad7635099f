"""The ``workbench`` command line: parse, call the Workspace, render (Rich tables or ``--json``).

Each command group lives in its own module (``cmd_store``, ``cmd_runs`` ...) exposing
``register(subparsers)``; a command's handler takes the parsed ``argparse.Namespace`` and returns an
exit status. Imports are lazy so that ``workbench status`` starts in tens of milliseconds.
Every :class:`~workbench.errors.WorkbenchError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse is imported when a parser is built (a warm `run` never builds one)
    import argparse
    from collections.abc import Sequence

COMMAND_MODULES = (
    "workbench.cli.cmd_store",
    "workbench.cli.cmd_watch",
    "workbench.cli.cmd_runs",
    "workbench.cli.cmd_exec",
    "workbench.cli.cmd_deploy",
    "workbench.cli.cmd_workflows",
    "workbench.cli.cmd_ui",
    "workbench.cli.cmd_remote",
    "workbench.cli.cmd_export",
    "workbench.cli.cmd_import",
    "workbench.cli.cmd_monitor",
    "workbench.cli.cmd_predictions",
)

# Which module registers each top-level command, so that running one command imports one module
# (start-up time is a feature: `workbench status` must answer in tens of milliseconds).
# tests/cli/test_help.py checks this table against what the modules actually register.
COMMAND_TO_MODULE = {
    **dict.fromkeys(
        ("init", "snapshot", "status", "log", "diff", "restore", "cat", "fsck", "gc"),
        "workbench.cli.cmd_store",
    ),
    **dict.fromkeys(("watch", "prune-auto"), "workbench.cli.cmd_watch"),
    **dict.fromkeys(
        ("run", "runs", "show", "metrics", "logs", "compare", "lineage", "models", "rerun"),
        "workbench.cli.cmd_runs",
    ),
    **dict.fromkeys(("gpus", "cluster"), "workbench.cli.cmd_exec"),
    **dict.fromkeys(
        ("deploy", "deployments", "scale", "rollback", "undeploy", "predict"), "workbench.cli.cmd_deploy"
    ),
    **dict.fromkeys(("repro", "dag", "sweep", "sweeps"), "workbench.cli.cmd_workflows"),
    **dict.fromkeys(("ui", "demo"), "workbench.cli.cmd_ui"),
    **dict.fromkeys(("remote", "push", "pull", "clone"), "workbench.cli.cmd_remote"),
    "export": "workbench.cli.cmd_export",
    "import": "workbench.cli.cmd_import",
    "monitor": "workbench.cli.cmd_monitor",
    **dict.fromkeys(("predictions", "feedback", "retrain"), "workbench.cli.cmd_predictions"),
}


_PREBUILT: dict[str | None, argparse.ArgumentParser] = {}
"""Parsers built ahead by :func:`prebuild`, each taken by the next :func:`main` (the warm recorder
builds ``run``'s before it forks a worker: ~8 ms of argparse and gettext look-ups)."""


def prebuild(command: str) -> None:
    """Build the parser ``main`` will need for ``command`` now (see :data:`_PREBUILT`)."""
    only = COMMAND_TO_MODULE[command]
    _PREBUILT[only] = build_parser(only)


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (skipping the global options), or None."""
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "-C":
            skip = True
            continue
        if token.startswith("-"):
            if token in ("-h", "--help"):
                return None
            continue
        return token
    return None


def build_parser(only_module: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only_module``) one holding just that module's commands."""
    import argparse

    class _Parser(argparse.ArgumentParser):
        """argparse that reports usage errors as one line with a hint, exit status 2."""

        def error(self, message: str) -> None:  # type: ignore[override]
            sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
            raise SystemExit(2)

    parser = _Parser(
        prog="workbench",
        description="A terminal workbench for machine learning: versioning, runs, launch, deploy.",
    )
    parser.add_argument("-C", dest="directory", metavar="DIR", help="run as if started in DIR")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in COMMAND_MODULES:
        if only_module is not None and module_name != only_module:
            continue
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if argv is None and args_list[:1] == ["status"]:  # nothing changed since the last status: sealed
        from workbench.versioning import seal

        sealed = seal.main(args_list)
        if sealed is not None:
            return sealed
    command = _command_of(args_list)
    if argv is None and command == "run":  # a process of its own: a warm recorder may run it
        from workbench.cli import warm

        try:
            warm_status = warm.run_warm(args_list)
        except KeyboardInterrupt:  # before the worker's go-ahead: nothing was started
            sys.stderr.write("interrupted\n")
            return 130
        if warm_status is not None:
            return warm_status
        try:
            return _main(args_list, command)
        finally:
            if warm.absent:
                warm.start_recorder()
    if argv is None and _opens_a_session(command, args_list):
        from workbench.cli import warm

        warm.start_recorder()  # so the first `workbench run` from another pane is warm too
    return _main(args_list, command)


def _opens_a_session(command: str | None, args: list[str]) -> bool:
    """The TUI (``workbench``, ``workbench ui``) or a watcher (``workbench watch``): a long session in
    the project, beside which the user runs ``workbench run``."""
    if {"-h", "--help", "--version", "--status"} & set(args):
        return False
    return command in (None, "ui", "watch")


def _main(args_list: list[str], command: str | None) -> int:
    if command is None and "--version" in args_list and not {"-h", "--help"} & set(args_list):
        only: str | None = ""  # `workbench --version`: no command module is imported (start-up is a feature)
    else:
        only = COMMAND_TO_MODULE.get(command or "")
    parser = _PREBUILT.pop(only, None) or build_parser(only)
    args = parser.parse_args(args_list)
    if args.version:
        from workbench import __version__

        print(__version__)
        return 0
    if args.directory:
        try:
            os.chdir(args.directory)
        except OSError as exc:
            sys.stderr.write(f"error: cannot enter {args.directory}: {exc.strerror}\n")
            return 2
    handler = getattr(args, "handler", None)
    if handler is None:
        # No subcommand: open the TUI on the project around the cwd.
        parser = build_parser(COMMAND_TO_MODULE["ui"])
        args = parser.parse_args([*args_list, "ui"])
        handler = args.handler
    import sqlite3

    from workbench.errors import WorkbenchError

    try:
        status: int = handler(args)
        return status
    except WorkbenchError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        return exc.exit_code
    except sqlite3.Error as exc:  # a damaged or locked database met after opening: still one line
        from workbench.store.db import database_error

        error = database_error(exc)
        sys.stderr.write(f"error: {error.one_line()}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
