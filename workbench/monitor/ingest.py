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
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError

BATCH_LINES = 20_000
Atomic = Callable[[], AbstractContextManager[sqlite3.Connection]]

INSERT_SQL = (
    "INSERT OR IGNORE INTO predictions (deployment, revision, model, version, request_id, row_index, ts, "
    "latency_ms, status, error, features, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FEATURES = b',"features":'
_OUTPUT = b',"output":'
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
    cut = line.find(_FEATURES)
    if cut > 0:
        try:
            head = json.loads(line[:cut] + b"}")
        except ValueError:
            head = None
        row = _sliced(line, cut, head, deployment, now)
        if row is not None:
            return row
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    features = json.dumps(record.get("features") or {}, separators=(",", ":"))
    return _row(record, deployment, now, features, json.dumps(record.get("output")))


def parse_lines(lines: list[bytes], deployment: str, now: float) -> tuple[list[Row], int]:
    """:func:`parse_line` for a batch, with every head decoded by one ``json.loads`` (the per-call
    cost dominates for small heads); returns the rows and how many lines were not JSON objects."""
    cuts = [line.find(_FEATURES) for line in lines]
    parts = [ln[:c] + b"}" if c > 0 else b"null" for ln, c in zip(lines, cuts, strict=True)]
    try:
        heads = json.loads(b"[" + b",".join(parts) + b"]")
    except ValueError:
        heads = None
    if not isinstance(heads, list) or len(heads) != len(lines):
        heads = [None] * len(lines)
    rows: list[Row] = []
    for line, cut, head in zip(lines, cuts, heads, strict=True):
        row = _sliced(line, cut, head, deployment, now) or parse_line(line, deployment, now)
        if row is not None:
            rows.append(row)
    return rows, len(lines) - len(rows)


def _sliced(line: bytes, cut: int, head: Any, deployment: str, now: float) -> Row | None:
    """The row of a line in the runtime's layout whose head is ``head``, or None if it is not one."""
    size = head.get("fl") if isinstance(head, dict) else None
    if not isinstance(size, int) or cut <= 0:
        return None
    start = cut + len(_FEATURES)
    end = start + size
    if line[end : end + len(_OUTPUT)] != _OUTPUT or not line.endswith(b"}"):
        return None
    features = line[start:end].decode("utf-8", "replace")
    output = line[end + len(_OUTPUT) : -1].decode("utf-8", "replace")
    return _row(head, deployment, now, features, output)


def _row(head: dict[str, Any], deployment: str, now: float, features: str, output: str) -> Row:
    request_id = head.get("request_id")
    return (
        deployment, head.get("revision") or 0, head.get("model") or "", head.get("version"),
        None if request_id is None else str(request_id), head.get("row_index") or 0, head.get("ts") or now,
        head.get("latency_ms"), head.get("status") or "ok", head.get("error") or "", features, output,
    )


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
    report: IngestReport, *, now: float, batch_lines: int = BATCH_LINES,
) -> None:
    """Ingest the complete lines of one spool file past its offset, a batch per transaction."""
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
            block = handle.read(8 << 20)
            if not block:
                return
            end = block.rfind(b"\n")
            if end < 0:
                if len(block) < 8 << 20:
                    return  # a line still being written
                raise ConfigError(f"{path}: a line longer than 8 MiB", "the spool file is damaged")
            complete = block[: end + 1]
            handle.seek(offset + end + 1)
            lines = complete.splitlines()
            position = offset
            for start in range(0, len(lines), batch_lines):
                batch = lines[start : start + batch_lines]
                position += sum(len(line) + 1 for line in batch)
                with atomic() as conn:
                    store_lines(conn, deployment, [ln for ln in batch if ln.strip()], now, report)
                    set_offset(conn, source, deployment, position, now)
            offset = position


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
    with atomic() as conn:
        for name in deployments:
            before = conn.total_changes
            if rule.max_age is not None:
                conn.execute("DELETE FROM predictions WHERE deployment = ? AND ts < ?",
                             (name, now - rule.max_age))
            if rule.max_rows is not None:
                cut = conn.execute(
                    "SELECT id FROM predictions WHERE deployment = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                    (name, rule.max_rows),
                ).fetchone()
                if cut is not None:
                    conn.execute("DELETE FROM predictions WHERE deployment = ? AND id <= ?", (name, cut[0]))
            deleted += conn.total_changes - before
    return deleted
