"""Labels that arrive later: what a model answered, scored against the truth, per window.

``score`` gives accuracy and macro F1 (classification) or MAE and RMSE (regression).
``predicted_value`` and ``confidence`` read a logged output: a class or number, or a list of class
probabilities (the top one is the answer, its probability the confidence that the CBPE-style
estimate averages while labels are still missing).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from workbench.monitor.profile import category_key

CLASSIFICATION, REGRESSION = "classification", "regression"
ANSWER_KEYS = ("predict", "label", "prediction", "output")
"""Where the answer is in an output of several named tensors (the capture side logs a dict then)."""
PROBABILITY_KEYS = ("predict_proba", "probabilities", "proba", "probability")


def parse_output(raw: Any) -> Any:
    """A value from ``json_extract(output, '$')``: arrays and objects come back as JSON text."""
    if isinstance(raw, str) and raw[:1] in "[{":
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _probabilities(output: Any) -> list[float] | None:
    if isinstance(output, dict):  # several outputs (MLServer: predict, predict_proba), by name
        output = next((output[k] for k in PROBABILITY_KEYS if k in output), None)
    if isinstance(output, list) and len(output) == 1 and isinstance(output[0], list):
        output = output[0]
    if (isinstance(output, list) and len(output) > 1
            and all(isinstance(p, int | float) and not isinstance(p, bool) for p in output)):
        total = float(sum(output))
        if 0.98 <= total <= 1.02 and min(output) >= 0:
            return [float(p) for p in output]
    return None


def predicted_value(output: Any, classes: list[str]) -> Any:
    """The answer in an output: the class named in a dict of outputs, the top class of
    probabilities, else the value itself."""
    if isinstance(output, dict):
        for key in ANSWER_KEYS:
            if key in output:
                return predicted_value(output[key], classes)
    probabilities = _probabilities(output)
    if probabilities is not None:
        index = int(np.argmax(probabilities))
        return classes[index] if index < len(classes) else str(index)
    if isinstance(output, dict):
        return None
    if isinstance(output, list) and len(output) == 1:
        return output[0]
    return output


def confidence(output: Any) -> float | None:
    """The top class's probability, when the output carries probabilities."""
    probabilities = _probabilities(output)
    return max(probabilities) if probabilities is not None else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def infer_task(predicted: list[Any], labels: list[Any]) -> str:
    """Regression when every answer and label is a number and some are not whole."""
    values = [v for v in (*predicted, *labels) if v is not None]
    if values and all(_is_number(v) for v in values) and any(not float(v).is_integer() for v in values):
        return REGRESSION
    return CLASSIFICATION


def score(task: str, predicted: list[Any], labels: list[Any]) -> dict[str, Any]:
    """Accuracy and macro F1, or MAE and RMSE, over the pairs where both sides are present."""
    pairs = [(p, t) for p, t in zip(predicted, labels, strict=False) if p is not None and t is not None]
    if not pairs:
        return {"rows": 0}
    if task == REGRESSION:
        try:
            p = np.asarray([float(a) for a, _ in pairs])
            t = np.asarray([float(b) for _, b in pairs])
        except (TypeError, ValueError):
            return {"rows": 0}
        error = p - t
        return {"rows": len(pairs), "mae": float(np.mean(np.abs(error))),
                "rmse": float(np.sqrt(np.mean(error ** 2)))}
    keyed = [(category_key(a), category_key(b)) for a, b in pairs]
    correct = sum(1 for a, b in keyed if a == b)
    f1s = []
    for cls in sorted({b for _, b in keyed} | {a for a, _ in keyed}, key=str):
        tp = sum(1 for a, b in keyed if a == cls and b == cls)
        fp = sum(1 for a, b in keyed if a == cls and b != cls)
        fn = sum(1 for a, b in keyed if a != cls and b == cls)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"rows": len(pairs), "accuracy": correct / len(pairs), "f1": float(np.mean(f1s))}


HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "mae": False, "rmse": False}


def is_degraded(metric: str, live: float, reference: float, drop: float) -> bool:
    """Whether ``live`` is worse than ``reference`` by more than the relative ``drop``."""
    if HIGHER_IS_BETTER.get(metric, True):
        return live < reference * (1 - drop)
    return live > reference * (1 + drop) + 1e-12
