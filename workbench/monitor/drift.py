"""Effect sizes between a reference and a window, from counts on the reference's bins.

Numbers: population stability index (PSI) over ``[below, deciles..., above]`` and the Wasserstein
distance over the reference standard deviation (interior bins by the trapezoid rule on the two CDFs,
the tails exactly from the folded distances past the reference's extremes); the Kolmogorov-Smirnov
statistic is reported too. Categories: Jensen-Shannon distance (base 2, in [0, 1]) over
``[categories..., unseen]``. States are decided on these effect sizes, never on p-values: on a
million rows any negligible shift is "significant".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.monitor.profile import NUMBER, FeatureProfile

EPSILON = 1e-4
"""Floor of an empty bin's share, so PSI stays finite."""


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    p = np.maximum(reference / max(reference.sum(), 1e-12), EPSILON)
    q = np.maximum(current / max(current.sum(), 1e-12), EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    p = reference / max(reference.sum(), 1e-12)
    q = current / max(current.sum(), 1e-12)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


@dataclass
class Comparison:
    """Drift and quality of one feature in one window."""

    name: str
    kind: str
    rows: int  # values present (not missing, not invalid)
    scores: dict[str, float]  # psi, wasserstein, ks | js
    quality: dict[str, float]  # missing, out_of_range | unseen, invalid
    mean: float | None = None
    histogram: list[float] | None = None  # the window's shares on the reference bins

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(feature: FeatureProfile, current: np.ndarray) -> Comparison:
    """Compare a window's slot vector with the feature's reference slot vector."""
    reference = np.asarray(feature.counts, dtype=np.float64)
    if feature.kind == NUMBER:
        return _compare_numbers(feature, reference, current)
    k = len(feature.categories)
    ref_dist, cur_dist = reference[: k + 1], current[: k + 1]
    present = float(cur_dist.sum())
    total = present + float(current[k + 1])
    return Comparison(
        name=feature.name, kind=feature.kind, rows=int(present),
        scores={"js": js_distance(ref_dist, cur_dist) if present else 0.0},
        quality={"missing": float(current[k + 1]) / total if total else 0.0,
                 "unseen": float(current[k]) / present if present else 0.0},
        histogram=(cur_dist / present).tolist() if present else None,
    )


def _compare_numbers(feature: FeatureProfile, reference: np.ndarray, current: np.ndarray) -> Comparison:
    n = feature.bins
    ref_dist, cur_dist = reference[: n + 2], current[: n + 2]
    present = float(cur_dist.sum())
    total = present + float(current[n + 2] + current[n + 3])
    quality = {"missing": float(current[n + 2]) / total if total else 0.0,
               "invalid": float(current[n + 3]) / total if total else 0.0,
               "out_of_range": float(current[0] + current[n + 1]) / present if present else 0.0}
    if not present:
        return Comparison(feature.name, feature.kind, 0, {"psi": 0.0, "wasserstein": 0.0, "ks": 0.0}, quality)
    p = ref_dist / max(ref_dist.sum(), 1e-12)
    q = cur_dist / present
    # CDFs at the edges e_0 .. e_n: below the first edge, then after each bin.
    cdf_p = np.cumsum(p)[: n + 1]
    cdf_q = np.cumsum(q)[: n + 1]
    gap = np.abs(cdf_q - cdf_p)
    widths = np.diff(np.asarray(feature.edges))
    interior = float(np.sum((gap[:-1] + gap[1:]) / 2 * widths))
    tails = float(current[n + 4] + current[n + 5]) / present
    spread = feature.std or (feature.max - feature.min) or 1.0
    return Comparison(
        name=feature.name, kind=feature.kind, rows=int(present),
        scores={"psi": psi(ref_dist, cur_dist), "wasserstein": (interior + tails) / spread,
                "ks": float(gap.max())},
        quality=quality, mean=float(current[n + 6]) / present, histogram=q.tolist(),
    )
