"""Follow a pod's log across dropped connections without losing or repeating a line.

The log is read with ``timestamps=true``, so every line starts with its RFC3339Nano time. The
follower remembers the last timestamp it delivered and how many lines carried exactly that
timestamp. After a drop it asks again from that second (``sinceTime`` has second precision), skips
every line older than the remembered time and as many lines with the same time as were already
delivered, and goes on. When the pod has ended it makes one last, non-following read the same way,
so lines written between the drop and the end arrive too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from workbench.executors.streams import LineSplitter

Fetch = Callable[[str | None, bool], Iterator[bytes]]
"""fetch(since_time_rfc3339_or_None, follow) -> chunks of the log body."""


def parse_timestamp(text: bytes) -> tuple[int, int] | None:
    """(unix seconds, nanoseconds) of an RFC3339(Nano) timestamp, or None."""
    try:
        raw = text.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not raw.endswith("Z"):
        return None
    body = raw[:-1]
    whole, _, fraction = body.partition(".")
    try:
        seconds = int(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
        nanos = int((fraction + "000000000")[:9]) if fraction else 0
    except ValueError:
        return None
    return seconds, nanos


def rfc3339_second(stamp: tuple[int, int]) -> str:
    return datetime.fromtimestamp(stamp[0], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogFollower:
    """Yields the pod's log lines (timestamps removed), exactly once each."""

    def __init__(self, fetch: Fetch, ended: Callable[[], bool], *, retry_delay: float = 0.5,
                 max_failures: int = 30, stop: Callable[[], bool] = lambda: False,
                 marker: bytes = b"") -> None:
        self._fetch = fetch
        self._ended = ended
        self._retry_delay = retry_delay
        self._max_failures = max_failures
        self._stop = stop
        self._marker = marker
        self.last: tuple[int, int] | None = None
        self.seen_at_last = 0
        self.reconnects = 0

    def _read(self, follow: bool) -> Iterator[bytes]:
        since = rfc3339_second(self.last) if self.last else None
        splitter = LineSplitter(stamped=True, marker=self._marker)
        same = 0
        for chunk in self._fetch(since, follow):
            for line in splitter.feed(chunk):
                same, text = self._accept(line, same)
                if text is not None:
                    yield text
        for line in splitter.flush():
            same, text = self._accept(line, same)
            if text is not None:
                yield text

    def _accept(self, line: bytes, same: int) -> tuple[int, bytes | None]:
        """Decide on one timestamped line: (lines seen with the remembered time in this read,
        the text to deliver or None to skip it)."""
        stamp_text, _, text = line.partition(b" ")
        stamp = parse_timestamp(stamp_text)
        if stamp is None:  # no timestamp: cannot dedupe, deliver it
            return same, line
        if self.last is not None and stamp < self.last:
            return same, None
        if self.last is not None and stamp == self.last:
            same += 1
            if same <= self.seen_at_last:
                return same, None
            self.seen_at_last += 1
            return same, text
        self.last = stamp
        self.seen_at_last = 1
        return 1, text

    def lines(self) -> Iterator[bytes]:
        failures = 0
        while not self._stop():
            try:
                yield from self._read(follow=True)
                failures = 0
            except Exception:
                failures += 1
                if failures > self._max_failures:
                    raise
            if self._stop():
                return
            if self._ended():
                for attempt in range(3):
                    try:
                        yield from self._read(follow=False)
                        return
                    except Exception:
                        if attempt == 2:
                            raise
                        time.sleep(self._retry_delay)
                return
            self.reconnects += 1
            time.sleep(self._retry_delay)
