"""W&B offline runs (``wandb/offline-run-*/run-*.wandb``), read without W&B or a server.

The ``.wandb`` file is a 7-byte header (``:W&B``, magic 0xBEE1, version 0) then a LevelDB-style log:
32 KiB blocks of chunks, each ``crc32c:u32 length:u16 type:u8`` (FULL 1, FIRST 2, MIDDLE 3, LAST 4)
and its bytes, a block's tail shorter than a chunk header being padding. Each whole record is a
``wandb_internal.Record`` protobuf, read here with :mod:`workbench.tracking.protowire` (field
numbers from wandb 0.31's descriptors): ``run`` (17: id, project, name, tags, config, start time),
``config`` (5), ``history`` (2: one row of ``wandb.log``), ``summary`` (3) and ``exit`` (18). The
wandb package (over 60 MB with its Go core) ships no Python reader of the format since its core
moved to Go, so this reader is the only option that needs no server and no wandb install.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from workbench.importers.model import ImportSourceError, Series, Source, SourceRun
from workbench.tracking import protowire as pw

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[bytes]:
    """The whole records of one ``.wandb`` file; a torn tail (a run still writing) ends it."""
    data = path.read_bytes()
    if not data.startswith(HEADER[:4]):
        raise ImportSourceError(f"{path} is not a W&B run file (no :W&B header)",
                                "give a wandb folder or an offline-run-* folder")
    pos, pending = len(HEADER), bytearray()
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:
            pos += room  # padding at a block's end
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        start, pos = pos + 7, pos + 7 + length
        if pos > len(data) or kind == 0:
            return
        chunk = data[start:pos]
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = bytearray(chunk)
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            pending += chunk
            yield bytes(pending)
            pending = bytearray()


def _items(raw: bytes) -> Iterator[tuple[str, Any]]:
    """(key, value) of a repeated Config/Summary/History item list: nested keys joined with '/'."""
    for number, _, item in pw.fields(raw):
        if number != 1 or not isinstance(item, bytes):
            continue
        key, nested = "", []
        value: Any = None
        for part, _, data in pw.fields(item):
            if part == 1:
                key = pw.as_text(data)
            elif part == 2:
                nested.append(pw.as_text(data))
            elif part == 4:
                value = bool(data)
            elif part == 5:
                value = _zigzag(data)
            elif part == 6:
                value = pw.as_double(data)
            elif part == 7:
                value = pw.as_text(data)
            elif part in (8, 16):
                try:
                    value = json.loads(pw.as_text(data))
                except ValueError:
                    value = pw.as_text(data)
        yield ("/".join(nested) if nested else key), value


def _zigzag(raw: int | bytes) -> int:
    value = raw if isinstance(raw, int) else 0
    return (value >> 1) ^ -(value & 1)


def _flatten(prefix: str, value: Any, out: dict[str, Any], sep: str) -> None:
    if isinstance(value, dict) and "_type" not in value:
        for key, inner in value.items():
            _flatten(f"{prefix}{sep}{key}" if prefix else str(key), inner, out, sep)
    else:
        out[prefix] = value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if value in ("NaN", "nan"):
            return math.nan
        if value in ("Infinity", "-Infinity"):
            return math.inf if value == "Infinity" else -math.inf
        return None
    return float(value)


class _Run:
    """What one run file says, gathered record by record."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {"tags": []}
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.series: dict[str, Series] = {}
        self.exit_code: int | None = None
        self.last_time = 0.0
        self.last_step = -1

    def read(self, path: Path) -> None:
        for record in records(path):
            try:
                for number, _, value in pw.fields(record):
                    if isinstance(value, bytes):
                        self._record(number, value)
            except (ValueError, IndexError):  # one damaged record (IndexError: a varint cut off)
                continue

    def _record(self, number: int, value: bytes) -> None:
        if number == 17:
            self._run(value)
        elif number == 5:
            self._config(value)
        elif number == 2:
            self._history(value)
        elif number == 3:
            for key, item in _items(value):
                self.summary[key] = item
        elif number == 18:
            for part, _, data in pw.fields(value):
                if part == 1:
                    self.exit_code = pw.as_int64(data)
            self.exit_code = self.exit_code or 0

    def _run(self, raw: bytes) -> None:
        names = {1: "run_id", 3: "project", 6: "group", 7: "job_type", 8: "name", 9: "notes", 12: "sweep_id"}
        for number, _, value in pw.fields(raw):
            if number in names:
                self.meta[names[number]] = pw.as_text(value)
            elif number == 10:
                self.meta["tags"].append(pw.as_text(value))
            elif number == 4 and isinstance(value, bytes):
                self._config(value)
            elif number == 17 and isinstance(value, bytes):
                parts = dict((n, v) for n, _, v in pw.fields(value))
                self.meta["start"] = pw.as_int64(parts.get(1, 0)) + pw.as_int64(parts.get(2, 0)) / 1e9

    def _config(self, raw: bytes) -> None:
        for key, value in _items(raw):
            if key.startswith("_wandb"):
                continue
            if isinstance(value, dict) and set(value) == {"value", "desc"}:
                value = value["value"]  # older wandb wrapped each config value
            _flatten(key, value, self.config, ".")

    def _history(self, raw: bytes) -> None:
        row: dict[str, Any] = {}
        for key, item in _items(raw):  # HistoryRecord.item is field 1, as in Config/Summary
            _flatten(key, item, row, "/")
        step = None
        for number, _, value in pw.fields(raw):
            if number == 2 and isinstance(value, bytes):
                for part, _, data in pw.fields(value):
                    if part == 1:
                        step = pw.as_int64(data)
        step = row.pop("_step", step)
        when = _number(row.pop("_timestamp", None))
        row.pop("_runtime", None)
        if not isinstance(step, int):
            step = self.last_step + 1
        self.last_step = max(self.last_step, step)
        if when is not None:
            self.last_time = max(self.last_time, when)
        for key, value in row.items():
            point = _number(value)
            if point is None or not key or key.startswith("_"):
                continue
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = Series()
            series.add(step, when if when is not None else self.last_time, point)

    def finish(self) -> None:
        """Summary values with no history (``run.summary[k] = v``) become one point at the last step."""
        flat: dict[str, Any] = {}
        for key, value in self.summary.items():
            _flatten(key, value, flat, "/")
        for key, value in flat.items():
            number = _number(value)
            if number is None or key.startswith("_") or key in self.series:
                continue
            when = self.last_time or float(self.meta.get("start", 0.0))
            self.series[key] = Series([max(self.last_step, 0)], [when], [number])


def _run_files(root: Path) -> list[Path]:
    if root.is_file() and root.suffix == ".wandb":
        return [root]
    candidates = [root, root / "wandb"]
    found: list[Path] = []
    for base in candidates:
        if base.is_dir():
            found.extend(sorted(base.glob("run-*.wandb")))
            for folder in sorted(base.glob("*run-*")):
                if folder.is_dir() and not folder.is_symlink():
                    found.extend(sorted(folder.glob("run-*.wandb")))
    return sorted(set(found))


def _read(path: Path) -> _Run:
    run = _Run()
    run.read(path)
    run.finish()
    return run


def open_wandb(root: Path) -> Source:
    if not root.exists():
        raise ImportSourceError(f"no such folder: {root}", "give a wandb folder or an offline-run-* folder")
    files = _run_files(root)
    if not files:
        raise ImportSourceError(f"no W&B run files (offline-run-*/run-*.wandb) under {root}",
                                "give the wandb folder a run wrote (WANDB_MODE=offline)")

    def runs() -> Iterator[SourceRun]:
        for path in files:
            run = _read(path)
            meta = run.meta
            run_id = str(meta.get("run_id") or path.stem.removeprefix("run-"))
            tags = {"project": str(meta.get("project") or "")}
            for key in ("group", "job_type", "notes", "sweep_id"):
                if meta.get(key):
                    tags[key] = str(meta[key])
            for tag in meta["tags"]:
                tags[f"wandb.tag.{tag}"] = ""
            start = float(meta.get("start") or path.stat().st_mtime)
            # No exit record: the process died (or still runs) before wandb.finish().
            status = "succeeded" if run.exit_code == 0 else "failed"
            yield SourceRun(
                kind="wandb", source_id=f"{meta.get('project') or ''}/{run_id}",
                name=str(meta.get("name") or run_id), status=status,
                started_at=start, ended_at=run.last_time or None, params=dict(run.config), tags=tags,
                load_metrics=partial(dict, run.series),
                artifacts=path.parent / "files" if (path.parent / "files").is_dir() else None,
            )

    return Source("wandb", str(root), len(files), runs)
