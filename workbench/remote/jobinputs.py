"""The host's half of a container job that reads its inputs from the remote (see jobfetch).

Before the job starts, :func:`push_snapshot` sends the input snapshot's objects (files, chunks, trees)
that the remote is not known to hold, in the order a push uses, and returns the snapshot's root tree:
the job then fetches everything itself (:mod:`workbench.remote.jobfetch`). No bundle is written: the
snapshot's record travels with the next ``workbench push`` like any other, and costs no object then.

After the job, :func:`fetch_outputs` reads the list the job left at ``jobs/<run>/outputs.json``,
brings those objects into the blob cache (each verified on arrival, like a pull) and writes the files
into a local folder from which the run is recorded.
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.remote import records as rec
from workbench.remote.jobfetch import OUTPUTS_FORMAT, outputs_key
from workbench.remote.sync import _OBJECT_THERE, _SNAPSHOT_THERE, Pusher, PushReport, fetch_one
from workbench.remote.transport import RemoteError, RemoteSpec, open_transport

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

LINK_STAND_IN = "(a link the job made)"
"""Target of the dangling link that stands for one the job made (its own target is not sent)."""


def push_snapshot(ws: VersionedProject, spec: RemoteSpec, snapshot: str) -> tuple[str, PushReport]:
    """Make sure the remote holds every object of ``snapshot``; returns its root tree and what was sent."""
    transport = open_transport(spec)
    transport.check()
    record = rec.build(ws.db, "snapshot", snapshot)
    if record is None:
        raise RemoteError(f"snapshot {snapshot[:12]} is not in this project", "take a snapshot first")
    pusher = Pusher(ws, spec, transport)
    report = PushReport(spec.url)
    pusher.send_objects(*pusher._objects([record]), report=report)
    with ws.atomic() as tx:
        tx.execute(_SNAPSHOT_THERE, (spec.key, snapshot))
    return str(record["row"]["root_tree"]), report


def _safe_rel(rel: object) -> str:
    text = str(rel)
    norm = posixpath.normpath(text)
    if (not text or text.startswith("/") or norm != text or norm == ".." or norm.startswith("../")
            or "\0" in text):
        raise RemoteError(f"the job listed an unsafe output path {text!r}; its outputs were refused",
                          "the job's output list on the remote was tampered with")
    return text


def fetch_outputs(ws: VersionedProject, spec: RemoteSpec, run_id: str, dest: Path) -> list[str] | None:
    """Write the files the job pushed into ``dest`` (created); their relative paths, or None when the
    job listed none (it failed before, or was cancelled)."""
    transport = open_transport(spec)
    key = outputs_key(run_id)
    if not transport.exists(key):
        return None
    try:
        body = json.loads(transport.get(key))
        if body.get("format") != OUTPUTS_FORMAT or body.get("run_id") != run_id:
            raise ValueError("format")
        files = [(_safe_rel(p), str(h), int(m)) for p, h, _size, m in body["files"]]
        links = [_safe_rel(p) for p in body.get("links", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise RemoteError(f"the output list of run {run_id} on {spec.url} is not readable",
                          "check both sides run the same Workbench version") from None
    store = ws.versions.store
    store.ensure_dirs()
    for _, digest, _ in files:
        if not store.has(digest) and not fetch_one(store, transport, digest):
            raise RemoteError(f"output object {digest[:12]} of run {run_id} is missing from {spec.url}",
                              "the job's push did not complete; run it again")
    dest.mkdir(parents=True, exist_ok=True)
    for rel, digest, mode in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        store.export(digest, target, mode & 0o777)
    for rel in links:  # stand-ins, never followed: the run records them as links not brought back
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(LINK_STAND_IN, dest / rel)
    with ws.atomic() as tx:
        tx.executemany(_OBJECT_THERE, [(spec.key, h) for _, h, _ in files])
    return sorted([rel for rel, _, _ in files] + links)
