"""How the runs commands draw what is not a plain table: the input and code differences of
``compare`` and the tree of ``lineage`` (Rich renderables; imported only by those commands)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from rich.markup import escape

if TYPE_CHECKING:
    from workbench.tracking.lineage import LineageNode


def print_differences(out: Any, data: dict[str, Any], ws: Any) -> None:
    """The input files whose hashes differ, and the code/data changes between the runs' input
    snapshots (``ws`` given: a unified diff of each changed text file against the first run)."""
    first = data["runs"][0]["id"]
    if data["inputs"]:
        out.print("[bold]inputs that differ[/] (hash per run)")
        for path, hashes in data["inputs"].items():
            cells = "  ".join((h or "-")[:10] for h in hashes)
            out.print(f"  {escape(path)}  {cells}")
    for entry in data["code"]:
        if not entry["changes"]:
            out.print(f"code and data of {entry['run']}: identical to {first}'s")
            continue
        out.print(f"[bold]code and data of {entry['run']} against {first}[/] ({len(entry['changes'])} files)")
        for change in entry["changes"][:50]:
            out.print(f"  {CHANGE_MARK.get(change['change'], '?')} {escape(change['path'])}")
        if len(entry["changes"]) > 50:
            out.print(f"  ... and {len(entry['changes']) - 50} more (--json lists all)")
        if ws is not None:
            for change in entry["changes"]:
                if change["change"] == "modified":
                    text = ws.versions.unified_diff(entry["from"], entry["to"], change["path"])
                    if text:
                        sys.stdout.write(text if text.endswith("\n") else text + "\n")


CHANGE_MARK = {"added": "+", "modified": "~", "deleted": "-"}


def lineage_tree(node: LineageNode, parent: Any) -> None:
    d = node.details
    if node.kind == "run":
        command = " ".join(d.get("command") or [])
        label = f"run {node.label} {d.get('name') or ''} [{d.get('status')}] {command}"
        if d.get("code_snapshot"):
            label += f"  code@{str(d['code_snapshot'])[:12]}"
    elif node.kind == "model":
        label = f"model {node.label} ({d.get('framework')} {d.get('framework_version')}) {d.get('path')}"
    else:
        label = f"file {node.label} {(d.get('hash') or '')[:12]}"
    branch = parent.add(escape(label))
    for child in node.children:
        lineage_tree(child, branch)
