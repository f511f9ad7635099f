"""CLI command ``export runs``: runs with their params and final metrics as CSV or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli.common import console, open_workspace


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser("export", help="export runs as CSV or JSON (models: 'workbench models export')")
    sub = p.add_subparsers(dest="export_what", metavar="WHAT", required=True)
    runs = sub.add_parser("runs", help="one row per run: params, final metrics, tags (for pandas or a sheet)")
    runs.add_argument("--filter", dest="filter_expr", metavar="EXPR", help="as 'workbench runs --filter'")
    runs.add_argument("--sort", help="as 'workbench runs --sort'")
    where = runs.add_mutually_exclusive_group(required=True)
    where.add_argument("--csv", metavar="FILE", help="write CSV to FILE (- for stdout)")
    where.add_argument("--json", metavar="FILE", help="write a JSON list of rows to FILE (- for stdout)")
    runs.set_defaults(handler=_export_runs)


def _export_runs(args: argparse.Namespace) -> int:
    from workbench.tracking.export import render_runs, write_whole

    fmt, dest = ("csv", args.csv) if args.csv is not None else ("json", args.json)
    ws = open_workspace()
    runs = ws.runs.list(args.filter_expr, args.sort)
    text, count = render_runs(runs, fmt)
    if dest == "-":
        sys.stdout.write(text)
        return 0
    write_whole(Path(dest), text.encode("utf-8"))
    console(stderr=True).print(f"{count} runs -> {dest} ({fmt})", markup=False)
    return 0
