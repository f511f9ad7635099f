"""Scalars out of TensorBoard event files, with the standard library only.

A TensorBoard event file (``events.out.tfevents.*``, written by ``torch.utils.tensorboard``,
``tensorboardX``, ``tf.summary`` and the frameworks built on them) is a TFRecord file: records of
``uint64 length, uint32 masked CRC-32C of the length, data, uint32 masked CRC-32C of the data``,
each ``data`` a serialized ``tensorflow.Event`` protobuf. This module decodes just the fields that
carry scalars, from the protobuf wire format itself (:mod:`workbench.tracking.protowire`):

* ``Event``: ``wall_time`` (1, double), ``step`` (2, int64), ``summary`` (5);
* ``Summary``: repeated ``value`` (1);
* ``Summary.Value``: ``tag`` (1), ``simple_value`` (2, float: the old style that torch's
  ``add_scalar`` and tensorboardX write), ``metadata`` (9) and ``tensor`` (8): a one-number tensor
  whose metadata names the ``scalars`` plugin (``tf.summary.scalar``, torch's ``new_style=True``)
  or no plugin at all;
* ``TensorProto``: ``dtype`` (1), ``tensor_content`` (4), ``float_val`` (5), ``double_val`` (6),
  ``int_val`` (7), ``int64_val`` (10), ``half_val`` (13);
* on request, the ``hparams`` plugin's ``session_start_info.hparams`` (what ``add_hparams`` writes:
  the TensorBoard importer makes them a run's params).

Everything else (graphs, histograms, images, text) is skipped by length without being decoded.
The length's CRC is checked (it catches a file cut or garbled in the middle: reading stops there
and says so); the data's CRC is not (CRC-32C in pure Python would cost more than the decoding).
A record cut short at the end of the file (a writer still running, or killed) ends the file
quietly. Measured against tensorboard's own ``EventFileLoader`` in ``scripts/bench_capture.py``.

API: :func:`is_event_file`, :func:`read_scalars` (one file), :func:`series_of` (a run's event
files, named as TensorBoard names its runs and tags). Both live capture (``tracking/libcapture``)
and ``workbench import tensorboard`` (``importers/tensorboard.py``) read event files here.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from workbench.tracking.protowire import (
    FIXED32,
    FIXED64,
    LENGTH,
    VARINT,
    WireError,
    as_double,
    as_text,
    fields,
    packed_varints,
    signed64,
    varint,
)

EVENT_FILE_MARK = "tfevents"
"""Every TensorBoard event file's name holds this (``events.out.tfevents.<time>.<host>...``)."""

_HEADER = struct.Struct("<QI")
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_MAX_RECORD = 1 << 30
_MAP_FROM = 16 << 20
"""Files from this size on are memory-mapped rather than read (event files with images grow large)."""
_HALF = struct.Struct("<e")
_SCALARS_PLUGIN = b"scalars"
_HPARAMS_PLUGIN = b"hparams"
# TensorFlow's DataType numbers for the dtypes a scalar can have, and their layout in tensor_content.
_CONTENT_FORMATS = {1: "<f", 2: "<d", 3: "<i", 9: "<q", 19: "<e"}  # FLOAT DOUBLE INT32 INT64 HALF


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventFileError(ValueError):
    """An event file is corrupt from some record on (what came before it was read)."""


def is_event_file(path: str) -> bool:
    """Whether ``path`` names a TensorBoard event file (by its name, as TensorBoard finds them)."""
    return EVENT_FILE_MARK in path.rpartition("/")[2]


@dataclass
class Series:
    """One scalar tag's points, in the order they were written."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


def _tensor_scalar(data: memoryview) -> float | None:
    """The one number a scalar ``TensorProto`` holds, or None when it holds something else."""
    dtype = 0
    numbers: list[float] = []
    content = b""
    for number, wire, value in fields(data):
        if number == 1 and wire == VARINT:
            dtype = int(value)
        elif number == 4 and wire == LENGTH:
            content = bytes(value)
        elif number in (5, 6) and wire == LENGTH:  # packed float / double
            width = 4 if number == 5 else 8
            numbers.extend(struct.unpack(f"<{len(value) // width}{'f' if number == 5 else 'd'}", value))
        elif number == 5 and wire == FIXED32:
            numbers.append(_FLOAT.unpack(value)[0])
        elif number == 6 and wire == FIXED64:
            numbers.append(_DOUBLE.unpack(value)[0])
        elif number in (7, 10):  # int_val, int64_val: one varint or a packed run
            numbers.extend(float(signed64(item)) for item in packed_varints(value))
        elif number == 13:  # half_val: each half's bits in an int
            halves = packed_varints(value)
            numbers.extend(_HALF.unpack(struct.pack("<H", item & 0xFFFF))[0] for item in halves)
    if content:
        fmt = _CONTENT_FORMATS.get(dtype)
        if fmt is None or len(content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, content)[0])
    return numbers[0] if len(numbers) == 1 else None


def _plugin(metadata: memoryview) -> tuple[bytes, memoryview | None]:
    """(plugin name, plugin content) of a ``SummaryMetadata``; (b"", None) when it names none."""
    for number, wire, value in fields(metadata):
        if number == 1 and wire == LENGTH:  # plugin_data
            name, content = b"", None
            for inner, inner_wire, item in fields(value):
                if inner == 1 and inner_wire == LENGTH:
                    name = bytes(item)
                elif inner == 2 and inner_wire == LENGTH:
                    content = item
            return name, content
    return b"", None


def _hparams(content: memoryview, found: dict[str, object]) -> None:
    """Add the hparams plugin's ``session_start_info.hparams`` (a map of google.protobuf.Value)
    to ``found``: what torch's and tensorboardX's ``add_hparams`` write."""
    for number, _, value in fields(content):
        if number != 3 or isinstance(value, int):  # HParamsPluginData.session_start_info
            continue
        for inner, _, entry in fields(value):
            if inner != 1 or isinstance(entry, int):  # SessionStartInfo.hparams
                continue
            key, item = "", None
            for part, _, data in fields(entry):
                if part == 1:
                    key = as_text(data)
                elif part == 2 and not isinstance(data, int):
                    item = _protobuf_value(data)
            if key:
                found[key] = item


def _protobuf_value(data: memoryview) -> object:
    """A ``google.protobuf.Value`` holding a number, a string or a bool (None for anything else)."""
    item: object = None
    for kind, _, value in fields(data):
        if kind == 2:
            item = as_double(value)
        elif kind == 3:
            item = as_text(value)
        elif kind == 4:
            item = bool(value)
    return item


def _summary_scalars(summary: memoryview, hparams: dict[str, object] | None) -> Iterator[tuple[str, float]]:
    for number, wire, value in fields(summary):
        if number != 1 or wire != LENGTH:
            continue
        tag, simple, tensor, plugin, content = "", None, None, b"", None
        for inner, inner_wire, item in fields(value):
            if inner == 1 and inner_wire == LENGTH:
                tag = bytes(item).decode("utf-8", errors="replace")
            elif inner == 2 and inner_wire == FIXED32:
                simple = _FLOAT.unpack(item)[0]
            elif inner == 8 and inner_wire == LENGTH:
                tensor = item
            elif inner == 9 and inner_wire == LENGTH:
                plugin, content = _plugin(item)
        if plugin == _HPARAMS_PLUGIN:
            if hparams is not None and content is not None:
                _hparams(content, hparams)
            continue
        if not tag:
            continue
        if simple is not None:
            yield tag, float(simple)
        elif tensor is not None and plugin in (_SCALARS_PLUGIN, b""):  # b"": the metadata a writer left out
            found = _tensor_scalar(tensor)
            if found is not None:
                yield tag, found


def _records(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each record's data in a whole event file."""
    pos, end = 0, len(data)
    checked: set[bytes] = set()  # record lengths repeat: each distinct header is checked once
    while pos + _HEADER.size <= end:
        header = data[pos:pos + _HEADER.size]
        if header not in checked:
            length, length_crc = _HEADER.unpack(header)
            if _masked_crc32c(header[:8]) != length_crc or length > _MAX_RECORD:
                raise EventFileError(f"bad record header at byte {pos}")
            checked.add(header)
        else:
            length = _HEADER.unpack(header)[0]
        start = pos + _HEADER.size
        if start + length + 4 > end:
            return  # the last record is still being written (or the writer was killed)
        yield start, start + length
        pos = start + length + 4


def _small_varint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    second = data[pos + 1]
    if second < 0x80:
        return (byte & 0x7F) | (second << 7), pos + 2
    return varint(data, pos)


def _fast_scalar(data: bytes, start: int, end: int) -> tuple[str, int, float, float] | None:
    """The usual layout of a one-scalar event (torch, tensorboardX: ``wall_time, step, summary {
    value { tag, simple_value } }``) decoded in one pass; None for any other layout."""
    if end - start < 16 or data[start] != 0x09:
        return None
    wall_time = _DOUBLE.unpack_from(data, start + 1)[0]
    pos, step = start + 9, 0
    if data[pos] == 0x10:
        step, pos = _small_varint(data, pos + 1)
        step = signed64(step)
    if pos >= end or data[pos] != 0x2A:
        return None
    size, pos = _small_varint(data, pos + 1)
    if pos + size != end or data[pos] != 0x0A:
        return None
    size, pos = _small_varint(data, pos + 1)
    if pos + size != end or data[pos] != 0x0A:
        return None
    size, pos = _small_varint(data, pos + 1)
    tag = data[pos:pos + size].decode("utf-8", errors="replace")
    pos += size
    if pos + 5 != end or data[pos] != 0x15:
        return None
    return tag, step, wall_time, _FLOAT.unpack_from(data, pos + 1)[0]


def _event_scalars(record: memoryview, hparams: dict[str, object] | None
                   ) -> Iterator[tuple[str, int, float, float]]:
    wall_time, step, summary = 0.0, 0, None
    for number, wire, value in fields(record):
        if number == 1 and wire == FIXED64:
            wall_time = _DOUBLE.unpack(value)[0]
        elif number == 2 and wire == VARINT:
            step = signed64(int(value))
        elif number == 5 and wire == LENGTH:
            summary = value
    if summary is not None:
        for tag, scalar in _summary_scalars(summary, hparams):
            yield tag, step, wall_time, scalar


def read_scalars(path: Path, hparams: dict[str, object] | None = None
                 ) -> Iterator[tuple[str, int, float, float]]:
    """(tag, step, wall time, value) of every scalar in the event file ``path``, in file order.

    A scalar is a ``simple_value`` or a one-number tensor of the ``scalars`` plugin (or of no
    plugin). Given ``hparams``, the hyperparameters ``add_hparams`` wrote are added to it.
    Raises :class:`EventFileError` at the first corrupt record (after yielding what came before)."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < _MAP_FROM:
            yield from _scalars_of(handle.read(), hparams)
            return
        import mmap

        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)  # images: no copy on the heap
        try:
            yield from _scalars_of(mapped, hparams)  # type: ignore[arg-type]
        finally:
            try:
                mapped.close()
            except BufferError:  # a view of it still alive (the reader stopped early): closed when freed
                pass


def _scalars_of(data: bytes, hparams: dict[str, object] | None) -> Iterator[tuple[str, int, float, float]]:
    view = memoryview(data)
    try:
        for start, end in _records(data):
            try:
                fast = _fast_scalar(data, start, end)
                if fast is not None:
                    yield fast
                    continue
                yield from _event_scalars(view[start:end], hparams)
            except (IndexError, struct.error, WireError) as exc:
                raise EventFileError(f"bad record: {exc}") from exc
    finally:
        try:
            view.release()
        except BufferError:
            pass


def series_of(files: Iterable[tuple[str, Path]], warn: list[str] | None = None) -> dict[str, Series]:
    """The scalar series of a run's event files, keyed as TensorBoard names them.

    ``files`` are (project-relative path, file to read). Files in the folder closest to the root
    among them (the writer's log dir) give their tags as they are; files in folders below it
    (``add_scalars`` writes one per name: ``loss_train/``) give ``<subfolder>/<tag>``. Several
    files of one folder are read in name order (their names start with the time they were
    created). A step written again keeps its last value. Problems go to ``warn``."""
    chosen = sorted(files, key=lambda item: item[0])
    folders = [rel.rpartition("/")[0] for rel, _ in chosen]
    base = os.path.commonpath(folders) if folders and all(folders) else ""
    if folders and not all(folders):
        base = ""
    found: dict[str, Series] = {}
    for (rel, full), folder in zip(chosen, folders, strict=True):
        prefix = folder[len(base):].strip("/") if folder != base else ""
        try:
            for tag, step, when, value in read_scalars(full):
                series = found.setdefault(f"{prefix}/{tag}" if prefix else tag, Series())
                series.steps.append(step)
                series.values.append(value)
                series.times.append(when)
        except (EventFileError, OSError) as exc:
            if warn is not None:
                warn.append(f"TensorBoard file {rel}: {exc} (read up to there)")
    return found


__all__ = ["EVENT_FILE_MARK", "EventFileError", "Series", "is_event_file", "read_scalars", "series_of"]
