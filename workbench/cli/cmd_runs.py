"""CLI commands of the runs group: run, runs, show, metrics, logs, compare, lineage, models, rerun
(``runs rm|archive|rename|tag`` live in :mod:`workbench.cli.cmd_runs_manage`).

``workbench run -- CMD...`` streams the command's output live and exits with its exit status (130
when cancelled with Ctrl+C). Every listing takes ``--json``; the JSON shapes are documented in
docs/tracking.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from workbench import format as fmt
from workbench.cli.common import (
    add_json_flag,
    console,
    open_workspace,
    positive_int,
    print_json,
    whole_number,
)

if TYPE_CHECKING:
    from workbench.tracking.records import RunInfo


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser(
        "run", help="run a command in the project and record it as a run",
        description="Run COMMAND (after --) and record params, metrics, inputs, outputs, logs and models.",
    )
    p.add_argument("-n", "--name", help="a name for the run")
    p.add_argument("--tag", action="append", default=[], metavar="KEY[=VALUE]",
                   help="tag the run (repeatable)")
    p.add_argument("--executor", default=None, help="where to run: local (default), docker, kubernetes")
    p.add_argument("--image", help="container image (docker, kubernetes)")
    p.add_argument("--gpus", help="GPUs to give the job: a number or 'all'")
    p.add_argument("--cpu", help="CPU limit, e.g. 2 or 500m")
    p.add_argument("--memory", help="memory limit, e.g. 4Gi")
    p.add_argument("--namespace", help="Kubernetes namespace")
    p.add_argument("--no-remote-inputs", action="store_true",
                   help="docker/kubernetes: stage the inputs through this host even when the project has "
                   "a default remote (default: the job fetches them from the remote, pushes outputs there)")
    p.add_argument("--isolated", action="store_true", help="run in a private checkout of the input snapshot, "
                   "record outputs and models from there, copy them back unless another run changed a path "
                   "meanwhile (that file stays; this run records a conflict). For concurrent local runs")
    p.add_argument("-q", "--quiet", action="store_true", help="do not echo the command's output")
    add_json_flag(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    p.set_defaults(handler=cmd_run)

    p = subparsers.add_parser("runs", help="list runs with their params and metrics")
    p.add_argument("--filter", dest="filter_expr", metavar="EXPR",
                   help="e.g. 'lr>0.01 and status==succeeded and loss<0.3'")
    p.add_argument("--sort", metavar="KEY",
                   help="field, param or metric (ascending); descending: KEY:desc, --sort=-KEY or --desc")
    p.add_argument("--desc", action="store_true", help="sort descending (with --sort)")
    p.add_argument("--limit", type=_limit, metavar="N",
                   help=f"show at most N runs (default: all with --json, {TABLE_LIMIT} in the table; 0: all)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--archived", dest="archived", action="store_const", const=None, default=False,
                       help="list only archived runs")
    shown.add_argument("--all", dest="archived", action="store_const", const=True,
                       help="list archived runs too")
    add_json_flag(p)
    p.set_defaults(handler=cmd_runs)
    _hint_descending_sort(p)
    from workbench.cli import cmd_runs_manage

    cmd_runs_manage.register(p)

    p = subparsers.add_parser("show", help="show one run: command, status, params, metrics, files, env")
    p.add_argument("run", help="run id (a unique prefix), name, or latest[~N]")
    add_json_flag(p)
    p.set_defaults(handler=cmd_show)

    p = subparsers.add_parser("metrics", help="list a run's metrics, or print one metric's series")
    p.add_argument("run", help="run id, name or latest")
    p.add_argument("key", nargs="?", help="the metric to print")
    p.add_argument("--max-points", type=positive_int, metavar="N",
                   help="downsample to N buckets (min/max/last)")
    p.add_argument("--plot", action="store_true",
                   help="draw the metric (every metric, without KEY) as a chart in the terminal")
    add_json_flag(p)
    p.set_defaults(handler=cmd_metrics)

    p = subparsers.add_parser("logs", help="print a run's stored output")
    p.add_argument("run", help="run id, name or latest")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    add_json_flag(p)
    p.set_defaults(handler=cmd_logs)

    p = subparsers.add_parser(
        "compare", help="compare runs: params that differ, metrics side by side, input and code differences")
    p.add_argument("runs", nargs="+", help="two or more runs")
    p.add_argument("--diff", action="store_true",
                   help="also print the unified diff of each changed text file against the first run")
    p.add_argument("--plot", metavar="KEY", action="append", default=[],
                   help="also draw metric KEY of every run in one terminal chart (repeatable)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_compare)

    p = subparsers.add_parser(
        "lineage", help="trace a file, model version or deployment back through its runs and retrains")
    p.add_argument("target", help="a project path or MODEL[:VERSION|@ALIAS] (a deployment with --deployment)")
    p.add_argument("--deployment", action="store_true",
                   help="TARGET is a deployment: start at it and follow its retrains back")
    add_json_flag(p)
    p.set_defaults(handler=cmd_lineage)

    p = subparsers.add_parser("models", help="list registered models; tag a version with an alias")
    add_json_flag(p)
    from workbench.cli import cmd_models

    p.set_defaults(handler=cmd_models.cmd_models)
    sub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    tag = sub.add_parser("tag", help="point an alias (e.g. production) at NAME:VERSION")
    tag.add_argument("spec", metavar="NAME:VERSION")
    tag.add_argument("alias")
    add_json_flag(tag)
    tag.set_defaults(handler=cmd_models.cmd_models_tag)
    show = sub.add_parser("show", help="show a model's versions, or one version (NAME:VERSION, NAME@ALIAS)")
    show.add_argument("spec", metavar="NAME[:VERSION|@ALIAS]")
    add_json_flag(show)
    show.set_defaults(handler=cmd_models.cmd_models_show)
    export = sub.add_parser("export", help="write a version as its file (raw) or an MLflow model folder")
    export.add_argument("spec", metavar="NAME[:VERSION|@ALIAS]")
    export.add_argument("dest", metavar="DEST", help="a file or folder (raw), a new folder (mlflow)")
    export.add_argument("--format", choices=["raw", "mlflow"], default="raw",
                        help="raw: the registered bytes; mlflow: MLmodel + model.pkl + environment files")
    export.add_argument("--force", action="store_true", help="replace what is at DEST")
    add_json_flag(export)
    export.set_defaults(handler=cmd_models.cmd_models_export)

    p = subparsers.add_parser(
        "rerun", help="run a run's command again on its input snapshot, as a new run; say if it reproduced",
        description="Runs the command again on the original run's input snapshot, executor, image, GPUs "
        "and namespace (flags override them), then compares the outputs byte for byte.")
    p.add_argument("run", help="run id, name or latest")
    p.add_argument("-n", "--name", help="a name for the new run")
    for flag, text in (("--executor", "run it elsewhere: local, docker, kubernetes"),
                       ("--image", "another container image"), ("--gpus", "another GPU request"),
                       ("--cpu", "a CPU limit"), ("--memory", "a memory limit"),
                       ("--namespace", "another Kubernetes namespace")):
        p.add_argument(flag, help=f"{text} (default: the original run's)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not echo the command's output")
    add_json_flag(p)
    p.set_defaults(handler=cmd_rerun)


# -- formatting helpers ----------------------------------------------------------------------------
NONE = "-"
"""What the CLI prints where there is no value."""


def _num(value: object) -> str:
    """A param or metric value as :func:`workbench.format.number` writes it ("-" for none)."""
    return fmt.number(value, NONE)


TABLE_LIMIT = 100
_STATUS_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def _status(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


_ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "white": "37"}


def _plain_status(status: str) -> str:
    """``status`` coloured with an ANSI code when stderr is a terminal (and NO_COLOR and TERM=dumb
    do not say otherwise), as Rich would print it, without importing Rich."""
    import os

    if not sys.stderr.isatty() or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return status
    return f"\x1b[{_ANSI[_STATUS_STYLE.get(status, 'white')]}m{status}\x1b[0m"


def _echo(channel: str, line: bytes) -> None:
    stream = sys.stderr if channel == "stderr" else sys.stdout
    stream.flush()
    stream.buffer.write(line + b"\n")
    stream.buffer.flush()


# -- handlers --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from workbench.cli.run_request import in_current_folder, request_from_args

    request = request_from_args(args)
    ws = open_workspace()
    request = in_current_folder(request, ws.root)
    if args.no_remote_inputs:  # read by the container executors (workbench.executors.remote_inputs)
        ws.config.executor.remote_inputs = False
    info = ws.runs.execute(request, on_line=None if (args.quiet or args.json) else _echo)
    return _report_run(ws, info, args.json)


def _run_json(info: RunInfo, **parts: list[Any]) -> dict[str, Any]:
    """A run's ``--json`` form with lists of records (inputs, outputs, models, conflicts) added."""
    return {**info.to_dict(full=True), **{k: [x.to_dict() for x in items] for k, items in parts.items()}}


def _report_run(ws: Any, info: RunInfo, as_json: bool, extra: dict[str, Any] | None = None) -> int:
    outputs, models = ws.runs.outputs(info.id), ws.runs.run_models(info.id)
    conflicts = ws.runs.conflicts(info.id)
    if as_json:
        print_json({**_run_json(info, outputs=outputs, models=models, conflicts=conflicts), **(extra or {})})
    else:
        parts = [f"run {info.id} {_plain_status(info.status)} in {fmt.duration(info.duration, NONE)}"]
        parts += [f"exit {info.exit_code}"] if info.exit_code is not None else []
        parts += [f"{len(info.metrics)} metric(s)"] if info.metrics else []
        parts += [f"{len(outputs)} output(s)"] if outputs else []
        parts += [f"model {m.name}:{m.version}" for m in models]
        parts += [f"{len(conflicts)} output conflict(s): workbench show {info.id}"] if conflicts else []
        if info.reason and info.status != "succeeded":
            parts.append(info.reason)
        if info.dropped_events:
            parts.append(f"dropped events: {info.dropped_events} (see workbench logs)")
        # Plain write, not Rich: importing Rich cost ~50 ms at the end of every `workbench run`.
        sys.stderr.write(" · ".join(parts) + "\n")
    if info.status == "cancelled":
        return 130
    return int(info.exit_code) if info.exit_code is not None else int(info.status == "failed")


def _compact(mapping: dict[str, Any], limit: int = 4) -> str:
    items = [f"{k}={_num(v)}" for k, v in list(mapping.items())[:limit]]
    if len(mapping) > limit:
        items.append(f"+{len(mapping) - limit}")
    return " ".join(items)


def _hint_descending_sort(parser: argparse.ArgumentParser) -> None:
    """``--sort -loss`` reads as an unknown option to argparse: say what to write instead."""
    original = parser.error

    def error(message: str) -> NoReturn:
        if "--sort" in message:
            message += "; for descending order write --sort KEY:desc, --sort=-KEY or --sort KEY --desc"
        original(message)
        raise SystemExit(2)  # argparse's error() never returns; this tells the type checker so

    parser.error = error  # type: ignore[method-assign]


def _limit(text: str) -> int:
    """``--limit``: 0 means every run."""
    return whole_number(text, 0)


def cmd_runs(args: argparse.Namespace) -> int:
    sort = args.sort
    if args.desc:
        from workbench.errors import UsageError

        if not sort:
            raise UsageError("--desc needs --sort KEY", "e.g. workbench runs --sort loss --desc")
        from workbench.tracking.filters import sort_spec

        sort = f"-{sort_spec(sort)[0]}"
    ws = open_workspace()
    limit = None if args.limit == 0 else args.limit
    runs = ws.runs.list(filter_expr=args.filter_expr, sort=sort, limit=limit, archived=args.archived)
    if args.json:
        print_json([r.to_dict() for r in runs])
        return 0
    hidden = 0
    if args.limit is None and len(runs) > TABLE_LIMIT:
        hidden = len(runs) - TABLE_LIMIT
        runs = runs[:TABLE_LIMIT]
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "status", "started", "duration", "params", "metrics"):
        fixed = column in ("id", "status", "started", "duration")
        # an id is copied into other commands: never cut (a long value is, 'workbench show' has it)
        table.add_column(column, no_wrap=fixed, min_width={"id": 14, "started": 11, "status": 9}.get(column))
    for r in runs:
        table.add_row(
            r.id, r.name, _status(r.status), fmt.short_time(r.started_at, NONE),
            fmt.duration(r.duration, NONE),
            _compact(r.params),
            _compact({k: m.last for k, m in r.metrics.items()}),
        )
    out = console()
    if not runs and args.filter_expr:
        out.print(f"no run matches {args.filter_expr!r} (workbench runs, without --filter, lists them all)")
    elif not runs:
        out.print("no runs yet: start one with 'workbench run -- python train.py'")
    else:
        out.print(table)
    if hidden:
        out.print(f"... and {hidden} older runs (--limit 0 shows all, --filter narrows)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ws = open_workspace()
    info = ws.runs.get(args.run)
    inputs, outputs = ws.runs.inputs(info.id), ws.runs.outputs(info.id)
    versions, sources = ws.runs.run_models(info.id), ws.runs.param_sources(info.id)
    defaults = {k: "  (default)" for k, source in sources.items() if source == "argparse-default"}
    refused, conflicts = ws.runs.refused_events(info.id), ws.runs.conflicts(info.id)
    if args.json:
        data = _run_json(info, inputs=inputs, outputs=outputs, models=versions, conflicts=conflicts)
        print_json({**data, "param_sources": sources, "refused_events": refused})
        return 0
    out = console()
    out.print(f"[bold]run {info.id}[/] {info.name}  {_status(info.status)}"
              + (f"  exit {info.exit_code}" if info.exit_code is not None else "")
              + (f"  ({info.reason})" if info.reason else ""))
    out.print(f"command   {' '.join(info.command)}", markup=False)
    if info.workdir not in ("", "."):
        out.print(f"in        {info.workdir}/", markup=False)
    out.print(f"started   {fmt.local_time(info.started_at)}   duration {fmt.duration(info.duration, NONE)}   "
              f"executor {info.executor}")
    if info.snapshot_before:
        out.print(f"snapshots before {info.snapshot_before[:12]}  after {(info.snapshot_after or '-')[:12]}")
    if info.parent_run:
        out.print(f"parent    {info.parent_run}")
    if info.dropped_events:
        out.print(f"[yellow]dropped events: {info.dropped_events}[/] (see workbench logs {info.id})")
    for label, mapping, marks in (("params", info.params, defaults), ("tags", info.tags, {})):
        if mapping:
            out.print(f"[bold]{label}[/]")
            for k, v in mapping.items():
                out.print(f"  {k} = {_num(v)}{marks.get(k, '')}", markup=False)
    if info.metrics:
        out.print("[bold]metrics[/] (last / min / max, points)")
        for k, m in info.metrics.items():
            out.print(f"  {k}: {_num(m.last)} / {_num(m.min)} / {_num(m.max)}  ({m.count})", markup=False)
    for label, files in (("inputs", inputs), ("outputs", outputs)):
        if files:
            out.print(f"[bold]{label}[/]")
            for f in files:
                out.print(f"  {f.path}  {(f.hash or '')[:12]}  {f.source}", markup=False, soft_wrap=True)
    if versions:
        out.print("[bold]models[/]")
        for v in versions:
            out.print(f"  {v.name}:{v.version}  {v.framework} {v.framework_version}  {v.path}", markup=False,
                      soft_wrap=True)
    if refused:
        out.print(f"[bold]refused[/] ({len(refused)} path(s) the job named or wrote; docs/security.md)")
        for r in refused:
            out.print(f"  {r['kind']}  {r['path']}  {r['reason']}", markup=False, soft_wrap=True)
    for c in conflicts:  # outputs whose bytes the project does not hold
        out.print(f"conflict  {c.path}  {c.kind}: {c.reason}" + (f"  run {c.other_run}" if c.other_run
                  else "") + (f"  (this run's bytes {c.hash[:12]})" if c.hash else ""), markup=False,
                  soft_wrap=True)
    env = info.environment
    if env:
        git = env.get("git") or {}
        out.print("[bold]environment[/]")
        python = env.get("python") or env.get("runner_python", "?")
        out.print(f"  python {python}  {env.get('os', '')}", markup=False)
        out.print(f"  cpu {env.get('cpu', '?')} x{env.get('cpu_count', '?')}  memory "
                  f"{(env.get('memory_total') or 0) / 2**30:.1f} GiB  "
                  f"packages {len(env.get('packages') or {})}",
                  markup=False)
        if git:
            out.print(f"  git {git.get('commit', '')[:12]} {git.get('branch', '')}"
                      + (" (dirty)" if git.get("dirty") else ""), markup=False)
    for gpu in info.gpus:
        memory = (gpu.get("memory_total") or 0) / 2**30
        out.print(f"  gpu{gpu.get('index')} {gpu.get('model')} {memory:.0f} GiB "
                  f"driver {gpu.get('driver')}", markup=False)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    ws = open_workspace()
    info = ws.runs.get(args.run)
    if args.plot and not args.json:
        from workbench.cli.runs_views import plot_metrics

        return plot_metrics(ws, info, [args.key] if args.key is not None else list(info.metrics))
    if args.key is None:
        if args.json:
            print_json([m.to_dict() for m in info.metrics.values()])
            return 0
        out = console()
        if not info.metrics:
            out.print(f"run {info.id} has no metrics")
        for k, m in info.metrics.items():
            out.print(f"{k}: last {_num(m.last)} (step {m.last_step})  min {_num(m.min)}  max {_num(m.max)}  "
                      f"{m.count} points", markup=False)
        return 0
    series = ws.runs.metric_series(info.id, args.key, max_points=args.max_points)
    if args.json:
        print_json(series.to_dict())
        return 0
    lines = []
    for i, (step, value) in enumerate(zip(series.steps, series.values, strict=False)):
        extra = f"  (min {_num(series.mins[i])}, max {_num(series.maxs[i])})" if series.downsampled else ""
        lines.append(f"{step}\t{_num(value)}{extra}")
    sys.stdout.write("\n".join(lines) + ("\n" if lines else ""))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    ws = open_workspace()
    run_id = ws.runs.resolve(args.run)
    if args.json and not args.follow:
        print_json([line.to_dict() for line in ws.runs.log_lines(run_id)])
        return 0
    for line in ws.runs.log_lines(run_id, follow=args.follow):
        if args.json:
            sys.stdout.write(json.dumps(line.to_dict(), ensure_ascii=False) + "\n")
        else:
            stream = sys.stderr if line.stream == "stderr" else sys.stdout
            prefix = "workbench: " if line.stream == "workbench" else ""
            stream.write(prefix + line.text + "\n")
        sys.stdout.flush()
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from workbench.errors import UsageError

    if len(args.runs) < 2:
        raise UsageError("compare needs at least two runs", "workbench compare RUN RUN [RUN...]")
    ws = open_workspace()
    data = ws.runs.compare(args.runs)
    for key in args.plot:  # said before anything is printed
        if key not in data["metrics"]:
            raise UsageError(f"none of these runs has a metric {key!r}",
                             f"their metrics: {', '.join(sorted(data['metrics'])) or 'none'}")
    if args.json:
        print_json(data)
        return 0
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    table.add_column("")
    for r in data["runs"]:
        table.add_column(f"{r['id']}\n{r['name']}".strip())
    table.add_row("[bold]status[/]", *[_status(r["status"]) for r in data["runs"]])
    for k, values in data["params"].items():
        table.add_row(k, *[_num(v) if v is not None else "-" for v in values])
    if data["metrics"]:
        table.add_row("[bold]metrics (last)[/]", *["" for _ in data["runs"]])
    for k, values in data["metrics"].items():
        table.add_row(k, *[str(v["last"]) if v else "-" for v in values])
    out = console()
    out.print(table)
    if data["same_params"]:
        out.print(f"same in all: {_compact(data['same_params'], limit=8)}", markup=False)
    from workbench.cli.runs_views import print_differences

    print_differences(out, data, ws if args.diff else None)
    if args.plot:
        from workbench.cli.runs_views import plot_compared

        for key in args.plot:
            plot_compared(ws, data, key)
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from workbench.monitor.loop import production_lineage

    ws = open_workspace()
    node = production_lineage(ws, args.target, deployment=args.deployment)
    if args.json:
        print_json(node.to_dict())
        return 0
    from rich.tree import Tree

    from workbench.cli.runs_views import lineage_tree

    root = Tree("lineage")
    lineage_tree(node, root)
    console().print(root)
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    ws = open_workspace()
    overrides = {k: getattr(args, k) for k in ("executor", "image", "gpus", "cpu", "memory", "namespace")}
    info = ws.runs.rerun(args.run, name=args.name, on_line=None if (args.quiet or args.json) else _echo,
                         overrides=overrides)
    reproduction = ws.runs.reproduction(info.id)
    if not args.json:
        console(stderr=True).print(reproduction.summary(), markup=False)
    return _report_run(ws, info, args.json, extra={"reproduction": reproduction.to_dict()})
