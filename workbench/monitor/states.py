"""States from effect sizes: ``ok``, ``warning``, ``drifting``, and ``degraded`` (labels say so).

A number's state is the worse of its PSI and normalised Wasserstein states; a category's is its
Jensen-Shannon state; the prediction is judged like a feature. Data quality adds ``warning`` when a
feature's missing rate rises more than :data:`MISSING_RISE` over the reference, more than
:data:`INVALID_SHARE` of its values are not numbers, or more than :data:`ERROR_SHARE` of a window's
requests were refused. A window with fewer than ``min_rows`` answered rows never leaves ``ok``.
The deployment's state is its worst feature's, unless labelled metrics fell by more than
``degraded_drop`` against the training metric: then it is ``degraded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.config import MonitorConfig
from workbench.monitor.drift import Comparison

OK, WARNING, DRIFTING, DEGRADED = "ok", "warning", "drifting", "degraded"
ORDER = {OK: 0, WARNING: 1, DRIFTING: 2, DEGRADED: 3}
MISSING_RISE = 0.1
INVALID_SHARE = 0.05
ERROR_SHARE = 0.05


def worst(states: list[str]) -> str:
    return max(states, key=lambda s: ORDER.get(s, 0), default=OK)


def _level(value: float, warning: float, drifting: float) -> str:
    return DRIFTING if value >= drifting else WARNING if value >= warning else OK


@dataclass
class Verdict:
    """One feature's (or the prediction's) state in a window, and the metric that decided it."""

    name: str
    kind: str
    metric: str
    score: float
    state: str
    reasons: list[str] = field(default_factory=list)
    severity: float = 0.0
    """The score over its drifting threshold (the worse of PSI's and Wasserstein's): 1 is drifting."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "score": round(self.score, 6), "state": self.state}


def judge(comparison: Comparison, config: MonitorConfig, rows: int, missing_before: float = 0.0) -> Verdict:
    """The state of one comparison under the project's thresholds."""
    scores = comparison.scores
    if "js" in scores:
        metric, score = "js", scores["js"]
        state = _level(score, config.js_warning, config.js_drifting)
        severity = score / max(config.js_drifting, 1e-12)
    else:
        psi_state = _level(scores["psi"], config.psi_warning, config.psi_drifting)
        w_state = _level(scores["wasserstein"], config.wasserstein_warning, config.wasserstein_drifting)
        psi_ratio = scores["psi"] / max(config.psi_drifting, 1e-12)
        w_ratio = scores["wasserstein"] / max(config.wasserstein_drifting, 1e-12)
        metric = "psi" if psi_ratio >= w_ratio else "wasserstein"
        score, severity = scores[metric], max(psi_ratio, w_ratio)
        state = worst([psi_state, w_state])
    reasons: list[str] = []
    quality = comparison.quality
    if quality.get("missing", 0.0) - missing_before > MISSING_RISE:
        reasons.append(f"missing {quality['missing']:.0%} (reference {missing_before:.0%})")
    if quality.get("invalid", 0.0) > INVALID_SHARE:
        reasons.append(f"{quality['invalid']:.0%} not numbers")
    if reasons and state == OK:
        state = WARNING
    if rows < config.min_rows:
        state, reasons = OK, [f"only {rows} rows (min_rows {config.min_rows})"]
    return Verdict(comparison.name, comparison.kind, metric, score, state, reasons, severity)
