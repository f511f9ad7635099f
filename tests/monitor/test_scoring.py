"""Labelled metrics, the degraded rule, outputs with probabilities, and the effect sizes themselves."""

from __future__ import annotations

import numpy as np

from workbench.monitor import labels
from workbench.monitor.drift import compare, js_distance, psi
from workbench.monitor.profile import fold_feature, profile_column


def test_scores_and_degraded_both_ways() -> None:
    assert labels.score("classification", [1, 0, 1, 1], [1, 0, 0, 1]) == {"rows": 4, "accuracy": 0.75,
                                                                          "f1": (2 / 3 + 0.8) / 2}
    regression = labels.score("regression", [1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    assert regression["mae"] == 0.5 and abs(regression["rmse"] - np.sqrt((0.25 + 1) / 3)) < 1e-12
    assert labels.infer_task([1.5, 2.25], [1.0, 2.0]) == "regression"
    assert labels.infer_task([1, 0], ["1", "0"]) == "classification"
    assert labels.is_degraded("accuracy", 0.7, 0.9, 0.1)
    assert not labels.is_degraded("accuracy", 0.85, 0.9, 0.1)
    assert labels.is_degraded("mae", 0.6, 0.5, 0.1) and not labels.is_degraded("mae", 0.52, 0.5, 0.1)


def test_outputs_with_probabilities() -> None:
    assert labels.predicted_value([0.1, 0.7, 0.2], ["a", "b", "c"]) == "b"
    assert labels.predicted_value([[0.9, 0.1]], []) == "0"
    assert labels.confidence([0.1, 0.7, 0.2]) == 0.7
    assert labels.confidence(3) is None and labels.predicted_value(3, []) == 3
    assert labels.parse_output('[0.5, 0.5]') == [0.5, 0.5]
    both = {"predict": 2, "predict_proba": [0.1, 0.2, 0.7]}  # MLServer's two outputs, as captured
    assert labels.predicted_value(both, ["a", "b", "c"]) == 2 and labels.confidence(both) == 0.7
    assert labels.predicted_value({"predict_proba": [0.8, 0.2]}, ["x", "y"]) == "x"


def test_effect_sizes() -> None:
    same = np.array([10.0, 20.0, 30.0])
    assert psi(same, same) == 0.0 and js_distance(same, same) == 0.0
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    rng = np.random.default_rng(0)
    feature = profile_column("x", rng.normal(0, 1, 20_000).tolist())
    shifted = compare(feature, fold_feature(feature, rng.normal(1, 1, 5000).tolist()))
    assert 0.85 < shifted.scores["wasserstein"] < 1.15  # a one-sd shift is about 1 sd of transport
    assert shifted.mean is not None and abs(shifted.mean - 1) < 0.05
    far = compare(feature, fold_feature(feature, rng.normal(10, 1, 5000).tolist()))
    assert 9.5 < far.scores["wasserstein"] < 10.5  # exact past the reference's range, from the tails
    assert far.quality["out_of_range"] > 0.99
