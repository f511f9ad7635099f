"""Line splitting of job output: event lines arrive whole whatever their size (up to the readers'
bound), plain output is cut at 1 MiB, and an event line past the bound is delivered so that the
decoder rejects it as too long (counted as dropped) without the reader holding it all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from workbench.executors.base import Channel
from workbench.executors.streams import (
    MAX_LINE,
    READ_LIMIT,
    LineMerger,
    LineSplitter,
    StreamLost,
    classify,
    tail_file,
)
from workbench.tracking.events import MARKER_BYTES, MAX_LINE_BYTES, EventError, decode


def _feed(splitter: LineSplitter, data: bytes, chunk: int = 1 << 16) -> list[bytes]:
    out: list[bytes] = []
    for start in range(0, len(data), chunk):
        out += splitter.feed(data[start:start + chunk])
    return out + splitter.flush()


def _event(size: int) -> bytes:
    """A well-formed event line (no newline) of about ``size`` bytes."""
    return b'{"e":"tag","k":"big","v":"' + b"x" * size + b'"}'


def test_a_marked_event_line_of_megabytes_is_never_cut() -> None:
    big = MARKER_BYTES + _event(5 * MAX_LINE)
    data = b"hello\n" + big + b"\n" + b"y" * (3 * MAX_LINE) + b"\nbye\r\n"
    lines = _feed(LineSplitter(marker=MARKER_BYTES), data)
    assert lines[0] == b"hello" and lines[1] == big and lines[-1] == b"bye"
    assert lines[2:-1] == [b"y" * MAX_LINE] * 3  # plain output is cut
    channel, payload = classify("stdout", lines[1], MARKER_BYTES)
    assert channel == "event" and decode(payload)["v"] == "x" * (5 * MAX_LINE)


def test_the_side_channel_bound_holds_the_event_wire_formats_longest_line() -> None:
    """The executors' bound is their own number; tracking's events must fit under it, marker and a
    pod log's timestamp included."""
    assert MAX_LINE_BYTES + len(MARKER_BYTES) + len(b"2026-12-03T08:00:00.123456789Z ") <= READ_LIMIT


def test_without_a_marker_no_stdout_line_is_a_side_channel_line() -> None:
    line = MARKER_BYTES + _event(10)
    assert _feed(LineSplitter(), b"epoch 1" + line + b"\n") == [b"epoch 1" + line]
    assert classify("stdout", line) == ("stdout", line)


def test_a_plain_line_is_cut_once_and_its_rest_never_read_as_an_event() -> None:
    exact = b"z" * (2 * MAX_LINE)
    assert _feed(LineSplitter(marker=MARKER_BYTES), exact + b"\nnext\n") == [b"z" * MAX_LINE] * 2 + [b"next"]
    tricky = b"a" * MAX_LINE + MARKER_BYTES + b"b" * (2 * MAX_LINE)  # the marker where a cut falls
    lines = _feed(LineSplitter(marker=MARKER_BYTES), tricky + b"\n")
    assert max(map(len, lines)) == MAX_LINE and b"".join(lines) == tricky


def test_an_event_line_after_a_partial_line_of_output_is_split_off() -> None:
    event = MARKER_BYTES + _event(10)
    assert _feed(LineSplitter(marker=MARKER_BYTES), b"epoch 1" + event + b"\n") == [b"epoch 1", event]
    stamp = b"2026-12-03T08:00:00.123456789Z "
    assert _feed(LineSplitter(stamped=True, marker=MARKER_BYTES), stamp + b"epoch 1" + event + b"\n") == [
        stamp + b"epoch 1", stamp + event]
    assert _feed(LineSplitter(stamped=True, marker=MARKER_BYTES), stamp + event + b"\n") == [stamp + event]
    quoting = MARKER_BYTES + b'{"e":"tag","k":"note","v":"see ' + MARKER_BYTES + b'"}'
    # An event that mentions the marker:
    assert _feed(LineSplitter(marker=MARKER_BYTES), quoting + b"\n") == [quoting]
    assert _feed(LineSplitter(events=True), b"x" + event + b"\n") == [b"x" + event]


def test_every_line_of_an_events_file_is_an_event_line() -> None:
    big = _event(3 * MAX_LINE)
    assert _feed(LineSplitter(events=True), big + b"\n" + big + b"\n", chunk=12345) == [big, big]
    assert _feed(LineSplitter(marker=MARKER_BYTES), big + b"\n")[0] == big[:MAX_LINE]  # unmarked stdout: cut


def test_pod_log_lines_carry_a_timestamp_before_the_marker() -> None:
    line = b"2026-12-03T08:00:00.123456789Z " + MARKER_BYTES + _event(2 * MAX_LINE)
    assert _feed(LineSplitter(stamped=True, marker=MARKER_BYTES), line + b"\n") == [line]


def test_an_event_line_past_the_bound_is_rejected_as_too_long_and_the_next_survives() -> None:
    huge = MARKER_BYTES + _event(MAX_LINE_BYTES + 3 * MAX_LINE)
    after = MARKER_BYTES + _event(10)
    lines = _feed(LineSplitter(marker=MARKER_BYTES), huge + b"\n" + after + b"\n", chunk=1 << 20)
    assert len(lines) == 2 and lines[1] == after
    assert len(lines[0]) == READ_LIMIT + 1  # held no more than the bound
    with pytest.raises(EventError, match="too long"):
        decode(classify("stdout", lines[0], MARKER_BYTES)[1])


def test_tail_file_delivers_long_event_lines_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    big = _event(4 * MAX_LINE)
    path.write_bytes(big + b"\n" + _event(1) + b"\npartial")
    done = threading.Event()
    done.set()
    assert list(tail_file(path, done)) == [big, _event(1), b"partial"]


def test_a_producer_that_dies_is_reported_after_the_other_lines() -> None:
    """A reader thread that raises ends its stream; lines() still delivers every other line, then
    raises StreamLost naming it, instead of ending as if everything had been read."""
    merger = LineMerger()

    def dies(emit: Callable[[Channel, bytes], None]) -> None:
        emit("event", b"first")
        raise OSError(5, "Input/output error")

    def lives(emit: Callable[[Channel, bytes], None]) -> None:
        for i in range(100):
            emit("stdout", b"line %d" % i)

    merger.add("side", dies)
    merger.add("stdout", lives)
    got: list[tuple[Channel, bytes]] = []
    with pytest.raises(StreamLost, match="side: OSError") as caught:
        for item in merger.lines():
            got.append(item)
    assert ("event", b"first") in got and len(got) == 101
    assert [name for name, _ in caught.value.lost] == ["side"]
