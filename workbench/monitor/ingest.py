"""Move spooled predictions into the store, from remembered offsets, exactly once.

Each source (a replica's spool file, or a pod's log) has a row in ``prediction_sources`` with how far
it was consumed (bytes of a file, lines of a pod log). One ingest step reads what follows the offset,
up to the last complete line, inserts its rows with ``INSERT OR IGNORE`` (``predictions`` is unique on
``(deployment, request_id, row_index)``) and moves the offset forward *in the same transaction*. A
process killed at any point leaves either both or neither, and re-reading a line that was stored
already adds nothing: no prediction is lost or doubled, however often ingest is interrupted.

Only each line's small head is parsed: the features and output are sliced out as the JSON text they
are stored as (see :func:`parse_line`), which is what keeps ingest fast from Python. A line that is
not a JSON object (a torn write of a killed server) is skipped and counted in
:attr:`IngestReport.skipped`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError

_loads: Callable[[bytes], Any] = json.loads
try:  # the extra "fast": decodes a batch of heads in about half of json's time (docs/performance.md)
    from orjson import loads as _orjson_loads

    _loads = _orjson_loads
except ImportError:  # pragma: no cover - the plain install
    pass

BLOCK_BYTES = 8 << 20
"""Spool bytes read (and committed) per transaction, some 17,000 lines of 20 features: measured,
bigger transactions gained nothing once the page cache holds the index (:func:`bulk_cache`)."""
BULK_CACHE_KIB = 64 << 10
Atomic = Callable[[], AbstractContextManager[sqlite3.Connection]]

INSERT_SQL = (
    "INSERT OR IGNORE INTO predictions (deployment, revision, model, version, request_id, row_index, ts, "
    "latency_ms, status, error, features, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FEATURES = b',"features":'
_OUTPUT = b',"output":'
_FEATURES_LEN = len(_FEATURES)
_OUTPUT_LEN = len(_OUTPUT)
_CLOSE = ord("}")
_HEAD = itemgetter("revision", "model", "version", "request_id", "row_index", "ts", "latency_ms", "status",
                   "error", "fl")
"""The head fields of a line in the runtime's layout, in the order :func:`parse_lines` unpacks them."""
Row = tuple[Any, ...]


@dataclass
class IngestReport:
    """What one ingest pass did."""

    added: int = 0
    """New prediction rows stored."""
    lines: int = 0
    """Lines read (rows already stored count here but not in ``added``)."""
    skipped: int = 0
    """Lines that were not valid JSON."""
    deleted: int = 0
    """Rows removed by retention."""
    errors: list[str] = field(default_factory=list)
    """Sources that could not be read (a cluster that did not answer), one line each."""


@dataclass(frozen=True)
class Retention:
    """``[monitor] retention``: keep rows newer than ``max_age`` seconds and at most ``max_rows``."""

    max_age: float | None = None
    max_rows: int | None = None

    @property
    def active(self) -> bool:
        return self.max_age is not None or self.max_rows is not None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_retention(text: str) -> Retention:
    """``30d``, ``12h``, ``1000000`` (rows per deployment), ``30d,1000000`` or "" (keep all)."""
    age: float | None = None
    rows: int | None = None
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", part)
        if match:
            age = float(match.group(1)) * _UNITS[match.group(2)]
        elif part.isdigit():
            rows = int(part)
        else:
            raise ConfigError(
                f"config 'monitor.retention' cannot read '{part}'",
                "give an age such as 30d or 12h, a row count such as 1000000, or both: '30d,1000000'",
            )
    return Retention(age, rows)


def source_offset(db: sqlite3.Connection, source: str) -> int:
    row = db.execute("SELECT consumed FROM prediction_sources WHERE source = ?", (source,)).fetchone()
    return int(row[0]) if row else 0


def parse_line(line: bytes, deployment: str, now: float) -> Row | None:
    """One spool line as a ``predictions`` row, or None when it is not a JSON object.

    The capturing runtime writes the small fields first, then ``"fl"`` (the byte length of the
    features' JSON), ``"features"`` and ``"output"`` last, so the features and output are sliced out
    as the JSON text they are stored as, never decoded and encoded again; only the small head is
    parsed. Any other JSON object line (written by hand, by another tool) is parsed whole."""
    rows, _ = parse_lines([line], deployment, now)
    return rows[0] if rows else None


def _parse_whole(line: bytes, deployment: str, now: float) -> Row | None:
    """A line not in the runtime's layout, decoded whole; None when it is not a JSON object."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    request_id = record.get("request_id")
    return (
        deployment, record.get("revision") or 0, record.get("model") or "", record.get("version"),
        None if request_id is None else str(request_id), record.get("row_index") or 0,
        record.get("ts") or now, record.get("latency_ms"), record.get("status") or "ok",
        record.get("error") or "", json.dumps(record.get("features") or {}, separators=(",", ":")),
        json.dumps(record.get("output")),
    )


def parse_lines(lines: list[bytes], deployment: str, now: float) -> tuple[list[Row], int]:
    """:func:`parse_line` for a batch; returns the rows and how many lines were not JSON objects.

    Every head is decoded by one ``loads`` (orjson's when installed, else json's; the per-call cost
    dominates for small heads) and a line in the runtime's layout becomes its row in one tight loop
    (:data:`_HEAD` picks the fields in C); any other line (torn, foreign, a head without ``fl``, a
    batch orjson refuses, such as one with NaN) is decoded whole by :func:`_parse_whole`."""
    cuts = [line.find(_FEATURES) for line in lines]
    try:
        heads = _loads(b"[" + b",".join([ln[:c] + b"}" if c > 0 else b"null"
                                             for ln, c in zip(lines, cuts, strict=True)]) + b"]")
    except ValueError:
        heads = None
    if not isinstance(heads, list) or len(heads) != len(lines):
        heads = [None] * len(lines)
    rows: list[Row] = []
    add = rows.append
    for line, cut, head in zip(lines, cuts, heads, strict=True):
        try:
            revision, model, version, request_id, row_index, ts, latency, status, error, size = _HEAD(head)
            start = cut + _FEATURES_LEN
            end = start + size
            if size < 0 or line[end : end + _OUTPUT_LEN] != _OUTPUT or line[-1] != _CLOSE:
                raise TypeError
            add((
                deployment, revision or 0, model or "", version,
                None if request_id is None else str(request_id), row_index or 0, ts or now, latency,
                status or "ok", error or "", line[start:end].decode("utf-8", "replace"),
                line[end + _OUTPUT_LEN : -1].decode("utf-8", "replace"),
            ))
        except (TypeError, KeyError, IndexError):  # not the runtime's layout: parse the whole line
            row = _parse_whole(line, deployment, now)
            if row is not None:
                add(row)
    return rows, len(lines) - len(rows)


def store_lines(
    conn: sqlite3.Connection, deployment: str, lines: list[bytes], now: float, report: IngestReport
) -> None:
    """Insert one batch of JSON lines (inside the caller's transaction)."""
    if not lines:
        return
    report.lines += len(lines)
    rows, bad = parse_lines(lines, deployment, now)
    report.skipped += bad
    before = conn.total_changes
    conn.executemany(INSERT_SQL, rows)
    report.added += conn.total_changes - before


def set_offset(conn: sqlite3.Connection, source: str, deployment: str, consumed: int, now: float) -> None:
    conn.execute(
        "INSERT INTO prediction_sources (source, deployment, consumed, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(source) DO UPDATE SET consumed = max(consumed, excluded.consumed), "
        "updated_at = excluded.updated_at",
        (source, deployment, consumed, now),
    )


def ingest_file(
    db: sqlite3.Connection, atomic: Atomic, path: Path, source: str, deployment: str,
    report: IngestReport, *, now: float, block_bytes: int = BLOCK_BYTES,
) -> None:
    """Ingest the complete lines of one spool file past its offset: one transaction per block of up
    to ``block_bytes`` (its rows and the offset just past its last newline, together)."""
    offset = source_offset(db, source)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size <= offset:
        return
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            block = handle.read(block_bytes)
            end = block.rfind(b"\n")
            if end < 0:
                if len(block) < block_bytes:
                    return  # nothing left, or a line still being written
                raise ConfigError(f"{path}: a line longer than {block_bytes >> 20} MiB",
                                  "the spool file is damaged")
            handle.seek(offset + end + 1)
            lines = [line for line in block[:end].split(b"\n") if line.strip()]
            offset += end + 1
            with atomic() as conn:
                store_lines(conn, deployment, lines, now, report)
                set_offset(conn, source, deployment, offset, now)


@contextmanager
def bulk_cache(db: sqlite3.Connection, kib: int = BULK_CACHE_KIB) -> Iterator[None]:
    """A bigger page cache for this connection while a bulk ingest runs, the old size after.

    The unique index on ``(deployment, request_id, row_index)`` takes random request ids (the
    runtime's uuids) all over the tree; with SQLite's default 2 MiB cache each of those inserts
    reads its page again."""
    before = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {int(before)}")


_SPOOL_NAME = re.compile(r"(r\d+-\d+)(?:\.(\d+))?\.jsonl")


def spool_key(path: Path) -> tuple[str, int]:
    """``(stem, sequence)`` of a spool file: ``r1-0.jsonl`` -> ``("r1-0", 0)``, ``r1-0.2.jsonl`` -> 2."""
    match = _SPOOL_NAME.fullmatch(path.name)
    if match is None:
        return path.name, 0
    return match.group(1), int(match.group(2) or 0)


def spool_files(spool_root: Path, deployment: str | None) -> Iterable[tuple[str, Path]]:
    """``(deployment, file)`` for every spool file (of one deployment), each replica's in order."""
    if not spool_root.is_dir():
        return []
    folders = [spool_root / deployment] if deployment else sorted(spool_root.iterdir())
    found: list[tuple[str, Path]] = []
    for folder in folders:
        if folder.is_dir():
            found.extend((folder.name, f) for f in sorted(folder.glob("*.jsonl"), key=spool_key))
    return found


def retire_consumed(db: sqlite3.Connection, atomic: Atomic, files: list[tuple[Path, str]]) -> int:
    """Delete spool files read whole that the server has moved on from (a newer file of the same
    replica exists: it never writes to an older one again), with their offsets; returns how many."""
    newest: dict[tuple[Path, str], int] = {}
    for path, _ in files:
        stem, seq = spool_key(path)
        newest[(path.parent, stem)] = max(seq, newest.get((path.parent, stem), 0))
    retired = 0
    for path, source in files:
        stem, seq = spool_key(path)
        if seq >= newest[(path.parent, stem)]:
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if source_offset(db, source) < size:
            continue
        with atomic() as conn:
            conn.execute("DELETE FROM prediction_sources WHERE source = ?", (source,))
            path.unlink(missing_ok=True)
        retired += 1
    return retired


def apply_retention(
    atomic: Atomic, deployments: Iterable[str], rule: Retention, now: float | None = None
) -> int:
    """Delete what ``rule`` does not keep, for these deployments; returns the rows deleted."""
    if not rule.active:
        return 0
    now = time.time() if now is None else now
    deleted = 0
    # The table's newest row is always kept: ids are never reused (no AUTOINCREMENT), and a fold
    # cursor past a reused id would skip every row stored after a retention that emptied the table.
    newest = "id < (SELECT MAX(id) FROM predictions)"
    with atomic() as conn:
        for name in deployments:
            before = conn.total_changes
            if rule.max_age is not None:
                conn.execute(f"DELETE FROM predictions WHERE deployment = ? AND ts < ? AND {newest}",
                             (name, now - rule.max_age))
            if rule.max_rows is not None:
                cut = conn.execute(
                    "SELECT id FROM predictions WHERE deployment = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                    (name, rule.max_rows),
                ).fetchone()
                if cut is not None:
                    conn.execute(f"DELETE FROM predictions WHERE deployment = ? AND id <= ? AND {newest}",
                                 (name, cut[0]))
            deleted += conn.total_changes - before
    return deleted
