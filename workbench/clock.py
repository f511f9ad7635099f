"""Where recorded times and new ids come from: an injected clock and id source.

Services that stamp rows (runs, logs, metric points, snapshots, aliases) take a :class:`Clock`
and, where they mint ids, an :data:`IdSource`, instead of calling ``time.time`` and ``new_run_id``
themselves. Production passes nothing and gets :data:`SYSTEM_CLOCK` and the random ids; the demo
generator (``workbench.demo``) passes a clock frozen per step and numbered ids, so two generations
record the same bytes. Only recorded stamps go through the clock: timeouts and polling keep
``time.monotonic``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

IdSource = Callable[[], str]
"""Returns a fresh id on each call (e.g. :func:`workbench.tracking.ids.new_run_id`)."""


class Clock(Protocol):
    """Wall-clock seconds since the epoch, as ``time.time()`` gives them."""

    def now(self) -> float: ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()


SYSTEM_CLOCK: Clock = SystemClock()
