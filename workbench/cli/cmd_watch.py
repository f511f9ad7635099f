"""``workbench watch`` (auto-versioning in the foreground, ``--status``) and ``workbench prune-auto``.

``watch`` runs :class:`~workbench.versioning.watch.watcher.Watcher` until Ctrl+C (or SIGTERM), printing one
line per event (``--json``: one JSON object per line, see docs/watch.md). ``watch --status`` says
whether a watcher is running for the project, without starting one. ``prune-auto`` applies the
retention rule for auto snapshots now (the watcher also applies it as it goes).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from workbench import format as fmt
from workbench.cli.common import add_json_flag, console, open_workspace, print_json

if TYPE_CHECKING:
    from workbench.versioning.watch.watcher import WatchEvent


def register(subparsers: Any) -> None:
    """Add ``watch`` and ``prune-auto`` to the top-level parser."""
    watch = subparsers.add_parser(
        "watch", help="version the project automatically as it changes (Ctrl+C stops)",
        description="Watch the project folder and take an 'auto' snapshot after each burst of changes. "
                    "Runs in the foreground until Ctrl+C. One watcher per project.",
    )
    watch.add_argument("--status", action="store_true",
                       help="say whether a watcher is running for this project, then exit")
    watch.add_argument("--quiet", type=float, metavar="SECONDS",
                       help="snapshot once the folder has been quiet this long (config: watch.quiet_seconds)")
    watch.add_argument("--max-interval", type=float, metavar="SECONDS",
                       help="snapshot at least this often while changes keep coming "
                            "(config: watch.max_interval_seconds)")
    watch.add_argument("--poll", action="store_true",
                       help="rescan periodically instead of using file-system events")
    watch.add_argument("--rescan", type=float, metavar="SECONDS",
                       help="seconds between rescans when polling (default: the max interval)")
    watch.add_argument("--no-prune", action="store_true",
                       help="do not thin old auto snapshots while watching (see prune-auto)")
    add_json_flag(watch)
    watch.set_defaults(handler=_watch)

    prune = subparsers.add_parser(
        "prune-auto", help="thin out old auto snapshots by the retention rule",
        description="Delete auto snapshots the retention rule (config: watch.retention, e.g. "
                    "'1h:all,1d:1h,30d:1d') no longer keeps. Manual snapshots and any snapshot a run "
                    "or tag refers to are never deleted. Run 'workbench gc' afterwards to free space.",
    )
    prune.add_argument("--rule", metavar="RULE", help="use this rule instead of the configured one")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    add_json_flag(prune)
    prune.set_defaults(handler=_prune)


def _status(args: argparse.Namespace) -> int:
    from workbench.versioning.watch.lock import watch_status

    ws = open_workspace()
    status = watch_status(ws.paths.locks)
    if args.json:
        print_json(status.to_json())
        return 0
    out = console()
    rec = status.record
    if status.active and rec is not None:
        out.print(f"[green]watching[/]: pid {rec.pid} on {rec.host}, since {fmt.local_time(rec.started_at)}, "
                  f"mode {rec.mode}")
        last = "none yet"
        if rec.last_snapshot:
            last = f"{rec.last_snapshot[:10]} at {fmt.local_time(rec.last_snapshot_at)}"
        out.print(f"snapshots taken: {rec.snapshots}, last: {last}")
        if rec.last_error:
            out.print(f"[red]last error[/]: {rec.last_error}", markup=True)
    elif status.active:
        out.print("[green]watching[/] (holder unknown)")
    elif status.stale and rec is not None:
        out.print(f"no watcher running (the last one, pid {rec.pid} on {rec.host}, stopped without "
                  "cleaning up; the next 'workbench watch' takes over)")
    else:
        out.print("no watcher running")
    return 0


def _render(event: WatchEvent, as_json: bool, lock: threading.Lock) -> None:
    with lock:
        if as_json:
            sys.stdout.write(json.dumps(event.to_json(), ensure_ascii=True) + "\n")
            sys.stdout.flush()
            return
        from rich.markup import escape

        style = {"snapshot": "green", "error": "red", "fallback": "yellow", "overflow": "yellow",
                 "retry": "yellow", "pruned": "cyan", "secret": "yellow"}.get(event.kind, "dim")
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        ident = f" {event.snapshot_id[:10]}" if event.snapshot_id else ""
        console().print(f"{stamp} [{style}]{event.kind}[/]{ident} {escape(event.message)}")


def _watch(args: argparse.Namespace) -> int:
    if args.status:
        return _status(args)
    from workbench.versioning.watch.watcher import Watcher

    ws = open_workspace()
    lock = threading.Lock()
    watcher = Watcher(
        ws.versions, quiet=args.quiet, max_interval=args.max_interval, rescan_seconds=args.rescan,
        retention="" if args.no_prune else None, polling=args.poll,
        on_event=lambda event: _render(event, args.json, lock),
    )
    previous = _sigterm_as_interrupt()
    try:
        watcher.start()
        try:
            while watcher.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop(flush=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        ws.close()
    return 0


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM stop the watcher as Ctrl+C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _prune(args: argparse.Namespace) -> int:
    from workbench.versioning.watch.retention import head_snapshot_id, parse_rule, prune_auto

    ws = open_workspace()
    rule = parse_rule(args.rule if args.rule is not None else ws.config.watch.retention)
    head = head_snapshot_id(ws.paths.store_dir)
    report = prune_auto(ws.db, rule, dry_run=args.dry_run, keep=frozenset({head} if head else ()))
    if args.json:
        print_json({"rule": report.rule, "dry_run": report.dry_run, "examined": report.examined,
                    "protected": report.protected, "deleted": report.dropped,
                    "kept_by_constraint": report.kept_by_constraint})
        return 0
    out = console()
    if not rule.enabled:
        out.print("retention is off (watch.retention is empty): nothing to do")
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    out.print(f"rule '{report.rule}': {report.examined} auto snapshot(s), {report.protected} referenced "
              f"by runs or tags, {verb} {len(report.dropped)}")
    for sid in report.dropped:
        out.print(f"  {sid[:10]}")
    if report.dropped and not args.dry_run:
        out.print("run 'workbench gc' to free the space they alone used")
    return 0
