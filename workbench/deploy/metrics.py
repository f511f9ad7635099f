"""Scrape the model server's Prometheus metrics from every replica: request rate, error rate, latency.

MLServer's ``rest_server_*`` series of the infer path, or KServe's ``request_predict_seconds``
histogram (predict calls, refused ones included; KServe counts no errors, so a KServe deployment's
error rate is unknown: None).

Counters are summed over replicas; rates and latency quantiles come from the difference between this
scrape and the previous one of the same deployment (the TUI samples every few seconds), and from the
totals since start on the first scrape. Latency quantiles are interpolated inside the histogram
buckets of ``rest_server_request_duration_seconds`` for the infer path, as Prometheus'
``histogram_quantile`` does.
"""

from __future__ import annotations

import math
import re
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

INFER_PATH = "/v2/models/{model_name}/infer"
_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Sample:
    """Summed counters of one scrape."""

    at: float
    requests: float = 0.0
    errors: float = 0.0
    latency_sum: float = 0.0
    latency_count: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    replicas_scraped: int = 0
    errors_counted: bool = True
    """False once a replica's series count no errors (KServe's)."""


@dataclass
class MetricsSnapshot:
    """What a Deployments screen shows: rates over the last interval, totals since start."""

    requests_total: float
    errors_total: float
    request_rate: float | None
    """requests per second since the previous scrape (None on the first)"""
    error_rate: float | None
    """fraction of requests that failed in the interval (None when no request came)"""
    latency_mean: float | None
    latency_p50: float | None
    latency_p99: float | None
    replicas_scraped: int
    at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format -> ``(name, labels, value)`` triples (comments skipped)."""
    out: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = dict(_LABEL.findall(match["labels"] or ""))
        out.append((match["name"], labels, value))
    return out


def accumulate(sample: Sample, text: str) -> None:
    """Add one replica's scrape to ``sample``."""
    sample.replicas_scraped += 1
    for name, labels, value in parse(text):
        if name.startswith(KSERVE_PREDICT):
            _kserve(sample, name[len(KSERVE_PREDICT):], labels, value)
            continue
        if labels.get("path") != INFER_PATH:
            continue
        if name == "rest_server_requests_total":
            sample.requests += value
            if not labels.get("status_code", "200").startswith("2"):
                sample.errors += value
        elif name == "rest_server_request_duration_seconds_sum":
            sample.latency_sum += value
        elif name == "rest_server_request_duration_seconds_count":
            sample.latency_count += value
        elif name == "rest_server_request_duration_seconds_bucket":
            _add_bucket(sample, labels, value)


KSERVE_PREDICT = "request_predict_seconds"


def _kserve(sample: Sample, suffix: str, labels: dict[str, str], value: float) -> None:
    sample.errors_counted = False
    if suffix == "_count":
        sample.requests += value
        sample.latency_count += value
    elif suffix == "_sum":
        sample.latency_sum += value
    elif suffix == "_bucket":
        _add_bucket(sample, labels, value)


def _add_bucket(sample: Sample, labels: dict[str, str], value: float) -> None:
    """One cumulative histogram bucket (``le``, ``+Inf`` included) of the latency histogram."""
    le = float(labels.get("le", "inf").replace("+Inf", "inf"))
    sample.buckets[le] = sample.buckets.get(le, 0.0) + value


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile`` over cumulative buckets ``{upper_bound: count}``."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width > 0 else 1.0)
        lower, below = bound, count
    return lower


def scrape(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read()).decode("utf-8", "replace")


class MetricsSampler:
    """Keeps the previous sample of each deployment so that successive calls give rates."""

    def __init__(self) -> None:
        self._last: dict[str, Sample] = {}

    def forget(self, name: str) -> None:
        self._last.pop(name, None)

    def sample(self, name: str, urls: list[str]) -> MetricsSnapshot:
        texts: list[str] = []
        for url in urls:
            try:
                texts.append(scrape(url))
            except OSError:
                continue
        return self.sample_texts(name, texts)

    def sample_texts(self, name: str, texts: list[str]) -> MetricsSnapshot:
        """Like :meth:`sample`, from scrapes already made (one text per replica)."""
        now = Sample(at=time.time())
        for text in texts:
            accumulate(now, text)
        before = self._last.get(name)
        self._last[name] = now
        if before is None or now.requests < before.requests:  # first scrape, or a replica restarted
            before = Sample(at=now.at)
            rate = None
        else:
            rate = (now.requests - before.requests) / max(now.at - before.at, 1e-9)
        requests = now.requests - before.requests
        errors = now.errors - before.errors
        count = now.latency_count - before.latency_count
        buckets = {le: now.buckets[le] - before.buckets.get(le, 0.0) for le in now.buckets}
        return MetricsSnapshot(
            requests_total=now.requests,
            errors_total=now.errors,
            request_rate=rate,
            error_rate=(errors / requests) if requests > 0 and now.errors_counted else None,
            latency_mean=((now.latency_sum - before.latency_sum) / count) if count > 0 else None,
            latency_p50=quantile(0.5, buckets),
            latency_p99=quantile(0.99, buckets),
            replicas_scraped=now.replicas_scraped,
            at=now.at,
        )
