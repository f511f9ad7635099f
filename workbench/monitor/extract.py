"""Read a range of predictions for folding, fast: one JSON parse per row inside SQLite.

``json_extract(features, '$."a"', '$."b"', ...)`` returns each row's feature values as one JSON array
text, parsed once by SQLite; when every feature is a number the arrays of a whole range are then read
in one call: flattened into one JSON array of numbers decoded by orjson (the extra ``fast``; about
half of the time of the alternative, docs/performance.md) into one float matrix, else by NumPy's C
parser (:data:`numpy.fromstring` with a separator); anything else by one ``json.loads`` over the
joined arrays. Both number paths give the same floats (correctly rounded; a test compares the
buckets). A row whose ``features`` is not valid JSON fails SQLite's query, so that range falls back
to parsing row by row, counting the bad row's features as missing.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_orjson_loads: Callable[[str], Any] | None = None
try:  # the extra "fast"
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - the plain install
    pass

_NOT_A_NUMBER = ('"', "t", "f", "n", "N", "I", "{")
"""Characters no JSON number holds (strings, true, false, null, NaN, Infinity, objects)."""


@dataclass
class Extracted:
    """The rows of one range, in id order; ``columns`` hold only the answered (ok) rows."""

    ids: np.ndarray
    ts: np.ndarray
    ok: np.ndarray
    errors: list[str]  # the error reason of each row ('' when ok)
    outputs: list[Any]  # the answered rows' outputs as json_extract gives them
    columns: list[Any]  # per key: a float array (all numbers) or a list of values


def _path(key: str) -> str:
    text = '$."' + key.replace('"', '\\"') + '"'
    return "'" + text.replace("'", "''") + "'"


def read_rows(db: sqlite3.Connection, where: str, args: tuple[Any, ...], keys: list[str],
              numeric: bool) -> Extracted | None:
    """The predictions matching ``where``; None when there are none."""
    paths = ", ".join(_path(k) for k in keys)
    extract = f"json_extract(features, {paths})"
    if len(keys) == 1:  # one path gives the value itself, not an array of one
        extract = f"json_array({extract})"
    tail = f" FROM predictions WHERE {where} ORDER BY id"
    try:
        rows = db.execute(f"SELECT id, ts, status, error, json_extract(output, '$'), {extract}{tail}",
                          args).fetchall()
        texts: list[str | None] | None = None
    except sqlite3.OperationalError:  # malformed JSON somewhere in the range: parse row by row
        rows = db.execute(f"SELECT id, ts, status, error, output, features{tail}", args).fetchall()
        texts = None
        rows = [(*r[:4], _loads(r[4]), _row_values(r[5], keys)) for r in rows]
    if not rows:
        return None
    n = len(rows)
    ok = np.fromiter((r[2] == "ok" for r in rows), dtype=bool, count=n)
    answered = [r for r, good in zip(rows, ok, strict=True) if good]
    texts = [r[5] for r in answered]
    return Extracted(
        ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
        ts=np.fromiter((r[1] for r in rows), dtype=np.float64, count=n),
        ok=ok, errors=["" if good else str(r[3] or "error") for r, good in zip(rows, ok, strict=True)],
        outputs=[r[4] for r in answered], columns=_columns(texts, len(keys), numeric),
    )


def _loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _row_values(text: Any, keys: list[str]) -> str:
    found = _loads(text)
    found = found if isinstance(found, dict) else {}
    return json.dumps([found.get(k) for k in keys])


def numbers_of(joined: str, fast: bool = True) -> np.ndarray:
    """The floats of comma-separated JSON numbers; fewer (or none) when the text holds anything else."""
    if fast and _orjson_loads is not None and not any(c in joined for c in _NOT_A_NUMBER):
        try:
            return np.array(_orjson_loads("[" + joined + "]"), dtype=np.float64)
        except (ValueError, TypeError, OverflowError):  # a number orjson refuses: NumPy's parser decides
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return np.fromstring(joined, sep=",")
        except ValueError:
            return np.empty(0)


def _columns(texts: list[Any], width: int, numeric: bool) -> list[Any]:
    if not texts:
        return [[] for _ in range(width)]
    if numeric and all(isinstance(t, str) for t in texts):
        joined = ",".join(texts).replace("[", "").replace("]", "")
        flat = numbers_of(joined)
        if flat.size == len(texts) * width:
            matrix = flat.reshape(len(texts), width)
            return [matrix[:, i] for i in range(width)]
    parsed = json.loads("[" + ",".join(t if isinstance(t, str) else "null" for t in texts) + "]")
    empty = [None] * width
    rows = [r if isinstance(r, list) and len(r) == width else empty for r in parsed]
    return [list(column) for column in zip(*rows, strict=True)]
