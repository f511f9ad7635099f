"""One way to print each quantity, shared by the CLI and the TUI (no Rich, no Textual).

The conventions, one per quantity:

- **Sizes** (:func:`size`): binary units with a space, ``512 B``, ``1.5 KiB``, ``3.0 MiB``,
  ``2.1 GiB``, ``1.0 TiB`` (one decimal above bytes; negative sizes keep their sign).
- **Durations** (:func:`duration`): ``12.5s`` under a minute (one decimal), ``3m07s`` under an
  hour, ``2h05m`` from an hour.
- **Ages** (:func:`age`): the largest whole unit, ``45s ago``, ``12m ago``, ``3h ago``, ``2d ago``.
- **Numbers** (:func:`number`): four significant digits (``0.1235``, ``1.235e+05``), ints and
  strings as they are, booleans ``true``/``false``, and ``nan``, ``inf``, ``-inf`` spelt as the
  ``--json`` output spells them.
- **Times** (:func:`local_time`, :func:`short_time`): local ``YYYY-MM-DD HH:MM:SS``, or
  ``MM-DD HH:MM`` where a table column is narrow.

Every function takes ``None`` for "no value" and returns ``missing`` (``""`` by default; the CLI
tables pass ``"-"``).
"""

from __future__ import annotations

import math
import time

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(n: float | None, missing: str = "") -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``."""
    if n is None:
        return missing
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None, missing: str = "") -> str:
    """``12.5s``, ``3m07s``, ``2h05m``."""
    if seconds is None:
        return missing
    if seconds < 60:
        return f"{max(0.0, seconds):.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def age(stamp: float | None, now: float | None = None, missing: str = "") -> str:
    """How long ago ``stamp`` was (``now`` defaults to the clock): ``12m ago``."""
    if stamp is None:
        return missing
    seconds = max(0, int((time.time() if now is None else now) - stamp))
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds // span}{unit} ago"
    return f"{seconds}s ago"


def number(value: object, missing: str = "") -> str:
    """A param or metric value: floats to four significant digits, ``nan``/``inf``/``-inf``."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)


def local_time(stamp: float | None, missing: str = "-") -> str:
    """Local ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else missing


def short_time(stamp: float | None, missing: str = "") -> str:
    """Local ``MM-DD HH:MM`` (narrow table columns)."""
    return missing if stamp is None else time.strftime("%m-%d %H:%M", time.localtime(stamp))


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], ceiling: float | None = None) -> str:
    """One block character per value, scaled to ``ceiling`` (values above it get the full block),
    or to the largest value when no ceiling is given."""
    top = ceiling or max(values, default=0.0) or 1.0
    return "".join(_SPARK[min(len(_SPARK) - 1, max(0, int(v / top * (len(_SPARK) - 1) + 0.5)))]
                   for v in values)
