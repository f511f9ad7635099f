"""``workbench runs rm|archive|unarchive|rename|tag``: managing runs after the fact.

``rm`` shows what goes (runs, points, log lines, the run snapshots only they pinned) and asks before
deleting anything; ``--yes`` skips the question, ``--dry-run`` only shows. Without a terminal to ask
on, it refuses unless ``--yes`` is given.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench import format as fmt
from workbench.cli.common import add_json_flag, console, open_workspace, print_json


def register(runs_parser: argparse.ArgumentParser) -> None:
    """Add the management subcommands under ``workbench runs``."""
    sub = runs_parser.add_subparsers(dest="runs_action", metavar="ACTION", required=False)
    p = sub.add_parser("rm", help="delete runs with their points, logs and the snapshots only they pinned",
                       description="Delete runs for good (asks first). Runs that produced a model version, "
                       "serve a deployment or feed a pipeline are refused: archive those.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids, names or latest[~N]")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    add_json_flag(p)
    p.set_defaults(handler=cmd_rm)

    for name, undo, text in (("archive", False, "hide runs from the default listings (nothing is deleted)"),
                             ("unarchive", True, "bring archived runs back into the listings")):
        p = sub.add_parser(name, help=text)
        p.add_argument("runs", nargs="+", metavar="RUN", help="run ids, names or latest[~N]")
        add_json_flag(p)
        p.set_defaults(handler=cmd_archive, undo=undo)

    p = sub.add_parser("rename", help="give a run a new name")
    p.add_argument("run", help="run id, name or latest[~N]")
    p.add_argument("name", help="the new name ('' clears it)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_rename)

    p = sub.add_parser("tag", help="set (KEY=VALUE) or remove (--rm KEY) tags on a run")
    p.add_argument("run", help="run id, name or latest[~N]")
    p.add_argument("tags", nargs="*", metavar="KEY=VALUE", help="tags to set")
    p.add_argument("--rm", action="append", default=[], metavar="KEY", help="a tag to remove (repeatable)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_tag)


def cmd_rm(args: argparse.Namespace) -> int:
    from workbench.errors import UsageError

    ws = open_workspace()
    plan = ws.runs.plan_removal(args.runs)
    out = console()
    if args.json and (args.dry_run or not plan.runs):
        print_json({"dry_run": True, **plan.to_dict()})
        return 1 if plan.refused and not plan.runs else 0
    if not args.json:
        _show_plan(out, plan)
    if not plan.runs or args.dry_run:
        return 1 if plan.refused and not plan.runs else 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask on", "add --yes to remove without asking")
        answer = input(f"Delete {len(plan.runs)} run{'s' * (len(plan.runs) != 1)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.print("nothing deleted")
            return 1
    result = ws.runs.remove(plan)
    if args.json:
        print_json({"dry_run": False, **result, "refused": plan.to_dict()["refused"]})
    else:
        out.print(f"deleted {len(result['runs'])} run(s) and {len(result['snapshots'])} snapshot(s); "
                  f"freed {fmt.size(result['freed_bytes'])}")
    return 0


def _show_plan(out: Any, plan: Any) -> None:
    for run_id, reason in plan.refused:
        out.print(f"[yellow]kept[/] {run_id}: {reason}")
    if not plan.runs:
        out.print("nothing to delete")
        return
    out.print(f"would delete {len(plan.runs)} run(s): {', '.join(plan.runs)}")
    out.print(f"  with {plan.points:,} metric points, {plan.log_lines:,} log lines, "
              f"{plan.files:,} file records and {len(plan.snapshots)} run snapshot(s) only they pinned")


def cmd_archive(args: argparse.Namespace) -> int:
    ws = open_workspace()
    ids = ws.runs.archive(args.runs, undo=args.undo)
    if args.json:
        print_json({"runs": ids, "archived": not args.undo})
    else:
        verb = "unarchived" if args.undo else "archived (workbench runs --archived lists them)"
        console().print(f"{verb}: {', '.join(ids)}")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    ws = open_workspace()
    info = ws.runs.rename(args.run, args.name)
    if args.json:
        print_json(info.to_dict())
    else:
        console().print(f"{info.id}: now named {info.name!r}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from workbench.errors import UsageError
    from workbench.tracking.manage import parse_tags

    if not args.tags and not args.rm:
        raise UsageError("no tag given", "write workbench runs tag RUN KEY=VALUE [--rm KEY]")
    ws = open_workspace()
    info = ws.runs.tag(args.run, parse_tags(args.tags), args.rm)
    if args.json:
        print_json(info.to_dict())
    else:
        tags = ", ".join(f"{k}={v}" if v else k for k, v in sorted(info.tags.items())) or "(none)"
        console().print(f"{info.id}: tags {tags}")
    return 0
