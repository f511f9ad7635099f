"""CLI commands of the workflows group: repro, dag, sweep, sweeps.

Module-level imports stay trivial (the dispatcher imports every ``cmd_*`` module): the workspace,
the workflows service and Rich are imported inside the handlers. Drawing (the DAG, the ranking
table and the parallel-coordinates view) lives in :mod:`workbench.cli.workflows_view`.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, Any

from workbench.cli.common import (
    add_json_flag,
    console,
    open_workspace,
    positive_int,
    print_json,
    whole_number,
)

if TYPE_CHECKING:
    from workbench.workflows.sweep_runner import SweepInfo


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser(
        "repro", help="run the pipeline in workbench.yaml (or dvc.yaml), only the stages whose inputs "
                      "changed",
        description="Run the stages of workbench.yaml (or of a DVC project's dvc.yaml where there is no "
                    "workbench.yaml) in dependency order. A stage whose command, "
                    "params and input contents are unchanged since a successful run is skipped, or its "
                    "outputs are restored from the store ('cached from run X').")
    p.add_argument("stages", nargs="*", metavar="STAGE",
                   help="run these stages and what they need (default: all)")
    p.add_argument("-f", "--force", action="store_true", help="run the selected stages even if up to date")
    p.add_argument("--dry", action="store_true", help="print what would run and why; run nothing")
    p.add_argument("-j", "--jobs", type=positive_int, default=1, metavar="N",
                   help="run up to N independent stages at once")
    p.add_argument("--check", action="store_true",
                   help="warn when a stage read files it does not declare as inputs (file-access capture)")
    p.add_argument("-v", "--verbose", action="store_true", help="show each stage's output as it runs")
    add_json_flag(p)
    p.set_defaults(handler=cmd_repro)

    p = subparsers.add_parser("dag", help="draw the pipeline's stages, their links and their state")
    p.add_argument("--no-status", action="store_true", help="draw the graph only (do not hash inputs)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_dag)

    p = subparsers.add_parser(
        "sweep", help="launch a grid or random sample of runs over parameters",
        description="workbench sweep --param lr=0.001,0.01,0.1 --param depth=3:8 -- python train.py "
                    "--lr {lr} --depth {depth}. Ranges: 3:8 (ints, both ends), 0.1:0.5:0.1 (step), "
                    "1e-4:1e-1:log4 (4 log-spaced points), 1e-4:1e-1:log (random mode: log-uniform).")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUES",
                   help="a parameter and its values (repeat for each parameter)")
    p.add_argument("--random", dest="random_n", type=positive_int, default=None, metavar="N",
                   help="draw N members at random instead of the full grid")
    p.add_argument("--seed", type=int, default=None, help="seed for --random")
    p.add_argument("--parallel", type=positive_int, default=1, metavar="K",
                   help="run K members at once; with K > 1 each member runs isolated in its own checkout "
                        "of one input snapshot (as run --isolated): its outputs and models are its own "
                        "bytes, and a path several members write keeps the first finisher's file in the "
                        "project while the others record a conflict")
    p.add_argument("--executor", default=None, help="where members run (local, docker, kubernetes)")
    p.add_argument("--image", default=None, help="container image for docker/kubernetes")
    p.add_argument("--gpus", type=_gpus, default=None, help="GPUs per member (a count or 'all')")
    p.add_argument("-n", "--name", default=None, help="name of the sweep (members are NAME-0, NAME-1 ...)")
    p.add_argument("--dry", action="store_true", help="list the members' commands; run nothing")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="the command, with {name} where each parameter goes")
    add_json_flag(p)
    p.set_defaults(handler=cmd_sweep)

    p = subparsers.add_parser("sweeps", help="list sweeps, or rank one sweep's runs by a metric")
    p.add_argument("sweep", nargs="?", default=None, help="a sweep id, name or 'latest': show and rank it")
    p.add_argument("--metric", default=None, help="rank by this metric (default: the first one logged)")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--max", dest="order", action="store_const", const="max",
                       help="higher is better (default: lower is better)")
    order.add_argument("--min", dest="order", action="store_const", const="min", help="lower is better")
    p.add_argument("--value", choices=("last", "min", "max"), default="last",
                   help="which value of each run's series to rank by (default: last)")
    p.add_argument("--no-plot", action="store_true", help="skip the parallel-coordinates view")
    p.add_argument("-n", "--limit", type=positive_int, default=None, help="list at most N sweeps")
    add_json_flag(p)
    p.set_defaults(handler=cmd_sweeps, order="min")


# -- repro -------------------------------------------------------------------------------------
_STYLE = {"ran": ("●", "green"), "cached": ("◆", "cyan"), "fresh": ("✓", "dim"), "failed": ("✗", "red"),
          "skipped": ("-", "yellow"), "cancelled": ("■", "yellow"), "start": ("▶", "blue"),
          "warning": ("!", "yellow")}


def cmd_repro(args: argparse.Namespace) -> int:
    from workbench.workflows.repro import StageEvent

    ws = open_workspace()
    if args.dry:
        items = ws.workflows.plan(args.stages, force=args.force)
        if args.json:
            print_json([i.to_dict() for i in items])
            return 0
        out = console()
        words = {"run": ("would run", "green"), "restore": ("would restore", "cyan"),
                 "skip": ("up to date", "dim")}
        for item in items:
            word, style = words[item.action]
            why = "; ".join(item.reasons)
            if item.action == "restore":
                why = f"from run {item.source_run}: {why}"
            out.print(f"[{style}]{word:<14}[/] [bold]{item.stage}[/]  [dim]{why}[/]")
        return 0

    out = console(stderr=args.json)
    lock = threading.Lock()

    def on_event(event: StageEvent) -> None:
        with lock:
            if event.status == "line":
                out.print(f"[dim]{event.stage} │[/] {event.message}", markup=True, highlight=False)
                return
            mark, style = _STYLE.get(event.status, ("·", ""))
            if event.status == "warning":
                out.print(f"[{style}]{mark} warning:[/] {event.message}")
                return
            detail = "; ".join(event.reasons)
            if event.status == "ran":
                detail = f"run {event.run_id}" + (f" ({detail})" if detail else "")
            elif event.status == "cached":
                detail = f"from run {event.source_run}" + (f" ({detail})" if detail else "")
            elif event.status == "fresh":
                detail = "up to date"
            elif event.status in ("failed", "skipped", "cancelled"):
                detail = event.message
            out.print(f"[{style}]{mark} {event.stage:<16} {event.status:<9}[/] [dim]{detail}[/]")
            for line in event.log_tail:
                out.print(f"[red]  │[/] {line}", markup=True, highlight=False)

    cancel = threading.Event()
    try:
        result = ws.workflows.repro(args.stages, force=args.force, jobs=args.jobs, check=args.check,
                                    on_event=on_event, cancel_event=cancel, stream_lines=args.verbose)
    except KeyboardInterrupt:
        cancel.set()
        sys.stderr.write("interrupted: the pipeline was cancelled\n")
        return 130
    if args.json:
        print_json(result.to_dict())
    else:
        counts: dict[str, int] = {}
        for rec in result.stages:
            counts[rec.status] = counts.get(rec.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        style = {"succeeded": "green", "failed": "red"}.get(result.status, "yellow")
        out.print(f"[{style}]pipeline {result.status}[/] ({summary}) "
                  f"[dim]pipeline run {result.pipeline_run}[/]")
        if result.failed_stage:
            out.print(f"[red]error:[/] {result.message}; see 'workbench logs' for the full log")
    return {"succeeded": 0, "failed": 1}.get(result.status, 130)


# -- dag ---------------------------------------------------------------------------------------
def cmd_dag(args: argparse.Namespace) -> int:
    from workbench.cli.workflows_view import render_dag

    ws = open_workspace()
    data = ws.workflows.dag()
    status = {} if args.no_status else {k: v.to_dict() for k, v in ws.workflows.dag_status().items()}
    if args.json:
        for stage in data["stages"]:
            if stage["name"] in status:
                stage["status"] = status[stage["name"]]
        print_json(data)
        return 0
    console().print(render_dag(data, status))
    return 0


# -- sweep -------------------------------------------------------------------------------------
def _gpus(text: str) -> int | str:
    """argparse ``type=`` of ``--gpus``: a count or ``all``."""
    if text == "all":
        return text
    if text.lstrip("-").isdigit():
        return whole_number(text, 0)
    raise argparse.ArgumentTypeError(f"expected a count or 'all', got '{text}'")


def cmd_sweep(args: argparse.Namespace) -> int:
    from workbench.cli.run_request import in_current_folder
    from workbench.tracking.request import RunRequest
    from workbench.workflows.sweep_runner import SweepEvent

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    ws = open_workspace()
    _, members = ws.workflows.expand_sweep(command, args.params, random_n=args.random_n, seed=args.seed)
    if args.dry:
        if args.json:
            print_json([{"params": p, "command": argv} for p, argv in members])
        else:
            for _, argv in members:
                print(" ".join(argv))
        return 0
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = console(stderr=args.json)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=out, transient=True,
                        disable=not out.is_terminal)  # a log gets the result lines only
    task = progress.add_task("sweep", total=len(members))
    lock = threading.Lock()

    def on_created(info: SweepInfo) -> None:
        out.print(f"sweep [bold]{info.name}[/] ({info.id}): {info.size} runs, {args.parallel} at a time, "
                  f"on {info.executor}")

    def on_event(event: SweepEvent) -> None:
        with lock:
            shown = " ".join(f"{k}={v}" for k, v in event.params.items())
            if event.status == "start":
                return
            progress.advance(task)
            style = {"succeeded": "green", "failed": "red"}.get(event.status, "yellow")
            run = f"run {event.run_id}" if event.run_id else ""
            progress.console.print(f"[{style}]{event.status:<9}[/] #{event.idx:<3} {shown}  [dim]{run} "
                                   f"{event.message}[/]")

    cancel = threading.Event()
    with progress:
        request = in_current_folder(RunRequest(tuple(command), name=args.name, executor=args.executor,
                                               image=args.image, gpus=args.gpus), ws.root)
        info = ws.workflows.sweep(request, args.params, random_n=args.random_n, seed=args.seed,
                                  parallel=args.parallel, on_event=on_event, on_created=on_created,
                                  cancel_event=cancel)
    if args.json:
        print_json(info.to_dict())
    else:
        counts = ", ".join(f"{n} {s}" for s, n in info.counts.items())
        out.print(f"sweep {info.name} {info.status}: {counts}  [dim](rank: workbench sweeps {info.id} "
                  f"--metric KEY)[/]")
        _shared_outputs(ws, info, out)
    return {"succeeded": 0, "failed": 1}.get(info.status, 130)


def _shared_outputs(ws: Any, info: SweepInfo, out: Any) -> None:
    """Say which paths several isolated members wrote: the project holds one member's file, and
    every member keeps its own bytes and model version."""
    kept: dict[str, set[str]] = {}
    for member in info.members:
        for conflict in ws.runs.conflicts(member.run_id) if member.run_id else []:
            kept.setdefault(conflict.path, set()).add(conflict.other_run or "another process")
    for path, holders in sorted(kept.items()):
        out.print(f"[dim]{path}: written by several members; the project holds the file of "
                  f"{', '.join(sorted(holders))}; each member's record and model keep its own bytes[/]")


# -- sweeps ------------------------------------------------------------------------------------
def cmd_sweeps(args: argparse.Namespace) -> int:
    from workbench.cli.workflows_view import parallel_coordinates, sweeps_table

    ws = open_workspace()
    if args.sweep is None:
        sweeps = ws.workflows.sweeps(args.limit)
        if args.json:
            print_json([s.to_dict(members=False) for s in sweeps])
        else:
            console().print(sweeps_table(sweeps))
        return 0
    info = ws.workflows.get_sweep(args.sweep)
    metric = args.metric or ws.workflows.first_metric(info)
    ranked = ws.workflows.rank(info.id, metric, mode=args.value, order=args.order)[1] if metric else []
    if args.json:
        data = info.to_dict()
        data["metric"] = metric
        data["ranking"] = [m.to_dict() for m in ranked]
        print_json(data)
        return 0
    from workbench.cli.workflows_view import ranking_table

    out = console()
    out.print(ranking_table(info, ranked, metric, args.order))
    if ranked and metric and not args.no_plot:
        out.print(parallel_coordinates(info, ranked, metric, args.order, width=min(out.width, 120)),
                  markup=False, highlight=False)
    return 0
