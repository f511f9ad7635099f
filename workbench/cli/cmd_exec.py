"""CLI commands of the exec group: ``workbench gpus`` and ``workbench cluster`` (see workbench.cli)."""

from __future__ import annotations

import argparse
from typing import Any

from workbench import format as fmt
from workbench.cli.common import add_json_flag, console, print_json


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    gpus = subparsers.add_parser(
        "gpus", help="show this machine's NVIDIA GPUs (and the cluster's, with --cluster)",
        description="This machine's GPUs through NVML: model, memory, driver, utilisation now. "
                    "With --cluster, allocatable and requested nvidia.com/gpu per node of the current "
                    "kubeconfig context.",
    )
    gpus.add_argument("--cluster", action="store_true", help="also show the cluster's GPUs per node")
    add_json_flag(gpus)
    gpus.set_defaults(handler=cmd_gpus)

    cluster = subparsers.add_parser(
        "cluster", help="check the cluster connection and what it offers",
        description="Connect to the cluster of the current kubeconfig context (or the in-cluster "
                    "service account) and list its capabilities from API discovery: OpenShift routes, "
                    "KServe, Kubeflow training, monitoring, the GPU operator, and GPUs per node.",
    )
    add_json_flag(cluster)
    cluster.set_defaults(handler=cmd_cluster)


def cmd_gpus(args: argparse.Namespace) -> int:
    from workbench.host.gpus import local_gpus  # no project needed: not ws.executors.gpus()

    data: dict[str, Any] = {"local": local_gpus()}
    if args.cluster:
        from workbench.executors.cluster import discover

        info = discover()
        data["cluster"] = {"context": info.context, "server": info.server,
                           "visible": info.gpu_nodes_visible,
                           "nodes": [n.to_dict() for n in info.gpu_nodes]}
    if args.json:
        print_json(data)
        return 0
    out = console()
    local = data["local"]
    if not local["gpus"]:
        out.print(f"this machine: no NVIDIA GPU ({local['reason']})")
    for gpu in local["gpus"]:
        used = f"{fmt.size(gpu.get('memory_used', 0))} / " if "memory_used" in gpu else ""
        util = f", {gpu['utilisation']:.0f}% busy" if "utilisation" in gpu else ""
        out.print(f"GPU {gpu['index']}: {gpu['model']}, {used}{fmt.size(gpu['memory_total'])}"
                  f"{util}, driver {gpu['driver']}" + (f", CUDA {gpu['cuda']}" if gpu.get("cuda") else ""))
    if "cluster" in data:
        _print_cluster_gpus(out, data["cluster"]["nodes"], data["cluster"]["visible"])
    return 0


def _print_cluster_gpus(out: Any, nodes: list[dict[str, Any]], visible: bool) -> None:
    if not visible:
        out.print("cluster GPUs: unknown (listing nodes is not allowed for this user)")
        return
    if not nodes:
        out.print("cluster: no node offers nvidia.com/gpu")
        return
    from rich.table import Table

    table = Table("node", "GPU model", "allocatable", "requested", "free", box=None)
    for node in nodes:
        table.add_row(node["node"], node["product"] or "-", str(node["allocatable"]), str(node["requested"]),
                      str(node["free"]) + ("" if node["schedulable"] else " (cordoned)"))
    out.print(table)


def cmd_cluster(args: argparse.Namespace) -> int:
    from workbench.executors.cluster import CAPABILITIES, discover

    info = discover()
    if args.json:
        print_json(info.to_dict())
        return 0
    out = console()
    out.print(f"connected to {info.server} (context {info.context or '-'}, Kubernetes {info.version or '?'}),"
              f" namespace {info.namespace}")
    for key, (group, words) in CAPABILITIES.items():
        mark = "[green]yes[/]" if info.capabilities.get(key) else "[dim]no[/]"
        out.print(f"  {mark:>16}  {words} [dim]({group})[/]")
    _print_cluster_gpus(out, [n.to_dict() for n in info.gpu_nodes], info.gpu_nodes_visible)
    return 0
