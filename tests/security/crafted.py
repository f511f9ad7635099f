"""Build hand-crafted snapshots with the store's own tree writer, as a hostile remote could."""

from __future__ import annotations

import time
from typing import Any

from workbench.core.workspace import Workspace
from workbench.versioning.trees import DIR, FILE, LINK, Item, encode_tree, tree_hash

Spec = dict[str, Any]
"""name -> bytes (a 0o644 file) | ("f", mode, bytes) | ("l", target) | ("d", mode, Spec) | Spec."""


def put_tree(ws: Workspace, spec: Spec) -> tuple[str, int]:
    """Store the tree objects of ``spec`` (raw names, not checked); returns (hash, bytes below)."""
    store = ws.versions.store
    store.ensure_dirs()
    items: list[Item] = []
    total = 0
    for name, value in spec.items():
        if isinstance(value, bytes):
            value = ("f", 0o644, value)
        if isinstance(value, dict):
            value = ("d", 0o755, value)
        if value[0] == "f":
            digest, _ = store.put_bytes(value[2])
            items.append((name, FILE, value[1], len(value[2]), digest))
            total += len(value[2])
        elif value[0] == "l":
            items.append((name, LINK, 0o777, len(value[1]), value[1]))
        else:
            sub, size = put_tree(ws, value[2])
            items.append((name, DIR, value[1], size, sub))
            total += size
    data = encode_tree(items)
    digest, _ = store.put_bytes(data)
    assert digest == tree_hash(data)
    return digest, total


def craft_snapshot(ws: Workspace, spec: Spec) -> str:
    """A snapshot row whose root tree is ``spec``; returns its id."""
    root, _ = put_tree(ws, spec)
    snap_id = tree_hash(f"crafted {root} {time.time_ns()}".encode())
    with ws.atomic() as db:
        db.execute("INSERT INTO snapshots (id, root_tree, created_at, kind, message)"
                   " VALUES (?, ?, ?, 'manual', 'crafted')", (snap_id, root, time.time()))
    return snap_id
