"""Read the tabular files a reference profile is built from: CSV/TSV, Parquet (with pyarrow), NumPy.

A table is ``{column: list of values}`` in file order; CSV cells that look like numbers become
floats, empty cells and ``NA``/``nan``/``null`` become ``None``. At most :data:`MAX_ROWS` rows are
read (the first ones: a file sorted by time or label gives a skewed reference; give a shuffled
sample to ``workbench monitor baseline`` then).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from workbench.errors import UsageError

MAX_ROWS = 200_000
"""Rows read from a file: quantiles and frequencies are steady long before this, and registering a
model must not wait on parsing a whole data set."""
MAX_TEXT_BYTES = 64 * 1024 * 1024
"""Of a CSV/TSV file, only this much (cut at a line end) is decoded."""
TABULAR_SUFFIXES = (".csv", ".tsv", ".parquet", ".npy")
_MISSING = {"", "na", "nan", "null", "none", "n/a"}

Table = dict[str, list[Any]]


def is_tabular(path: str) -> bool:
    """Whether a file's name says it is a table this module reads."""
    return path.lower().endswith(TABULAR_SUFFIXES)


def read_table(path: Path, data: bytes | None = None) -> Table:
    """The columns of a tabular file (``data``: its bytes, when they come from the blob cache)."""
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes() if data is None else data
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, raw, "\t" if suffix == ".tsv" else ",")
    if suffix == ".npy":
        return _read_npy(path, raw)
    if suffix == ".parquet":
        return _read_parquet(path, raw)
    raise UsageError(f"{path.name}: not a table Workbench reads", "give a .csv, .tsv, .parquet or .npy file")


def _cell(text: str) -> Any:
    if text.strip().lower() in _MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else None


def _read_csv(path: Path, raw: bytes, delimiter: str) -> Table:
    if len(raw) > MAX_TEXT_BYTES:
        raw = raw[: raw.rfind(b"\n", 0, MAX_TEXT_BYTES) + 1]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise UsageError(f"{path.name}: no header row", "the first line must name the columns")
    names = [h.strip() or f"f{i}" for i, h in enumerate(header)]
    if len(set(names)) != len(names):
        raise UsageError(f"{path.name}: a column name appears twice in the header")
    columns: list[list[Any]] = [[] for _ in names]
    for line_number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(names):
            raise UsageError(f"{path.name}: line {line_number} has {len(row)} fields,"
                             f" the header {len(names)}")
        for column, cell in zip(columns, row, strict=True):
            column.append(_cell(cell))
        if line_number > MAX_ROWS:  # the header is line 1
            break
    if not columns[0]:
        raise UsageError(f"{path.name}: no data rows")
    return dict(zip(names, columns, strict=True))


def _read_npy(path: Path, raw: bytes) -> Table:
    import numpy as np

    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path.name}: not a NumPy array file ({exc})") from None
    if array.dtype.names:  # a structured array: its fields are the columns
        return {name: array[name][:MAX_ROWS].tolist() for name in array.dtype.names}
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[0] == 0:
        raise UsageError(f"{path.name}: expected a 2-D array of rows, got shape {array.shape}")
    array = array[:MAX_ROWS]
    return {f"f{i}": array[:, i].tolist() for i in range(array.shape[1])}


def _read_parquet(path: Path, raw: bytes) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(f"{path.name}: reading Parquet needs pyarrow", "pip install pyarrow") from None
    try:
        table = pq.read_table(io.BytesIO(raw))
    except Exception as exc:
        raise UsageError(f"{path.name}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    return {name: table.column(name).to_pylist()[:MAX_ROWS] for name in table.column_names}
