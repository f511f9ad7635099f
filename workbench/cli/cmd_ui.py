"""CLI commands of the ui group: ``workbench ui`` (the TUI) and ``workbench demo``.

``workbench`` with no subcommand runs ``ui``. ``workbench demo [DIR]`` generates a demo project
with real runs (scikit-learn on the bundled digits dataset) and opens the TUI on it; ``--no-open``
only generates it, ``--deterministic`` fixes times and ids (for screenshots and snapshot tests).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

SCREEN_CHOICES = ("overview", "history", "runs", "models", "deployments", "pipelines")


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    ui = subparsers.add_parser("ui", help="open the terminal workbench (the default command)",
                               description="Open the Textual workbench on the project around the cwd.")
    ui.add_argument("--screen", choices=SCREEN_CHOICES, default="overview", help="screen to start on")
    ui.add_argument("--no-watch", action="store_true", help="do not run the auto-versioning watcher")
    ui.set_defaults(handler=run_ui)

    demo = subparsers.add_parser("demo", help="generate a demo project with real runs and open it",
                                 description="Generate a demo project (scikit-learn digits, a small "
                                 "sweep, snapshots) and open the workbench on it. All local.")
    demo.add_argument("dest", nargs="?", metavar="DIR", help="where to create it (default: a temp folder)")
    demo.add_argument("--no-open", action="store_true", help="only generate the project")
    demo.add_argument("--deterministic", action="store_true", help="fixed times and ids (for screenshots)")
    demo.add_argument("--screen", choices=SCREEN_CHOICES, default="runs", help="screen to start on")
    demo.set_defaults(handler=run_demo)


def _tty_check() -> None:
    from workbench.errors import UsageError

    if not (sys.stdin.isatty() and sys.stdout.isatty()) and not os.environ.get("WORKBENCH_FORCE_TUI"):
        raise UsageError("the workbench needs a terminal", "run it in a terminal, or use the CLI commands")


def run_ui(args: argparse.Namespace) -> int:
    from workbench.cli.common import open_workspace
    from workbench.errors import NotAProjectError

    try:
        ws = open_workspace()
    except NotAProjectError:
        if not _offer_init():
            raise
        ws = open_workspace()
    _tty_check()
    from workbench.ui import run_app

    try:
        run_app(ws, start=args.screen, watch=not args.no_watch)
    finally:
        ws.close()
    return 0


def _offer_init() -> bool:
    """``workbench`` on a terminal in a folder that is no project: ask to make it one, as lazygit
    offers ``git init``; whether it was made. Never offered for the home folder or ``/``, which hold
    far more than one project (their error says to pick a folder)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    here = Path.cwd().resolve()
    if here in (Path.home().resolve(), Path(here.anchor)):
        return False
    try:
        answer = input(f"{here} is not a workbench project. Make it one (workbench init)? [Y/n] ")
    except (EOFError, KeyboardInterrupt):
        print()
        return False
    if answer.strip().lower() not in ("", "y", "yes"):
        return False
    from workbench.cli.cmd_store import cmd_init

    cmd_init(argparse.Namespace(path=str(here), json=False))
    return True


def run_demo(args: argparse.Namespace) -> int:
    from workbench.errors import UsageError

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise UsageError("the demo needs scikit-learn", "pip install 'workbench-mlops[demo]'") from None
    dest = Path(args.dest) if args.dest else Path(tempfile.mkdtemp(prefix="workbench-demo-"))
    from rich.console import Console

    from workbench.demo import make_demo

    console = Console(stderr=True, highlight=False)
    with console.status("generating the demo project") as status:
        root = make_demo(dest, deterministic=args.deterministic,
                         progress=lambda text: status.update(f"demo: {text}"))
    console.print(f"demo project: [bold]{root}[/bold]")
    if args.no_open:
        print(root)
        return 0
    _tty_check()
    from workbench.core.workspace import Workspace
    from workbench.ui import run_app

    os.chdir(root)
    ws = Workspace.open(root)
    try:
        run_app(ws, start=args.screen)
    finally:
        ws.close()
    console.print(f"the demo project stays in {root}; open it again with: workbench -C {root}")
    return 0
