"""CLI commands of the store group: init, snapshot, status, log, diff, restore, cat, fsck, gc.

Module-level imports stay trivial (the dispatcher imports every ``cmd_*`` module to build the parser):
the workspace, the versioning service and Rich are imported inside the handlers, and ``status``
with nothing to report never imports Rich at all.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench import format as fmt
from workbench.cli.common import (
    add_json_flag,
    open_workspace,
    positive_int,
    print_json,
)

Progress = Callable[[int, int], None]


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser("init", help="make the current folder (or DIR) a workbench project")
    p.add_argument("path", nargs="?", default=".", help="folder to initialise (default: .)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_init)

    p = subparsers.add_parser("snapshot", help="version the whole project folder now")
    p.add_argument("-m", "--message", default="", help="a note stored with the snapshot")
    p.add_argument("--kind", default="manual", help=argparse.SUPPRESS,
                   choices=("manual", "auto", "run-before", "run-after", "safety"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_snapshot)

    p = subparsers.add_parser("status", help="list what changed since the latest snapshot")
    p.add_argument("--no-watcher", action="store_true",
                   help="scan the whole folder even if a running watcher knows what changed")
    add_json_flag(p)
    p.set_defaults(handler=cmd_status)

    p = subparsers.add_parser("log", help="list snapshots, newest first")
    p.add_argument("-n", "--limit", type=positive_int, default=None, help="show at most N snapshots")
    p.add_argument("--no-auto", action="store_true", help="hide snapshots taken by the watcher")
    add_json_flag(p)
    p.set_defaults(handler=cmd_log)

    p = subparsers.add_parser(
        "diff", help="compare two snapshots, or a snapshot and the working folder",
        description="workbench diff A [B] [-- PATH]: list changes, or print a unified diff of PATH "
                    "(a rows/columns summary for CSV and TSV, size and hash for binary files)",
    )
    p.add_argument("refs", nargs="+", metavar="REF", help="snapshot ids (prefix, latest, latest~N)")
    p.add_argument("--path", dest="diff_path", default=None, help="print a unified diff of this file")
    add_json_flag(p)
    p.set_defaults(handler=cmd_diff)

    p = subparsers.add_parser("restore", help="bring back a snapshot, or chosen paths of it")
    p.add_argument("ref", metavar="SNAPSHOT", help="snapshot id (prefix, latest, latest~N)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to restore (default: all)")
    p.add_argument("--force", action="store_true", help="overwrite unsaved changes if they cannot be saved")
    p.add_argument("--no-safety", action="store_true",
                   help="do not snapshot unsaved changes first (then --force is needed to discard them)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_restore)

    p = subparsers.add_parser("cat", help="write one file's content from a snapshot to stdout")
    p.add_argument("ref", metavar="SNAPSHOT", help="snapshot id (prefix, latest, latest~N)")
    p.add_argument("path", metavar="PATH", help="project-relative path of the file")
    p.set_defaults(handler=cmd_cat)

    p = subparsers.add_parser("fsck", help="verify every stored object; report damage by path and snapshot")
    add_json_flag(p)
    p.set_defaults(handler=cmd_fsck)

    p = subparsers.add_parser("gc", help="delete stored objects that no snapshot references")
    add_json_flag(p)
    p.set_defaults(handler=cmd_gc)


def cmd_init(args: argparse.Namespace) -> int:
    from workbench.core.workspace import Workspace
    from workbench.versioning.environments import leave_out_environments

    ws, created = Workspace.init(Path(args.path))
    left_out = leave_out_environments(ws.root, ws.paths.store_dir)
    if args.json:
        print_json({"root": str(ws.root), "created": created,
                    "left_out": [{"path": rel, "kind": kind} for rel, kind in left_out]})
    else:
        verb = "Initialised" if created else "Reinitialised existing"
        print(f"{verb} workbench project in {ws.paths.store_dir}")
        for rel, kind in left_out:
            print(f"left out {rel}/ ({kind}): added to .workbenchignore, delete the line to version it")
    return 0


# -- helpers ------------------------------------------------------------------------------------
def _shown(path: str) -> str:
    from workbench.versioning.models import display_path

    return display_path(path)


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Progress | None]:
    """A Rich progress bar on stderr (files and bytes per second) while ``enabled`` and a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import (
        Progress as Bar,
    )

    from workbench.cli.common import console

    bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
              TransferSpeedColumn(), TextColumn("{task.fields[files]} files"), TimeRemainingColumn(),
              console=console(stderr=True), transient=True)
    state = {"files": 0}
    with bar:
        task = bar.add_task(label, total=None, files=0)

        def update(done: int, total: int) -> None:
            state["files"] += 1
            bar.update(task, completed=done, total=total, files=state["files"])

        yield update


def _table(title: str, columns: list[str]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        numeric = col in ("size", "old size", "files", "bytes", "new")
        # a path is shown whole, folded onto more lines where the terminal is narrow: never cut
        table.add_column(col, justify="right" if numeric else "left",
                         overflow="fold" if col == "path" else "ellipsis")
    return table


# -- commands -----------------------------------------------------------------------------------
def cmd_snapshot(args: argparse.Namespace) -> int:
    ws = open_workspace()
    with _progress("snapshot", not args.json) as progress:
        info = ws.versions.snapshot(args.message, kind=args.kind, progress=progress)
    if args.json:
        print_json(info.to_dict())
        return 0
    for path, reason in info.skipped:
        sys.stderr.write(f"skipped {_shown(path)}: {reason}\n")
    if info.created:
        print(f"snapshot {info.short_id}: {info.files} files, {fmt.size(info.bytes)}, "
              f"{fmt.size(info.new_bytes)} newly stored")
    else:
        print(f"snapshot {info.short_id}: nothing changed since the latest snapshot")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    ws = open_workspace()
    report = ws.versions.status_report(use_watcher=not args.no_watcher)
    changes = report.changes
    remote = ws.remote.summary() if ws.has_default_remote() else None
    if args.json:
        print_json({"snapshot": report.head, "via": report.via, "changes": [c.to_dict() for c in changes],
                    "skipped": [{"path": _shown(p), "reason": r} for p, r in report.skipped],
                    "remote": remote})
        return 0
    for path, reason in report.skipped:
        sys.stderr.write(f"skipped {_shown(path)}: {reason}\n")
    if remote is not None:
        print(_remote_line(remote))
    short = report.head[:10] if report.head else None
    if not changes:
        text = (f"nothing changed since snapshot {short}\n" if short
                else "no snapshot yet and nothing to version\n")
        sys.stdout.write(text)
        if remote is None and short:  # the next `status` prints it again while nothing moves
            report.seal(text)
        return 0
    from workbench.cli.common import console

    since = f"snapshot {short}" if short else "the start"
    table = _table(f"{len(changes)} change{'s' * (len(changes) != 1)} since {since}",
                   ["change", "path", "size", "old size"])
    colour = {"added": "green", "modified": "yellow", "deleted": "red"}
    for c in changes:
        table.add_row(f"[{colour[c.change]}]{c.change}[/]", _shown(c.path),
                      fmt.size(c.size) if c.change != "deleted" else "",
                      fmt.size(c.old_size) if c.change != "added" else "")
    console().print(table)
    return 0


def _remote_line(remote: dict[str, Any]) -> str:
    """``remote origin: 3 records to push, 1 bundle to pull (checked 09:12)`` from bookkeeping."""
    behind = ("behind unknown (run 'workbench remote status' or pull)" if remote["behind"] is None else
              f"{remote['behind']} bundle(s) to pull as of "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(remote['checked_at']))}")
    return f"remote {remote['name']}: {remote['ahead']} record(s) to push, {behind}"


def cmd_log(args: argparse.Namespace) -> int:
    ws = open_workspace()
    snaps = ws.versions.log(limit=args.limit, include_auto=not args.no_auto)
    if args.json:
        print_json([s.to_dict() for s in snaps])
        return 0
    if not snaps:
        print("no snapshots yet (take one with 'workbench snapshot')")
        return 0
    from workbench.cli.common import console

    table = _table("snapshots", ["id", "time", "kind", "message", "files", "bytes", "new"])
    table.box = None  # as `runs` lists: the borders' columns go to the message
    for column in table.columns:  # ids are copied into restore and diff: never cut; the message gives way
        if column.header != "message":
            column.no_wrap, column.min_width = True, 10 if column.header in ("id", "kind") else None
    table.columns[1].min_width = 11
    for s in snaps:
        table.add_row(s.short_id, fmt.short_time(s.created_at), s.kind, s.message, str(s.files),
                      fmt.size(s.bytes), fmt.size(s.new_bytes))
    console().print(table)
    return 0


def _split_diff_args(ws: Any, refs: list[str], path: str | None) -> tuple[str, str | None, str | None]:
    """``A``, ``A B``, ``A PATH`` (when PATH is not a snapshot) or ``A B PATH``."""
    from workbench.errors import UsageError, WorkbenchError

    if len(refs) > 3:
        raise UsageError("diff takes at most two snapshots and one path", "workbench diff A [B] [-- PATH]")
    a = refs[0]
    b: str | None = None
    if len(refs) == 3:
        b, path = refs[1], refs[2]
    elif len(refs) == 2:
        try:
            ws.versions.resolve(refs[1])
            b = refs[1]
        except WorkbenchError:
            if path is not None:
                raise
            path = refs[1]
    return a, b, path


def cmd_diff(args: argparse.Namespace) -> int:
    ws = open_workspace()
    a, b, path = _split_diff_args(ws, args.refs, args.diff_path)
    if path is not None:
        kind, text = ws.versions.file_diff(a, b, path)  # a summary for CSV/TSV and binary files
        if args.json:
            print_json({"a": ws.versions.resolve(a), "b": ws.versions.resolve(b) if b else None,
                        "path": path, "kind": kind, "diff": text})
        else:
            sys.stdout.write(text)
        return 0
    changes = ws.versions.diff(a, b)
    if args.json:
        print_json({"a": ws.versions.resolve(a), "b": ws.versions.resolve(b) if b else None,
                    "changes": [c.to_dict() for c in changes]})
        return 0
    left = ws.versions.get(a).short_id
    right = ws.versions.get(b).short_id if b else "working folder"
    if not changes:
        print(f"no differences between {left} and {right}")
        return 0
    from workbench.cli.common import console

    table = _table(f"{left} → {right}: {len(changes)} change{'s' * (len(changes) != 1)}",
                   ["change", "path", "size", "old size"])
    for c in changes:
        table.add_row(c.change, _shown(c.path), fmt.size(c.size) if c.change != "deleted" else "",
                      fmt.size(c.old_size) if c.change != "added" else "")
    console().print(table)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    ws = open_workspace()
    with _progress("restore", not args.json) as progress:
        result = ws.versions.restore(args.ref, args.paths or None, force=args.force,
                                     safety=not args.no_safety, progress=progress)
    if args.json:
        print_json(result.to_dict())
        return 0
    if result.safety_snapshot:
        print(f"saved unsaved changes first as snapshot {result.safety_snapshot[:10]} (kind safety)")
    print(f"restored {result.snapshot[:10]}: {len(result.written)} written, {len(result.deleted)} deleted, "
          f"{result.unchanged} unchanged")
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    ws = open_workspace()
    data = ws.versions.read_file(args.ref, args.path)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    ws = open_workspace()
    with _progress("fsck", not args.json) as progress:
        report = ws.versions.fsck(progress=progress)
    if args.json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    for p in report.problems:
        where = f"{_shown(p.path)} in snapshot {p.snapshot[:10]}" if p.snapshot else "unreferenced"
        hint = (f" (available on remote {p.remote}: a read of it, e.g. `workbench restore`, fetches it back)"
                if p.remote else "")
        print(f"{p.problem} object {p.hash[:12]}: {where}{hint}")
    status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"fsck {status}: {report.snapshots} snapshots, {report.objects} objects, "
          f"{fmt.size(report.bytes)} verified")
    return 0 if report.ok else 1


def cmd_gc(args: argparse.Namespace) -> int:
    ws = open_workspace()
    with _progress("gc", not args.json) as progress:
        report = ws.versions.gc(progress=progress)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(f"gc: deleted {report.deleted} objects ({fmt.size(report.freed_bytes)}), kept {report.kept}")
    return 0
