"""Run ids: short, sortable by start time, unique without coordination.

Eight base-36 digits of the start time in milliseconds (good until 2059), then six random base-36
digits: ``mi3k2f7q8z1c4d``. Within one process, ids made in the same millisecond count up from the
first one's random part, so they never collide and sort in the order they were made; between
processes (parallel sweep members, two people pushing to one remote) two ids collide only if they
start in the same millisecond and draw the same of 36**6 (2.2 billion) values. Users type any unique
prefix, a run's name, ``latest`` or ``latest~N``.
"""

from __future__ import annotations

import random
import threading
import time

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
RANDOM_DIGITS = 6
_SPACE = 36**RANDOM_DIGITS
_lock = threading.Lock()
_last: tuple[int, int] = (-1, 0)
"""(millisecond, random part) of the last id this process made from the clock."""


def _base36(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


# What secrets.randbelow uses, without importing secrets (hmac, OpenSSL: ~6 ms per `workbench run`).
_SYSTEM_RANDOM = random.SystemRandom()


def new_run_id(now: float | None = None) -> str:
    """A fresh run id (14 characters)."""
    global _last
    millis = int((time.time() if now is None else now) * 1000)
    with _lock:
        last_millis, last_random = _last
        if millis <= last_millis and now is None:  # same millisecond (or the clock stepped back)
            millis, random_part = last_millis, last_random + 1
            if random_part >= _SPACE:
                millis, random_part = last_millis + 1, _SYSTEM_RANDOM.randrange(_SPACE // 2)
        else:
            random_part = _SYSTEM_RANDOM.randrange(_SPACE // 2)  # room to count up within the millisecond
        if now is None:
            _last = (millis, random_part)
    return _base36(millis, 8) + _base36(random_part, RANDOM_DIGITS)
