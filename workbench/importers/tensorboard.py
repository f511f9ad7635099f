"""TensorBoard log folders: a minimal TFRecord reader and the few Event/Summary fields scalars use.

Each folder that directly holds ``events.out.tfevents.*`` files is a run, except that a folder inside
a run's folder (``SummaryWriter.add_scalars`` writes one per line, ``add_hparams`` one per call) is
part of that run: its series are named ``SUBFOLDER/TAG``. A scalar is a ``simple_value`` (TF1,
torch, tensorboardX) or a rank-0 float/int tensor whose metadata says scalars (TF2
``tf.summary.scalar``). Hyperparameters written by ``add_hparams`` (the hparams plugin's session
start) become params. A record cut short (a writer still running) ends that file; CRCs are not
checked. Measured against tbparse and tensorboard's own reader in docs/performance.md: this needs
neither TensorFlow, tensorboard nor pandas, and reads several times faster.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from workbench.importers import protowire as pw
from workbench.importers.model import ImportSourceError, Series, Source, SourceRun

EVENTS = "events.out.tfevents."
_FLOAT_TYPES = {1: "<f", 2: "<d", 19: "<e"}  # DT_FLOAT, DT_DOUBLE, DT_HALF
_INT_TYPES = {3, 9}  # DT_INT32, DT_INT64


def records(path: Path) -> Iterator[bytes]:
    """The records of one TFRecord file (length, masked CRC, data, masked CRC)."""
    with path.open("rb") as handle:
        while True:
            header = handle.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            if length > 1 << 30:
                return  # not a record: a damaged or foreign file
            data = handle.read(length)
            if len(data) < length or len(handle.read(4)) < 4:
                return
            yield data


def _tensor_scalar(raw: bytes) -> float | None:
    dtype, rank, content = 0, 0, b""
    values: list[float] = []
    for number, kind, value in pw.fields(raw):
        if number == 1 and kind == pw.VARINT:
            dtype = pw.as_int64(value)
        elif number == 2 and isinstance(value, bytes):
            rank = sum(1 for n, _, _ in pw.fields(value) if n == 2)
        elif number == 4 and isinstance(value, bytes):
            content = value
        elif number == 5:  # float_val
            if isinstance(value, bytes) and kind == pw.LENGTH:
                values.extend(x for (x,) in struct.iter_unpack("<f", value))
            else:
                values.append(pw.as_float(value))
        elif number == 6:  # double_val
            if isinstance(value, bytes) and kind == pw.LENGTH:
                values.extend(x for (x,) in struct.iter_unpack("<d", value))
            else:
                values.append(pw.as_double(value))
        elif number in (7, 10):  # int_val, int64_val
            values.extend(float(pw.as_int64(v)) for v in pw.packed_varints(value))
        elif number == 13:  # half_val: halves as ints
            values.extend(struct.unpack("<e", struct.pack("<H", v & 0xFFFF))[0]
                          for v in pw.packed_varints(value))
    if rank:
        return None
    if content:
        fmt = _FLOAT_TYPES.get(dtype) or ("<i" if dtype == 3 else "<q" if dtype == 9 else "")
        if fmt and len(content) == struct.calcsize(fmt):
            return float(struct.unpack(fmt, content)[0])
        return None
    return values[0] if len(values) == 1 and (dtype in _FLOAT_TYPES or dtype in _INT_TYPES) else None


def _hparams(content: bytes) -> dict[str, object]:
    """The hparams plugin's ``session_start_info.hparams`` (a map of google.protobuf.Value)."""
    found: dict[str, object] = {}
    for number, _, value in pw.fields(content):
        if number != 3 or not isinstance(value, bytes):  # HParamsPluginData.session_start_info
            continue
        for inner, _, entry in pw.fields(value):
            if inner != 1 or not isinstance(entry, bytes):  # SessionStartInfo.hparams
                continue
            key = ""
            item: object = None
            for part, _, data in pw.fields(entry):
                if part == 1:
                    key = pw.as_text(data)
                elif part == 2 and isinstance(data, bytes):
                    for kind, _, v in pw.fields(data):  # google.protobuf.Value
                        if kind == 2:
                            item = pw.as_double(v)
                        elif kind == 3:
                            item = pw.as_text(v)
                        elif kind == 4:
                            item = bool(v)
            if key:
                found[key] = item
    return found


def read_events(path: Path, prefix: str, series: dict[str, Series], params: dict[str, object]) -> None:
    """Add one event file's scalars to ``series`` (keys ``prefix + tag``) and hparams to ``params``."""
    for record in records(path):
        try:
            wall, step, summary = 0.0, 0, b""
            for number, _, value in pw.fields(record):
                if number == 1:
                    wall = pw.as_double(value)
                elif number == 2:
                    step = pw.as_int64(value)
                elif number == 5 and isinstance(value, bytes):
                    summary = value
            if not summary:
                continue
            for number, _, raw in pw.fields(summary):
                if number != 1 or not isinstance(raw, bytes):
                    continue
                _value(raw, wall, step, prefix, series, params)
        except (ValueError, struct.error):
            continue  # one damaged record: the others still count


def _value(raw: bytes, wall: float, step: int, prefix: str, series: dict[str, Series],
           params: dict[str, object]) -> None:
    tag, number_value, tensor, plugin, content = "", None, b"", "", b""
    for number, _, value in pw.fields(raw):
        if number == 1:
            tag = pw.as_text(value)
        elif number == 2:
            number_value = pw.as_float(value)
        elif number == 8 and isinstance(value, bytes):
            tensor = value
        elif number == 9 and isinstance(value, bytes):
            for part, _, data in pw.fields(value):
                if part == 1 and isinstance(data, bytes):
                    for inner, _, item in pw.fields(data):
                        if inner == 1:
                            plugin = pw.as_text(item)
                        elif inner == 2 and isinstance(item, bytes):
                            content = item
    if plugin == "hparams":
        params.update(_hparams(content))
        return
    if number_value is None and tensor and plugin in ("scalars", ""):
        number_value = _tensor_scalar(tensor)
    if number_value is None or not tag:
        return
    key = prefix + tag
    target = series.get(key)
    if target is None:
        target = series[key] = Series()
    target.add(step, wall, number_value if not math.isnan(number_value) else math.nan)


def _event_dirs(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (Path(folder) / d).is_symlink())
        if any(name.startswith(EVENTS) for name in files):
            found.append(Path(folder))
    return sorted(found)


def _is_time(name: str) -> bool:
    """A folder named by ``time.time()``: where torch's ``add_hparams`` writes (its keys stand alone)."""
    try:
        return float(name) > 1e9
    except ValueError:
        return False


def _load(run_dir: Path, members: list[Path], params: dict[str, object]) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for folder in members:
        rel = folder.relative_to(run_dir).as_posix()
        prefix = "" if rel == "." or _is_time(folder.name) else rel + "/"
        for path in sorted(folder.iterdir()):
            if path.name.startswith(EVENTS) and path.is_file() and not path.is_symlink():
                read_events(path, prefix, series, params)
    return series


def open_logdir(root: Path) -> Source:
    if not root.is_dir():
        raise ImportSourceError(f"no such folder: {root}", "give a TensorBoard log folder")
    folders = _event_dirs(root)
    if not folders:
        raise ImportSourceError(f"no TensorBoard event files (events.out.tfevents.*) under {root}",
                                "give the folder SummaryWriter wrote to (its log_dir)")
    runs: dict[Path, list[Path]] = {}
    for folder in folders:
        owner = next((r for r in runs if folder.is_relative_to(r)), folder)
        runs.setdefault(owner, []).append(folder)
    resolved = root.resolve()

    def each() -> Iterator[SourceRun]:
        for run_dir, members in runs.items():
            rel = run_dir.relative_to(root).as_posix()
            name = root.resolve().name if rel == "." else rel
            params: dict[str, object] = {}
            series = _load(run_dir, members, params)  # hparams are params: read before the run is written
            times = [t for s in series.values() for t in s.times[:1]]
            ends = [t for s in series.values() for t in s.times[-1:]]
            mtime = min((p.stat().st_mtime for m in members for p in m.glob(EVENTS + "*")), default=0.0)
            yield SourceRun(
                kind="tensorboard", source_id=f"{resolved}/{rel}", name=name, status="succeeded",
                started_at=min(times, default=mtime), ended_at=max(ends, default=None),
                params=params, tags={"logdir": str(resolved)}, load_metrics=partial(dict, series),
            )

    return Source("tensorboard", str(root), len(runs), each)
