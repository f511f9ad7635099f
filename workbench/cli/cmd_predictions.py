"""CLI commands of the monitoring group's first half: predictions, feedback, retrain."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from workbench.cli.common import add_json_flag, console, open_workspace, print_json


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser(
        "predictions", help="what a deployment answered: inputs, outputs, latency, errors, labels"
    )
    p.add_argument("deployment")
    p.add_argument("--since", help="an age (30m, 2h, 7d) or a date/time (2026-12-01T10:00)")
    p.add_argument(
        "--filter", dest="where", metavar="EXPR",
        help="e.g. \"status == error\", \"f0 > 5 and output == 2\", \"label != output\" "
        "(columns or feature names; == != < <= > >= ~)",
    )
    p.add_argument("--limit", type=int, default=None, help="at most N rows, newest first (default: 50 "
                   "on the terminal, all with --json or --export)")
    p.add_argument("--export", metavar="FILE.csv", help="write the rows as CSV, one column per feature")
    add_json_flag(p)
    p.set_defaults(handler=_predictions)

    p = subparsers.add_parser("feedback", help="record true labels of a deployment's predictions from a CSV")
    p.add_argument("deployment")
    p.add_argument("file", metavar="labels.csv", help="columns request_id and label (optional row_index)")
    add_json_flag(p)
    p.set_defaults(handler=_feedback)

    p = subparsers.add_parser(
        "retrain", help="re-run what produced a deployed model on today's data; compare; roll out the winner"
    )
    p.add_argument("deployment")
    p.add_argument("--compare", action="store_true",
                   help="score the deployed model and the new one on recent labelled production data")
    p.add_argument("--deploy-if-better", action="store_true",
                   help="deploy the new version when it scores better (implies --compare)")
    p.add_argument("--since", help="labelled predictions since (an age or a date; default: all kept)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream the run's output")
    add_json_flag(p)
    p.set_defaults(handler=_retrain)


def _predictions(args: argparse.Namespace) -> int:
    from workbench.errors import UnknownIdError

    ws = open_workspace()
    service = ws.predictions
    report = service.ingest(args.deployment)
    if not service.known(args.deployment):
        raise UnknownIdError(f"no deployment '{args.deployment}'", "see 'workbench deployments --all'")
    whole = args.json or args.export
    limit = args.limit if args.limit is not None else (None if whole else 50)
    rows = service.query(args.deployment, since=args.since, where=args.where, limit=limit)
    err = console(stderr=True)
    for problem in report.errors:
        err.print(f"warning: {problem}", markup=False, highlight=False)
    if args.export:
        count = service.export_csv(rows, Path(args.export))
        if not args.json:
            console().print(f"{count} predictions written to {args.export}", markup=False, highlight=False)
    if args.json:
        print_json([r.to_json() for r in rows])
        return 0
    if args.export:
        return 0
    if not rows:
        matching = " matching" if args.where else ""
        console().print(f"no predictions recorded for {args.deployment}{matching}")
        return 0
    from rich.table import Table

    table = Table("TIME", "REQUEST", "ROW", "REV", "VER", "STATUS", "MS", "FEATURES", "OUTPUT", "LABEL")
    for r in rows:
        features = ", ".join(f"{k}={_short(v)}" for k, v in r.features.items())
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.ts)), r.request_id[:12], str(r.row_index),
            str(r.revision), str(r.version or ""),
            r.status if r.status == "ok" else f"error: {r.error}"[:60],
            f"{r.latency_ms:.1f}" if r.latency_ms is not None else "", features[:60], _short(r.output),
            "" if r.label is None else _short(r.label),
        )
    console().print(table)
    return 0


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 30 else text[:29] + "…"


def _feedback(args: argparse.Namespace) -> int:
    from workbench.errors import UnknownIdError

    ws = open_workspace()
    service = ws.predictions
    service.ingest(args.deployment, clusters=False)
    if not service.known(args.deployment):
        raise UnknownIdError(f"no deployment '{args.deployment}'", "see 'workbench deployments --all'")
    count = service.import_feedback(args.deployment, Path(args.file))
    matched = service.labelled(args.deployment, limit=10**9)
    if args.json:
        print_json({"deployment": args.deployment, "labels": count, "labelled_predictions": len(matched)})
    else:
        console().print(f"{count} labels recorded for {args.deployment} "
                        f"({len(matched)} recorded predictions have a label)", markup=False, highlight=False)
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from workbench.monitor.retrain import retrain

    ws = open_workspace()
    quiet = args.quiet or args.json

    def echo(_channel: Any, line: bytes) -> None:
        import sys

        sys.stderr.write(line.decode("utf-8", "replace"))

    result = retrain(
        ws, args.deployment, compare=args.compare or args.deploy_if_better,
        deploy_if_better=args.deploy_if_better, since=args.since, on_line=None if quiet else echo,
    )
    if args.json:
        print_json(result.to_json())
        return 0
    out = console()
    for line in result.summary():
        out.print(line, markup=False, highlight=False)
    return 0
