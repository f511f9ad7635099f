"""Just enough of the protobuf wire format to read messages without their generated classes.

One reader for every format built on protobuf that Workbench decodes by hand: TensorBoard event
files (:mod:`workbench.tracking.capture_tb`, also used by the TensorBoard importer) and W&B's run
records (:mod:`workbench.importers.wandb`). A message is walked as (field number, wire type, value)
triples: varints come back as ints, fixed 64/32-bit fields as their raw 8/4 bytes, length-delimited
fields as a slice (a nested message, a string or a packed array: the caller knows which). A slice
is of the type given: ``bytes`` in, ``bytes`` out; a ``memoryview`` in, views out (no copies).

Malformed input raises :class:`WireError` (a ValueError); a varint cut off at the very end of the
data raises IndexError (checking each byte would slow the hot loop; callers catch both).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def varint(data: Any, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` of ``data`` (bytes or a memoryview): (value, position after it)."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(data: Any) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field of one message, in order."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = varint(data, pos)
            yield number, wire, value
        elif wire == FIXED64:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            yield number, wire, data[pos:pos + 8]
            pos += 8
        elif wire == LENGTH:
            size, pos = varint(data, pos)
            if pos + size > end:
                raise WireError("field runs past its message")
            yield number, wire, data[pos:pos + size]
            pos += size
        elif wire == FIXED32:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            yield number, wire, data[pos:pos + 4]
            pos += 4
        else:
            raise WireError(f"unknown wire type {wire}")


def as_double(raw: Any) -> float:
    """A fixed64 field read as a double (0.0 for a field of another wire type)."""
    return float(_DOUBLE.unpack(raw)[0]) if not isinstance(raw, int) and len(raw) == 8 else 0.0


def as_float(raw: Any) -> float:
    """A fixed32 field read as a float (0.0 for a field of another wire type)."""
    return float(_FLOAT.unpack(raw)[0]) if not isinstance(raw, int) and len(raw) == 4 else 0.0


def signed64(value: int) -> int:
    """A varint's value read as protobuf's int64 (two's complement in 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def as_int64(raw: Any) -> int:
    """A varint field read as a signed 64-bit int (0 for a field of another wire type)."""
    return signed64(raw) if isinstance(raw, int) else 0


def as_text(raw: Any) -> str:
    """A length-delimited field read as UTF-8 text (bad bytes replaced)."""
    return str(raw) if isinstance(raw, int) else bytes(raw).decode("utf-8", errors="replace")


def packed_varints(raw: Any) -> list[int]:
    """A repeated varint field's values: one varint, or a packed (length-delimited) run of them."""
    if isinstance(raw, int):
        return [raw]
    out, pos = [], 0
    while pos < len(raw):
        value, pos = varint(raw, pos)
        out.append(value)
    return out


__all__ = ["FIXED32", "FIXED64", "LENGTH", "VARINT", "WireError", "as_double", "as_float", "as_int64",
           "as_text", "fields", "packed_varints", "signed64", "varint"]
