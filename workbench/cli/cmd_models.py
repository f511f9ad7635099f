"""CLI commands of the model registry: ``models``, ``models show``, ``models tag`` (registered by
:mod:`workbench.cli.cmd_runs`, which owns the ``models`` parser)."""

from __future__ import annotations

import argparse

from workbench import format as fmt
from workbench.cli.common import console, open_workspace, print_json


def cmd_models(args: argparse.Namespace) -> int:
    ws = open_workspace()
    models = ws.runs.models()
    if args.json:
        print_json([m.to_dict() for m in models])
        return 0
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "latest", "versions", "framework", "aliases", "updated"):
        table.add_column(column)
    for m in models:
        aliases = " ".join(f"{a}->{v}" for a, v in m.aliases.items())
        table.add_row(m.name, str(m.latest_version), str(m.versions), m.framework, aliases,
                      fmt.local_time(m.updated_at))
    out = console()
    if models:
        out.print(table)
    else:
        out.print("no models yet: a run registers one when it calls workbench.log_model, or writes a file "
                  "whose bytes are a model (scikit-learn/joblib, torch, ONNX, XGBoost...)")
    return 0


def cmd_models_tag(args: argparse.Namespace) -> int:
    from workbench.errors import UsageError
    from workbench.tracking.registry import parse_spec

    name, version, alias = parse_spec(args.spec)
    if version is None or alias is not None:
        raise UsageError(f"give the version to tag as NAME:VERSION, not {args.spec!r}",
                         "e.g. workbench models tag digits:3 production")
    ws = open_workspace()
    result = ws.runs.set_alias(name, version, args.alias)
    if args.json:
        print_json(result.to_dict())
    else:
        console().print(f"{args.alias} -> {result.name}:{result.version}", markup=False)
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    ws = open_workspace()
    if ":" in args.spec or "@" in args.spec:
        versions = [ws.runs.model_version(args.spec)]
    else:
        versions = ws.runs.model_versions(args.spec)
        if not versions:
            ws.runs.model_version(args.spec)  # raises the one-line error
    if args.json:
        print_json([v.to_dict() for v in versions])
        return 0
    out = console()
    for v in versions:
        aliases = f"  [{', '.join(v.aliases)}]" if v.aliases else ""
        out.print(f"{v.name}:{v.version}{aliases}  {v.framework} {v.framework_version}  {v.path}  "
                  f"{v.hash[:12]}  run {v.run_id or '-'}  {fmt.local_time(v.created_at)}", markup=False)
    return 0


def cmd_models_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from workbench.tracking.export import export_model

    ws = open_workspace()
    version = ws.runs.model_version(args.spec)
    dest = Path(args.dest).absolute()
    if args.format == "raw" and args.dest.endswith("/"):  # "DIR/": a folder, made if missing
        dest.mkdir(parents=True, exist_ok=True)
    written = export_model(
        version, lambda path: ws.versions.export_object(version.hash, path), dest, args.format,
        force=args.force,
    )
    if args.json:
        print_json({"model": version.name, "version": version.version, "format": args.format,
                    "path": str(written), "hash": version.hash})
    else:
        console().print(f"{version.name}:{version.version} -> {written} ({args.format})", markup=False)
    return 0
