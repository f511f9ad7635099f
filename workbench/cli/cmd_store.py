"""CLI commands of the store group: init, snapshot, status, log, diff, restore, cat, fsck, gc."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.cli.common import add_json_flag, print_json


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser("init", help="make the current folder (or DIR) a workbench project")
    p.add_argument("path", nargs="?", default=".", help="folder to initialise (default: .)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from workbench.core.workspace import Workspace

    ws, created = Workspace.init(Path(args.path))
    if args.json:
        print_json({"root": str(ws.root), "created": created})
    else:
        verb = "Initialised" if created else "Reinitialised existing"
        print(f"{verb} workbench project in {ws.paths.store_dir}")
    return 0
