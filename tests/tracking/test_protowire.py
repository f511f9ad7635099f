"""The protobuf wire-format reader shared by the TensorBoard reader and the W&B importer, checked
against messages serialized by the protobuf library itself (tensorboardX's generated classes)."""

from __future__ import annotations

import pytest

from workbench.tracking import protowire as pw

pytest.importorskip("tensorboardX")

from tensorboardX.proto.event_pb2 import Event


def _event() -> bytes:
    return bytes(Event(wall_time=12.5, step=-3, file_version="brain.Event:2").SerializeToString())


def test_fields_of_a_real_message_keep_the_type_they_were_given() -> None:
    data = _event()
    for given in (data, memoryview(data)):
        found = {number: (wire, value) for number, wire, value in pw.fields(given)}
        assert found[1][0] == pw.FIXED64 and pw.as_double(found[1][1]) == 12.5
        assert found[2][0] == pw.VARINT and pw.as_int64(found[2][1]) == -3  # a 10-byte varint
        assert found[3][0] == pw.LENGTH and pw.as_text(found[3][1]) == "brain.Event:2"
        assert type(found[3][1]) is type(given)  # bytes in, bytes out; a view in, views out


def test_malformed_messages_raise() -> None:
    data = _event()
    with pytest.raises(pw.WireError):
        list(pw.fields(data[:5]))  # the fixed64 wall time cut short
    with pytest.raises(pw.WireError):
        list(pw.fields(b"\x1a\x10abc"))  # a length past the message's end
    with pytest.raises(pw.WireError):
        list(pw.fields(b"\x0b"))  # wire type 3 (groups): not read
    with pytest.raises(IndexError):
        list(pw.fields(b"\x10\x80"))  # a varint cut off at the end
    assert pw.packed_varints(b"\x01\x96\x01") == [1, 150]
