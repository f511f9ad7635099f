"""Just enough of the protobuf wire format to read TensorBoard events and W&B records without the
generated classes: a message is walked as (field number, wire type, value) triples. Varints come
back as ints, fixed 64/32-bit fields as raw 8/4 bytes, length-delimited fields as bytes (a nested
message, a string or a packed array: the caller knows which). Malformed input raises ValueError."""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos``: (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of one message, in order."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = varint(data, pos)
        number, kind = key >> 3, key & 7
        if kind == VARINT:
            value, pos = varint(data, pos)
            yield number, kind, value
        elif kind == FIXED64:
            if pos + 8 > end:
                raise ValueError("truncated fixed64")
            yield number, kind, data[pos:pos + 8]
            pos += 8
        elif kind == LENGTH:
            size, pos = varint(data, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            yield number, kind, data[pos:pos + size]
            pos += size
        elif kind == FIXED32:
            if pos + 4 > end:
                raise ValueError("truncated fixed32")
            yield number, kind, data[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {kind}")


def as_double(raw: int | bytes) -> float:
    return float(struct.unpack("<d", raw)[0]) if isinstance(raw, bytes) and len(raw) == 8 else 0.0


def as_float(raw: int | bytes) -> float:
    return float(struct.unpack("<f", raw)[0]) if isinstance(raw, bytes) and len(raw) == 4 else 0.0


def as_int64(raw: int | bytes) -> int:
    """A varint read as a signed 64-bit int (protobuf's int64)."""
    value = raw if isinstance(raw, int) else 0
    return value - (1 << 64) if value >= 1 << 63 else value


def as_text(raw: int | bytes) -> str:
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)


def packed_varints(raw: int | bytes) -> list[int]:
    if isinstance(raw, int):
        return [raw]
    out, pos = [], 0
    while pos < len(raw):
        value, pos = varint(raw, pos)
        out.append(value)
    return out
