"""CLI commands of the deploy group: deploy, deployments, scale, rollback, undeploy, predict."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from workbench.cli.common import add_json_flag, console, open_workspace, print_json
from workbench.errors import UsageError


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    p = subparsers.add_parser(
        "deploy", help="serve a model version (V2 inference protocol, Prometheus metrics)"
    )
    p.add_argument("model", metavar="MODEL[:VERSION|@ALIAS]", help="a model in the registry")
    p.add_argument("--name", help="deployment name (RFC 1123 label; default: from the model name)")
    p.add_argument(
        "--target", choices=["local", "kubernetes", "openshift"], help="where to serve (default: local)"
    )
    p.add_argument("--namespace", help="cluster namespace (default: the kubeconfig context's)")
    p.add_argument(
        "--replicas", type=int, help="number of replicas (default: a live deployment keeps its count, else 1)"
    )
    p.add_argument("--cpu", help="CPU request and limit, e.g. 500m")
    p.add_argument("--memory", help="memory request and limit, e.g. 512Mi")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per replica (cluster targets)")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for readiness")
    p.add_argument("--min-replicas", type=int, default=0, metavar="A",
                   help="cluster targets: autoscale between A and --max-replicas (a HorizontalPodAutoscaler)")
    p.add_argument("--max-replicas", type=int, default=0, metavar="B", help="the autoscaler's ceiling")
    p.add_argument("--target-cpu", type=int, default=0, metavar="P",
                   help="the autoscaler's CPU utilisation target, percent of the request (default 70)")
    p.add_argument("--port", type=int, default=0,
                   help="local target: the endpoint's port, kept across deploys and rollbacks (default: "
                   "the current one, else a free one)")
    p.add_argument(
        "--expose", choices=["route", "ingress", "none"],
        help="how a cluster deployment is reached from outside: an OpenShift Route, an Ingress, or none "
        "(inside the cluster and 'workbench predict' only). Default: as the deployment's last revision, "
        "else Route on OpenShift, Ingress elsewhere. Neither checks who calls",
    )
    p.add_argument(
        "--log-predictions", type=float, default=1.0, metavar="RATE",
        help="share of requests recorded with their inputs and answers for 'workbench predictions' "
        "(default 1.0: every request; 0 turns it off)",
    )
    p.add_argument(
        "--build-image", action="store_true",
        help="cluster targets: build a serving image holding the model's exact framework version with "
        "this machine's Docker (offline, from the local model server) and push it to --registry",
    )
    p.add_argument("--registry", metavar="HOST/PATH",
                   help="where --build-image pushes the image, and the cluster pulls it from")
    p.add_argument("--server", choices=["mlserver", "kserve"],
                   help="the model server behind the V2 protocol: MLServer 1.7.1 or KServe's ModelServer "
                   "(scikit-learn models) (default: [deploy] server, else mlserver)")
    add_json_flag(p)
    p.set_defaults(handler=_deploy)

    p = subparsers.add_parser("deployments", help="list deployments, or one deployment's history")
    p.add_argument("name", nargs="?", help="show this deployment's revision history")
    p.add_argument("--all", action="store_true", help="include undeployed ones")
    add_json_flag(p)
    p.set_defaults(handler=_list)

    p = subparsers.add_parser("scale", help="change a deployment's number of replicas")
    p.add_argument("name")
    p.add_argument("replicas", type=int)
    add_json_flag(p)
    p.set_defaults(handler=_scale)

    p = subparsers.add_parser("rollback", help="re-apply an earlier revision of a deployment")
    p.add_argument("name")
    p.add_argument("--to", type=int, metavar="REVISION", help="revision number (default: the previous model)")
    add_json_flag(p)
    p.set_defaults(handler=_rollback)

    p = subparsers.add_parser("undeploy", help="stop serving a deployment (its history is kept)")
    p.add_argument("name")
    add_json_flag(p)
    p.set_defaults(handler=_undeploy)

    p = subparsers.add_parser(
        "predict", help="send a V2 inference request (a JSON file, stdin or --data) and print the answer"
    )
    p.add_argument("name")
    p.add_argument(
        "file", nargs="?", metavar="FILE|-",
        help='{"inputs": [...]} or a bare list of rows; - reads stdin (the default when stdin is piped)',
    )
    p.add_argument("--data", metavar="JSON", help="the request inline, e.g. '[[5.1, 3.5, 1.4, 0.2]]'")
    add_json_flag(p)
    p.set_defaults(handler=_predict)


def _show(info: Any, as_json: bool) -> int:
    if as_json:
        print_json(info.to_json())
        return 0
    out = console()
    out.print(
        f"[bold]{info.name}[/]: {info.model}:{info.version} rev {info.revision} on {info.target} — "
        f"{info.ready}/{info.replicas} ready, {info.state}"
    )
    if info.endpoint:
        out.print(f"endpoint: {info.endpoint}/v2/models/{info.name}/infer")
    if info.message:
        out.print(f"[yellow]{info.message}[/]")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    ws = open_workspace()
    err = console(stderr=True)
    target = ws.deployments.check_request(
        name=args.name, target=args.target, replicas=args.replicas, gpus=args.gpus, timeout=args.timeout,
        expose=args.expose, log_predictions=args.log_predictions,
    )
    ws.deployments.check_autoscale(target, args.min_replicas, args.max_replicas, args.target_cpu)
    server = ws.deployments.server_for(args.model, args.name, args.server)
    image, held = "", None
    if args.build_image or args.registry:
        if target == "local" or not (args.build_image and args.registry):
            raise UsageError("--build-image and --registry go together, on cluster targets",
                             "the cluster pulls the image from --registry; a local deployment needs neither")
        if server != "mlserver":
            raise UsageError(f"--build-image builds MLServer images, not {server} ones",
                             "deploy with --server mlserver, or set [deploy] image and image_frameworks")
        if not ws.deployments.server_ready(args.model, server):
            _build_server(ws, args.model, err, server)
        with err.status(f"building and pushing the serving image for {args.model} ..."):
            image, held = ws.deployments.build_image(args.model, args.registry)
    if target == "local" and not ws.deployments.server_ready(args.model, server):
        _build_server(ws, args.model, err, server)
    with err.status(f"deploying {args.model} ..."):
        info = ws.deployments.deploy(
            args.model,
            name=args.name,
            target=args.target,
            namespace=args.namespace,
            replicas=args.replicas,
            cpu=args.cpu,
            memory=args.memory,
            gpus=args.gpus,
            timeout=args.timeout,
            expose=args.expose,
            port=args.port,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            target_cpu=args.target_cpu,
            log_predictions=args.log_predictions,
            image=image,
            image_frameworks=held,
            server=server,
        )
    return _show(info, args.json)


def _build_server(ws: Any, model: str, err: Any, server: str) -> None:
    """First use of a framework version: build the local model server's venv, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ref = ws.deployments.resolve_model(model)
    what = f"{ref.framework} {ref.framework_version}" if ref.framework_version else ref.framework
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("packages"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # logs get the deploy's result or its one-line error only
    ) as bar:
        task = bar.add_task(f"building the model server for {what} (first use, about a minute)", total=None)
        ws.deployments.prepare_server(
            ref, progress=lambda done, total: bar.update(task, completed=done, total=total), server=server
        )
    if err.is_terminal:
        err.print(f"model server for {what} ready")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _list(args: argparse.Namespace) -> int:
    ws = open_workspace()
    if args.name:
        history = ws.deployments.history(args.name)
        if args.json:
            print_json([r.to_json() for r in history])
            return 0
        from rich.table import Table

        table = Table("REV", "ACTION", "MODEL", "RUN", "REPLICAS", "BY", "WHEN", "RESULT", "MESSAGE")
        for r in history:
            table.add_row(
                str(r.revision),
                r.action,
                f"{r.model}:{r.version}",
                (r.run_id or "")[:12],
                str(r.replicas),
                r.deployed_by,
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.deployed_at)),
                r.result,
                r.message[:60],
            )
        console().print(table)
        return 0
    infos = ws.deployments.list(include_undeployed=args.all)
    counts = _prediction_counts(ws, [i.name for i in infos])
    monitored = ws.monitor.states()
    if args.json:
        print_json([{**i.to_json(), "metrics": _metrics(ws, i), "predictions": counts.get(i.name),
                     "monitor": monitored.get(i.name)}
                    for i in infos])
        return 0
    if not infos:
        console().print("no deployments (deploy one with 'workbench deploy MODEL')")
        return 0
    from rich.table import Table

    table = Table("NAME", "MODEL", "RUN", "TARGET", "READY", "STATE", "MONITOR", "ENDPOINT", "PREDICTIONS",
                  "AGE")
    for i in infos:
        recorded = counts.get(i.name) or {}
        rate = recorded.get("error_rate")
        table.add_row(
            i.name,
            f"{i.model}:{i.version}",
            (i.run_id or "")[:12],
            i.target,
            f"{i.ready}/{i.replicas}",
            i.state,
            monitored.get(i.name, "-"),
            i.endpoint,
            f"{recorded.get('count', 0)}" + (f" ({rate:.0%} errors)" if rate else ""),
            _age(i.age_seconds),
        )
    console().print(table)
    return 0


def _prediction_counts(ws: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """Recorded predictions and errors per deployment (local spools ingested first: a stat per file)."""
    ws.predictions.ingest(clusters=False)
    return {
        name: {"count": c.predictions, "errors": c.errors, "error_rate": c.error_rate}
        for name, c in ws.predictions.counts(names).items()
    }


def _metrics(ws: Any, info: Any) -> dict[str, Any] | None:
    """Totals, error rate and latency since the replicas started (local targets; None elsewhere).

    One scrape per replica on loopback; ``request_rate`` is None in a one-shot listing (a rate needs
    two scrapes: the TUI's Deployments screen samples ``ws.deployments.metrics`` every few seconds).
    """
    if info.target != "local" or info.state in ("undeployed", "failed") or not info.endpoints:
        return None
    snapshot: dict[str, Any] = ws.deployments.metrics(info.name).to_json()
    return snapshot


def _scale(args: argparse.Namespace) -> int:
    ws = open_workspace()
    with console(stderr=True).status(f"scaling {args.name} to {args.replicas} ..."):
        info = ws.deployments.scale(args.name, args.replicas)
    return _show(info, args.json)


def _rollback(args: argparse.Namespace) -> int:
    ws = open_workspace()
    with console(stderr=True).status(f"rolling back {args.name} ..."):
        info = ws.deployments.rollback(args.name, args.to)
    return _show(info, args.json)


def _undeploy(args: argparse.Namespace) -> int:
    ws = open_workspace()
    info = ws.deployments.undeploy(args.name)
    if args.json:
        print_json(info.to_json())
        return 0
    console().print(f"{args.name} undeployed (history kept: 'workbench deployments {args.name}')")
    return 0


def _request_text(args: argparse.Namespace) -> tuple[str, str]:
    """The request's text and where it came from: --data, a file, or stdin."""
    from workbench.errors import UsageError

    if args.data is not None:
        if args.file is not None:
            raise UsageError("give the request once: a FILE or --data, not both", "drop one of them")
        return args.data, "--data"
    source = args.file
    if source is None:
        if sys.stdin.isatty():
            raise UsageError("no request given", "give FILE.json, - for stdin, or --data '[[...]]'")
        source = "-"
    if source == "-":
        return sys.stdin.read(), "stdin"
    try:
        return Path(source).read_text(encoding="utf-8"), source
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {source}: {why}", "give a JSON file") from None


def _predict(args: argparse.Namespace) -> int:
    from workbench.errors import UsageError

    text, where = _request_text(args)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{where} is not JSON: {exc}", 'give {"inputs": [...]} or a list of rows'
        ) from None
    if isinstance(data, list) and not all(isinstance(r, (list, int, float)) for r in data):
        raise UsageError(f"{where}: rows must be lists of numbers", "e.g. [[5.1, 3.5, 1.4, 0.2]]")
    if isinstance(data, list) and len({len(r) if isinstance(r, list) else 1 for r in data}) > 1:
        raise UsageError(f"{where}: rows have different lengths", "give every row the same number of values")
    if not isinstance(data, (list, dict)):
        raise UsageError(f"{where} is not a request", 'give {"inputs": [...]} or a list of rows')
    if isinstance(data, list):  # rows of numbers: wrap them as one FP64 tensor
        rows = [r if isinstance(r, list) else [r] for r in data]
        data = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), len(rows[0]) if rows else 0],
                    "datatype": "FP64",
                    "data": [v for r in rows for v in r],
                }
            ]
        }
    ws = open_workspace()
    answer = ws.deployments.predict(args.name, data)
    if args.json:
        print_json(answer)
        return 0
    _print_answer(answer)
    return 0


def _print_answer(answer: dict[str, Any]) -> None:
    """The outputs as a table: one row per instance, one column per output (model, version above)."""
    from rich.table import Table

    outputs = [o for o in answer.get("outputs", []) if isinstance(o, dict)]
    out = console()
    head = " ".join(str(answer[k]) for k in ("model_name", "model_version") if answer.get(k))
    if head:
        out.print(f"[dim]{head}[/]")
    if not outputs:
        print_json(answer)
        return
    columns = []
    for o in outputs:
        data = o.get("data", [])
        shape = o.get("shape") or [len(data)]
        rows = int(shape[0]) if shape and int(shape[0]) > 0 else 1
        width = max(1, len(data) // rows) if data else 1
        columns.append((str(o.get("name", "output")), [data[i * width:(i + 1) * width] for i in range(rows)]))
    table = Table("#", *(name for name, _ in columns))
    for i in range(max(len(cells) for _, cells in columns)):
        table.add_row(str(i), *(_cell(cells[i]) if i < len(cells) else "" for _, cells in columns))
    out.print(table)


def _cell(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values) if len(values) != 1 else str(values[0])
