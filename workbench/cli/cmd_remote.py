"""CLI commands of the remote group: remote add/list/remove/default, push, pull, clone.

Handlers import the workspace and Rich lazily; transfers show a Rich bar (bytes and rate) on stderr
when it is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench import format as fmt
from workbench.cli.common import add_json_flag, open_workspace, print_json


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser("remote", help="configure remotes (S3-compatible buckets or shared folders)")
    sub = p.add_subparsers(dest="remote_command", metavar="ACTION")
    p.set_defaults(handler=cmd_remote_list, json=False)

    a = sub.add_parser("add", help="add a remote: NAME s3://BUCKET/PREFIX or file:///ABS/PATH")
    a.add_argument("name", help="a short name for the remote (e.g. origin)")
    a.add_argument("url", help="s3://BUCKET/PREFIX or file:///ABS/PATH")
    a.add_argument("--endpoint-url", default="", help="S3 endpoint (MinIO, Ceph RGW, ODF...); "
                   "default: AWS_ENDPOINT_URL or AWS")
    a.add_argument("--region", default="", help="S3 region (default: AWS_REGION or us-east-1)")
    a.add_argument("--default", action="store_true", help="make it the default remote")
    add_json_flag(a)
    a.set_defaults(handler=cmd_remote_add)

    ls = sub.add_parser("list", help="list the remotes (* marks the default)")
    add_json_flag(ls)
    ls.set_defaults(handler=cmd_remote_list)

    rm = sub.add_parser("remove", help="forget a remote (nothing on it is deleted)")
    rm.add_argument("name", help="the remote to forget")
    rm.set_defaults(handler=cmd_remote_remove)

    st = sub.add_parser("status", help="what a push would send and how many pushes a pull would merge")
    st.add_argument("name", nargs="?", default=None, help="the remote (default: the default remote)")
    add_json_flag(st)
    st.set_defaults(handler=cmd_remote_status)

    d = sub.add_parser("default", help="make a remote the default one for push and pull")
    d.add_argument("name", help="the remote")
    d.set_defaults(handler=cmd_remote_default)

    p = subparsers.add_parser("push", help="send snapshots, runs, models and their data to a remote")
    p.add_argument("remote", nargs="?", default=None, help="remote name (default: the default remote)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_push)

    p = subparsers.add_parser("pull", help="fetch and merge what others pushed to a remote")
    p.add_argument("remote", nargs="?", default=None, help="remote name (default: the default remote)")
    p.add_argument("--metadata-only", action="store_true",
                   help="fetch records and folder listings now, file contents when a restore needs them")
    add_json_flag(p)
    p.set_defaults(handler=cmd_pull)

    p = subparsers.add_parser("clone", help="start a new project from a remote")
    p.add_argument("url", help="s3://BUCKET/PREFIX or file:///ABS/PATH")
    p.add_argument("dest", help="the new project folder (new or empty)")
    p.add_argument("--endpoint-url", default="", help="S3 endpoint (default: AWS_ENDPOINT_URL or AWS)")
    p.add_argument("--region", default="", help="S3 region")
    p.add_argument("--no-checkout", action="store_true", help="do not restore the newest snapshot")
    p.add_argument("--metadata-only", action="store_true",
                   help="no file contents now (nothing restored); 'workbench restore' fetches what it needs")
    add_json_flag(p)
    p.set_defaults(handler=cmd_clone)


@contextmanager
def _bar(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich transfer bar on stderr (bytes, rate) while ``enabled`` and a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from workbench.cli.common import console

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def cmd_remote_add(args: argparse.Namespace) -> int:
    with open_workspace() as ws:
        info = ws.remote.add(args.name, args.url, endpoint_url=args.endpoint_url, region=args.region,
                             default=True if args.default else None)
    if args.json:
        print_json(info.to_dict())
    else:
        where = " (a folder on this machine or a mount)" if info.url.startswith("file://") else ""
        print(f"added remote {info.name} -> {info.url}{where}" + (" (default)" if info.is_default else ""))
    return 0


def cmd_remote_list(args: argparse.Namespace) -> int:
    with open_workspace() as ws:
        remotes = ws.remote.list()
    if getattr(args, "json", False):
        print_json([r.to_dict() for r in remotes])
        return 0
    if not remotes:
        print("no remotes; add one: workbench remote add NAME s3://BUCKET/PREFIX")
    for r in remotes:
        extra = "".join(f"  {k}={v}" for k, v in (("endpoint", r.endpoint_url), ("region", r.region)) if v)
        print(f"{'*' if r.is_default else ' '} {r.name}  {r.url}{extra}")
    return 0


def cmd_remote_remove(args: argparse.Namespace) -> int:
    with open_workspace() as ws:
        ws.remote.remove(args.name)
    print(f"removed remote {args.name} (nothing on it was deleted)")
    return 0


def cmd_remote_status(args: argparse.Namespace) -> int:
    with open_workspace() as ws:
        status = ws.remote.status(args.name)
    if args.json:
        print_json(status)
        return 0
    ahead = ", ".join(f"{n} {k}" for k, n in sorted(status["ahead"].items())) or "nothing"
    print(f"{status['remote']} ({status['url']}): to push: {ahead}; to pull: {status['behind_bundles']}"
          " bundle(s)")
    return 0


def cmd_remote_default(args: argparse.Namespace) -> int:
    with open_workspace() as ws:
        ws.remote.set_default(args.name)
    print(f"default remote: {args.name}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    with open_workspace() as ws, _bar("push", not args.json) as bar:
        report = ws.remote.push(args.remote, progress=bar)
    if args.json:
        print_json(report.to_dict())
    elif report.bundle is None:
        print(f"nothing to push to {report.remote}")
    else:
        records = ", ".join(f"{n} {k}" for k, n in sorted(report.records.items()))
        print(f"pushed to {report.remote}: {records}; {report.objects_sent} objects"
              f" ({fmt.size(report.bytes_sent)}) sent, {report.objects_present} already there")
    return 0


def _print_pull(report: Any) -> None:
    if not report.bundles:
        print(f"already up to date with {report.remote}")
        return
    added = ", ".join(f"{n} {k}" for k, n in sorted(report.added.items())) or "nothing new"
    print(f"pulled from {report.remote}: {added}; {report.objects_fetched} objects"
          f" ({fmt.size(report.bytes_fetched)}) fetched")
    for line in report.conflicts:
        print(f"conflict: {line}")


def cmd_pull(args: argparse.Namespace) -> int:
    with open_workspace() as ws, _bar("pull", not args.json) as bar:
        report = ws.remote.pull(args.remote, progress=bar, metadata_only=args.metadata_only)
    if args.json:
        print_json(report.to_dict())
    else:
        _print_pull(report)
    return 0


def cmd_clone(args: argparse.Namespace) -> int:
    from workbench.core.clone import clone

    with _bar("clone", not args.json) as bar:
        ws, report, restored = clone(args.url, Path(args.dest), endpoint_url=args.endpoint_url,
                                     region=args.region, progress=bar, checkout=not args.no_checkout,
                                     metadata_only=args.metadata_only)
    ws.close()
    if args.json:
        print_json({**report.to_dict(), "path": str(ws.root), "restored": restored})
    else:
        _print_pull(report)
        print(f"cloned into {ws.root}" + (f"; restored snapshot {restored[:12]}" if restored else ""))
    return 0
