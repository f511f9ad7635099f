"""What happens when a run ends: outputs from the snapshots, hashes for every input and output, models
into the registry; and the recovery of runs whose owner died without ending them.

Inputs carry the hash they had when the run started (from the before-snapshot); outputs the hash
they have after it (from the after-snapshot). Files a snapshot does not hold (ignored paths, runs
without versioning) are hashed directly; model files are always put into the blob cache so that
deploy can export their exact bytes. Only files that really lie inside the project (links resolved,
not in ``.workbench/`` or ``.git/``) are ever read: a path outside is an external reference, recorded
without a hash (docs/security.md).

``foreign`` names outputs whose bytes in the project are not the run's (another process overwrote
them, see :mod:`workbench.tracking.writes`): they keep no hash and are never registered as the run's
models. ``private`` maps a model path to a verified private copy of the run's bytes: the version is
registered (and its output hashed) from that copy. An isolated run passes its checkout as ``root``
and no ``after`` snapshot, so every output is hashed and every model stored from the checkout.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.host.processes import process_started
from workbench.store.db import atomic, connect
from workbench.tracking import model_formats, registry
from workbench.tracking.ingest import Ingester, ingest_events_file
from workbench.tracking.records import end_run
from workbench.tracking.run_paths import relative_path

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

_VERSIONING_MISSING = (ImportError, AttributeError, NotImplementedError)


def snapshot_or_none(ws: VersionedProject, kind: str, message: str) -> str | None:
    """Take a snapshot of the project; None where versioning is not available."""
    try:
        info = ws.versions.snapshot(message, kind)
    except _VERSIONING_MISSING:
        return None
    return str(info.id)


def snapshot_files(ws: VersionedProject, ref: str | None) -> dict[str, Any]:
    """path -> FileEntry of a snapshot; {} without one (or without versioning)."""
    if not ref:
        return {}
    try:
        return dict(ws.versions.files(ref))
    except _VERSIONING_MISSING:
        return {}


def hash_path(ws: VersionedProject, path: Path, *, store: bool = False) -> str | None:
    """The content hash snapshots use (stored in the blob cache when ``store``)."""
    if not path.is_file():
        return None
    try:
        return str(ws.versions.put_file(path) if store else ws.versions.hash_file(path))
    except _VERSIONING_MISSING:
        import blake3

        hasher = blake3.blake3()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()


def _inside(root: Path, path: str) -> Path | None:
    """The file ``path`` names when it really lies inside the project, else None (docs/security.md).

    An absolute path (outside the project: an external reference) is never read; a relative one is
    resolved with its links, and must stay inside the project and out of ``.workbench/``/``.git/``.
    Only such files are hashed or read into the blob cache."""
    if Path(path).is_absolute():
        return None
    from workbench.versioning.safe_write import protected_part

    real_root = root.resolve()
    try:
        real = (root / path).resolve()
        inner = real.relative_to(real_root)
    except (OSError, RuntimeError, ValueError):
        return None
    if not inner.parts or protected_part(inner.parts) is not None:
        return None
    return real


def finalize_files(
    ws: VersionedProject, db: sqlite3.Connection, run_id: str, *, root: Path, before: str | None,
    after: str | None,
    models: list[dict[str, Any]], note: Callable[[str], None] | None = None,
    foreign: dict[str, str] | None = None, private: dict[str, Path] | None = None, now: float | None = None,
) -> list[registry.ModelVersion]:
    """Record snapshot outputs, fill in hashes, register model versions (stamped ``now``). Returns the
    run's versions (new or reused; ``note`` is told of each reused one)."""
    foreign = foreign or {}
    private = private or {}
    before_files = snapshot_files(ws, before)
    after_files = snapshot_files(ws, after) if after != before else before_files
    changed: list[tuple[str, str, str, Any, Any]] = []
    created: set[str] = set()
    """Files the run made: absent before it, present after (read back, they are no input of it)."""
    if before and after and before != after:
        try:
            for change in ws.versions.diff(before, after):
                if change.change == "added":
                    created.add(change.path)
                if change.change in ("added", "modified"):
                    entry = None if change.path in foreign else after_files.get(change.path)
                    changed.append((run_id, "output", change.path,
                                    getattr(entry, "hash", None), getattr(entry, "size", None)))
        except _VERSIONING_MISSING:
            pass
    with atomic(db):
        db.executemany(
            "INSERT INTO run_files (run_id, direction, path, hash, size, source)"
            " VALUES (?, ?, ?, ?, ?, 'snapshot') ON CONFLICT (run_id, direction, path)"
            " DO UPDATE SET hash = excluded.hash, size = excluded.size",
            changed,
        )
    updates: list[tuple[str | None, int | None, str, str, str]] = []
    vanished: list[tuple[str, str, str]] = []
    for direction, path in db.execute(
        "SELECT direction, path FROM run_files WHERE run_id = ? AND hash IS NULL", (run_id,)
    ).fetchall():
        if direction == "output" and path in foreign:
            continue
        entry = after_files.get(path)
        if direction == "input":
            if path in created:  # written by code the audit hook does not see (torch.save), read back
                vanished.append((run_id, direction, path))
                continue
            entry = before_files.get(path) or entry
        if entry is not None:
            updates.append((entry.hash, entry.size, run_id, direction, path))
            continue
        full = _inside(root, path)
        if full is None:  # an external reference: kept if it exists, never read
            if not os.path.lexists(root / path):
                vanished.append((run_id, direction, path))
            continue
        if full.is_file():
            full = full.resolve()  # reached through a link (an ignored path linked into a checkout)
            updates.append((hash_path(ws, full), full.stat().st_size, run_id, direction, path))
        elif not full.exists():
            vanished.append((run_id, direction, path))
    with atomic(db):
        # Opened names that never were files (import machinery hooks, temp files since removed), and
        # "inputs" the run itself created.
        db.executemany("DELETE FROM run_files WHERE run_id = ? AND direction = ? AND path = ?", vanished)
        db.executemany(
            "UPDATE run_files SET hash = ?, size = ? WHERE run_id = ? AND direction = ? AND path = ?", updates
        )
    return _register_models(ws, db, run_id, root=root, after_files=after_files, models=models, note=note,
                            foreign=foreign, private=private, now=now)


def _model_candidates(
    db: sqlite3.Connection, run_id: str, root: Path, models: list[dict[str, Any]], foreign: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """The files this run makes versions of: those it declared (``log_model``), and outputs whose
    bytes are a model's (never by name alone: a pickled feature matrix is no model); never an output
    another process overwrote (``foreign``)."""
    wanted: dict[str, dict[str, Any]] = {m["path"]: dict(m, declared=True) for m in models
                                         if m["path"] not in foreign}
    for (path,) in db.execute(
        "SELECT path FROM run_files WHERE run_id = ? AND direction = 'output'", (run_id,)
    ).fetchall():
        if path in wanted or path in foreign:
            continue
        full = _inside(root, path)  # never sniff a host file an event named (docs/security.md)
        found = model_formats.sniff(full) if full is not None else None
        if found is not None:
            wanted[path] = {"path": path, "name": "", "framework": found.framework,
                            "framework_version": found.version, "declared": False}
    return wanted


def _register_models(
    ws: VersionedProject, db: sqlite3.Connection, run_id: str, *, root: Path, after_files: dict[str, Any],
    models: list[dict[str, Any]], note: Callable[[str], None] | None = None,
    foreign: dict[str, str] | None = None, private: dict[str, Path] | None = None, now: float | None = None,
) -> list[registry.ModelVersion]:
    foreign, private = foreign or {}, private or {}
    wanted = _model_candidates(db, run_id, root, models, foreign)
    if not wanted:
        return []
    row = db.execute("SELECT environment FROM runs WHERE id = ?", (run_id,)).fetchone()
    packages = json.loads(row[0] or "{}").get("packages") if row else None
    created: list[registry.ModelVersion] = []
    series = registry.series_names([path for path, spec in wanted.items() if not spec.get("name")])
    for path, spec in sorted(wanted.items(), key=lambda item: registry.natural_key(item[0])):
        full = private.get(path) or _inside(root, path)
        if full is None and any(m["path"] == path for m in models):
            from workbench.tracking import refusals

            refusals.record(db, run_id, "model", path, "resolves outside the project or into .git/ "
                            "(only files inside it are registered as models)")
        if full is None or not full.is_file():
            continue
        full = full.resolve()
        entry = None if path in private else after_files.get(path)
        digest = entry.hash if entry is not None else hash_path(ws, full, store=True)
        if digest is None:
            continue
        if path in private:
            with atomic(db):
                db.execute("UPDATE run_files SET hash = ?, size = ? WHERE run_id = ? AND direction = 'output'"
                           " AND path = ?", (digest, full.stat().st_size, run_id, path))
        framework, version = spec.get("framework") or "", spec.get("framework_version") or ""
        if not framework:
            framework, detected = registry.detect_framework(full, packages)
            version = version or detected
        elif not version:
            version = registry.framework_version(framework, packages)
        found, reused = registry.register_or_reuse(
            db, name=spec.get("name") or series.get(path) or registry.model_name_for(path), run_id=run_id,
            path=path, hash=digest,
            size=full.stat().st_size, framework=framework, framework_version=version, now=now,
        )
        if reused and note is not None:
            note(f"model {found.name}: identical to version {found.version}, reused")
        elif not reused and ws.on_model_registered is not None:
            ws.on_model_registered(found, note)
        created.append(found)
    return created


def recover_stale(ws: VersionedProject) -> list[str]:
    """Mark runs whose owning process died as failed, keeping every event they had written."""
    import socket

    db = ws.db
    host = socket.gethostname()
    stale: list[tuple[str, int | None, str, str]] = []
    for run_id, pid, started, run_host, events_path, source in db.execute(
        "SELECT id, pid, pid_started, host, events_path, source FROM runs WHERE status = 'running'"
    ).fetchall():
        if run_host != host or pid is None:
            continue
        alive = process_started(int(pid))
        if alive is not None and (started is None or abs(alive - float(started)) < 1.0):
            continue
        stale.append((run_id, pid, events_path, source))
    recovered: list[str] = []
    for run_id, pid, events_path, source in stale:
        conn = connect(ws.paths.db)
        try:
            claimed = conn.execute(
                "UPDATE runs SET pid = NULL WHERE id = ? AND status = 'running' AND pid = ?", (run_id, pid)
            ).rowcount
            if not claimed:
                continue  # another process is recovering it
            if events_path:
                ingester = Ingester(conn, run_id, ws.root)
                row = conn.execute("SELECT events_offset FROM runs WHERE id = ?", (run_id,)).fetchone()
                offset = int(row[0])
                ingest_events_file(ingester, Path(events_path), offset)
                with atomic(conn):
                    conn.execute(
                        "UPDATE metric_keys SET count = (SELECT COALESCE(SUM(c.count), 0)"
                        " FROM metric_chunks c WHERE c.key_id = metric_keys.id) WHERE run_id = ?", (run_id,),
                    )
            owner = "the runner" if source == "cli" else "the process"
            end_run(conn, run_id, status="failed", exit_code=None,
                    reason=f"{owner} (pid {pid}) ended without finishing the run (killed?)")
            recovered.append(run_id)
        finally:
            conn.close()
    return recovered


__all__ = ["finalize_files", "hash_path", "recover_stale", "relative_path", "snapshot_files",
           "snapshot_or_none"]
