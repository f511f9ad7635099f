"""CLI command ``import``: runs recorded by MLflow, TensorBoard, W&B (offline) or DVC into the project."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.cli.common import add_json_flag, console, open_workspace, print_json

HELP = {
    "mlflow": ("an mlruns folder, an mlflow.db, sqlite:///PATH or http(s)://SERVER",
               "MLflow experiments, runs, params, tags, metric series, artifacts, registered models"),
    "tensorboard": ("a log folder", "each folder holding TensorBoard event files becomes a run"),
    "wandb": ("a wandb folder or one offline-run-* folder", "W&B offline runs: config, history, summary"),
    "dvc": ("a DVC repository (default: here)", "DVC experiments (git history), else dvc.lock and metrics"),
}


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser("import", help="import runs from MLflow, TensorBoard, W&B offline or DVC")
    sub = p.add_subparsers(dest="import_kind", metavar="KIND", required=True)
    for kind, (what, summary) in HELP.items():
        one = sub.add_parser(kind, help=summary,
                             description=f"{summary}. Importing again adds only what is new.")
        if kind == "dvc":
            one.add_argument("target", nargs="?", default=".", metavar="DIR", help=what)
            one.add_argument("--lock", action="store_true",
                             help="only the current dvc.lock and its metrics (no history; DVC not needed)")
        else:
            one.add_argument("target", metavar="PATH|URI" if kind == "mlflow" else "DIR", help=what)
        one.add_argument("--no-artifacts", action="store_true", help="do not copy artifact files")
        add_json_flag(one)
        one.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ws = open_workspace()
    out = console(stderr=True)
    source = ws.imports.open(args.import_kind, args.target, lock_only=getattr(args, "lock", False))
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=out, transient=True, disable=not out.is_terminal)
    task = progress.add_task(f"import {source.kind}", total=source.count)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        report = ws.imports.write(source, artifacts=not args.no_artifacts, progress=advance)
    if args.json:
        print_json(report.to_dict())
        return 0
    for note in report.notes:
        out.print(f"note: {note}", markup=False)
    out.print(f"{source.kind} {report.source}: {report.runs_seen} runs seen, {report.runs_new} new,"
              f" {report.runs_updated} updated, {report.points} points, {report.artifacts} artifact files,"
              f" {report.models_new} model versions", markup=False)
    return 0
