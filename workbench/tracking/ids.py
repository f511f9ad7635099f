"""Run ids: short, sortable by start time, unique without coordination.

Eight base-36 digits of the start time in milliseconds (good until 2059), then four random base-36
digits: ``mi3k2f7q8z1c``. Users type any unique prefix, a run's name, ``latest`` or ``latest~N``.
"""

from __future__ import annotations

import secrets
import time

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def new_run_id(now: float | None = None) -> str:
    """A fresh run id (12 characters)."""
    millis = int((time.time() if now is None else now) * 1000)
    return _base36(millis, 8) + _base36(secrets.randbelow(36**4), 4)
