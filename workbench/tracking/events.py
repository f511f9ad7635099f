"""The event wire format between a running job and the store.

One event per line, each a JSON object whose ``"e"`` field names its kind. Locally (and in Docker,
where the run folder is mounted) a job appends lines to the file named by ``WORKBENCH_EVENTS``; a
job whose only channel back is its log (a cluster pod, ``WORKBENCH_EVENTS=@stdout``) prints them on
stdout prefixed with :data:`MARKER`. JSON's ``NaN``, ``Infinity`` and ``-Infinity`` tokens (as
Python's json module writes them) are accepted for metric values. Every field other than ``e`` is
optional unless listed; unknown fields are ignored, unknown kinds are skipped (forward compatible).

Line bounds. The API never writes a line longer than :data:`MAX_EVENT_LINE` (256 KiB, marker and
newline included): a key's buffered points go out as several packed ``series`` lines of at most
:func:`series_chunk` points each, long param and tag values and overlong keys are cut first, and an
event that still does not fit is replaced by a small ``dropped`` event. Every reader (the events
file tail, the Docker and pod log streams, the ingest of a finished events file) takes an event line
whole up to :data:`MAX_LINE_BYTES` (16 MiB, so lines of older writers still arrive), never cuts
one into pieces, and splits a marked line off a partial line of output before it; a longer one, or
one that is not an event, is counted on the run as a dropped event (``workbench show``) and noted
in its log. Plain output lines are cut at 1 MiB.

=========  ==========================================================================================
``e``      fields
=========  ==========================================================================================
param      ``k`` key, ``v`` value (number, string, bool or null)
params     ``v`` object of key -> value
metric     ``k`` key, ``v`` number, ``s`` step (int, optional: next step of that key), ``t`` unix time
metrics    ``v`` object of key -> number, ``s`` step, ``t`` time (one step of several keys)
series     ``k`` key, ``s`` list of steps (or null entries), ``v`` list of numbers, ``t`` list of times;
           or packed (what the API writes: one or more lines per key, each within the line bound):
           ``n`` count, ``sb`` base64 of n little-endian int64 steps, ``vb`` of n float64 values,
           ``tb`` of n float64 unix times (exact, NaN and infinities included, no float printing)
argparse   ``v`` object dest -> value (a script's parsed namespace), ``given`` list of the dests the
           command line gave (the others defaulted), ``flags`` the parser's flag names without dashes
           (params from the command's flags under those names give way)
tag        ``k`` key, ``v`` string
name       ``v`` the run's name (``workbench.init(name=...)``; a name given with ``run -n`` wins)
input      ``path`` (absolute, or relative to the project root), ``src`` api | audit
output     ``path``, ``src`` api | audit
model      ``path``, ``name`` (default: the file's stem), ``framework``, ``framework_version``
env        ``v`` object: python, executable, packages {name: version} (what the job's interpreter has;
           several env events merge, their ``packages`` too)
status     ``status`` succeeded | failed | cancelled, ``exit_code``, ``reason`` (a job's own verdict)
dropped    ``kind`` the kind of an event the writer could not send, ``bytes`` its size (over the bound)
=========  ==========================================================================================

Examples::

    {"e":"param","k":"lr","v":0.1}
    {"e":"metric","k":"loss","v":0.25,"s":3,"t":1764000000.5}
    {"e":"series","k":"loss","s":[1,2,3],"v":[0.9,0.5,NaN],"t":[1764000000.1,1764000000.2,1764000000.3]}
    @@workbench@@ {"e":"output","path":"model.joblib","src":"api"}      (on stdout)
"""

from __future__ import annotations

import json
import sys
from array import array

try:  # SIMD base64: ~13 GB/s, where the standard library decodes at 0.2-0.4 GB/s (the runner's
    from pybase64 import b64decode, b64encode  # biggest cost per point before)
except ImportError:  # a job's interpreter without it: the same functions, slower
    from base64 import b64decode, b64encode  # type: ignore[assignment]
from typing import Any

MARKER = "@@workbench@@ "
MARKER_BYTES = MARKER.encode()

ENV_EVENTS = "WORKBENCH_EVENTS"
"""Where the job writes events: a file path, or ``@stdout`` for marked lines on stdout."""
ENV_RUN_ID = "WORKBENCH_RUN_ID"
ENV_PROJECT = "WORKBENCH_PROJECT"
STDOUT_TARGET = "@stdout"

KINDS = frozenset({
    "param", "params", "argparse", "metric", "metrics", "series", "tag", "input", "output", "model", "env",
    "status", "dropped", "name",
})

MAX_KEY_LENGTH = 250
"""Longer metric, param and tag keys are rejected (and reported in the run's log)."""
MAX_EVENT_LINE = 256 * 1024
"""The longest line the API writes, marker and newline included."""
MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest event line (marker excluded) a reader accepts; longer ones are counted as dropped."""
MAX_TEXT = 10_000
"""Param and tag values are stored cut to this many characters (the API cuts before sending)."""
_POINT_BYTES = 32
"""Base64 bytes per point of a packed series: three 8-byte numbers, 4/3 each."""


class EventError(ValueError):
    """A line that is not a well-formed event."""


def encode(event: dict[str, Any]) -> bytes:
    """One event as a line (with the trailing newline)."""
    return (json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode()


def encode_marked(event: dict[str, Any]) -> bytes:
    """One event as a marked stdout line."""
    return MARKER_BYTES + encode(event)


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse one line (marker allowed) into an event dict; :class:`EventError` if it is not one."""
    if isinstance(line, bytes):
        if line.startswith(MARKER_BYTES):
            line = line[len(MARKER_BYTES):]
        if len(line) > MAX_LINE_BYTES:
            raise EventError(f"event line too long (over {MAX_LINE_BYTES >> 20} MiB)")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise EventError("event line is not UTF-8") from None
    else:
        text = line[len(MARKER):] if line.startswith(MARKER) else line
    text = text.strip()
    if not text:
        raise EventError("empty event line")
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise EventError("event line is not JSON") from None
    if not isinstance(event, dict):
        raise EventError("event line is not a JSON object")
    kind = event.get("e")
    if not isinstance(kind, str):
        raise EventError("event has no kind ('e')")
    return event


def pack_series(key: str, steps: array[int], values: array[float], times: array[float]) -> dict[str, Any]:
    """The packed ``series`` event for parallel arrays (``array('q')``, ``array('d')``, ``array('d')``)."""
    if sys.byteorder != "little":
        steps, values, times = array("q", steps), array("d", values), array("d", times)
        for part in (steps, values, times):
            part.byteswap()
    return {
        "e": "series", "k": key, "n": len(steps), "sb": b64encode(steps.tobytes()).decode(),
        "vb": b64encode(values.tobytes()).decode(), "tb": b64encode(times.tobytes()).decode(),
    }


def series_chunk(key: str) -> int:
    """How many points of ``key`` one packed ``series`` line carries within :data:`MAX_EVENT_LINE`
    (marker included); about 8,000."""
    fixed = len(encode_marked({"e": "series", "k": key, "n": 0, "sb": "", "vb": "", "tb": ""}))
    room = MAX_EVENT_LINE - fixed - 20 - 3 * 4  # the count's digits, base64 padding of each field
    return max(1, room // _POINT_BYTES)


def series_lines(key: str, steps: array[int], values: array[float], times: array[float]) -> list[bytes]:
    """Packed ``series`` lines (newline included, no marker) of one key's points, each within the
    line bound: the key's points in order, :func:`series_chunk` at a time. Built as bytes (the same
    line :func:`encode` makes of :func:`pack_series`), without a round trip of megabytes through str."""
    key = bounded_key(key)
    count = len(steps)
    size = series_chunk(key)
    if sys.byteorder != "little":
        steps, values, times = array("q", steps), array("d", values), array("d", times)
        for part in (steps, values, times):
            part.byteswap()
    head = b'{"e":"series","k":' + json.dumps(key, ensure_ascii=False).encode() + b',"n":'
    return [
        b"".join((head, str(min(size, count - start)).encode(), b',"sb":"',
                  b64encode(steps[start:start + size].tobytes()), b'","vb":"',
                  b64encode(values[start:start + size].tobytes()), b'","tb":"',
                  b64encode(times[start:start + size].tobytes()), b'"}\n'))
        for start in range(0, count, size)
    ]


def bounded_key(key: str) -> str:
    """A key cut just past :data:`MAX_KEY_LENGTH`: still rejected (and noted) by the ingester as
    before, but never large enough to break the line bound."""
    return key if len(key) <= MAX_KEY_LENGTH else key[:MAX_KEY_LENGTH + 1]


def encode_bounded(event: dict[str, Any]) -> bytes:
    """One event as a line within :data:`MAX_EVENT_LINE` (marker included): an event too large
    (a path of megabytes) becomes a ``dropped`` event naming its kind and size, so the run counts it."""
    line = encode(event)
    if len(line) + len(MARKER_BYTES) <= MAX_EVENT_LINE:
        return line
    return encode({"e": "dropped", "kind": str(event.get("e"))[:40], "bytes": len(line)})


def unpack_series(event: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Steps, values and times of a packed ``series`` event as numpy arrays (int64, float64,
    float64); :class:`EventError` if inconsistent."""
    import numpy as np  # the reader's side only: a job importing the API does not pay for numpy

    count = event.get("n")
    if type(count) is not int or count < 0:
        raise EventError("packed series needs a count 'n'")
    parts: list[Any] = []
    kinds = (("sb", "<i8", np.int64), ("vb", "<f8", np.float64), ("tb", "<f8", np.float64))
    for field, code, native in kinds:
        text = event.get(field)
        if not isinstance(text, str):
            raise EventError(f"packed series needs '{field}'")
        try:
            raw = b64decode(text, validate=True)
        except ValueError:
            raise EventError(f"packed series '{field}' is not base64") from None
        if len(raw) != count * 8:
            raise EventError(f"packed series '{field}' does not hold {count} numbers")
        parts.append(np.frombuffer(raw, dtype=code).astype(native, copy=False))  # a copy only on big-endian
    return parts[0], parts[1], parts[2]


def valid_key(key: object) -> bool:
    """A usable metric/param/tag key: a non-empty string, at most MAX_KEY_LENGTH, no control chars."""
    return (
        isinstance(key, str)
        and 0 < len(key) <= MAX_KEY_LENGTH
        and key.isprintable()
    )
