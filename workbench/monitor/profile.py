"""Reference profiles: what a model version's training data looked like, fixed at registration.

A :class:`Profile` holds, per feature, the bin edges (reference deciles), the reference counts on
those bins, quantiles, mean and spread, missing rate, and for categories their frequencies; the
input signature (names, count, dtypes); the prediction distribution on the same data when the model
could be loaded (or the file had a ``prediction`` column); and the metric the model scored on it
when labels were there too. Production windows are counted on exactly these edges
(:func:`slot_of_numbers`, :func:`slot_of_categories`), so comparing them is a sum, never a rescan.

Slot layout of one feature in a window's count vector (:attr:`FeatureProfile.width`):
numbers: ``[below, bin_1 .. bin_n, above, missing, invalid, below_dist, above_dist, sum]`` (the last
three are sums of values, for an exact Wasserstein tail and the mean); categories:
``[category_1 .. category_k, unseen, missing]``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from workbench.errors import UsageError

NUMBER, CATEGORY = "number", "category"
BINS = 20
MAX_CATEGORIES = 200
LABEL_COLUMNS = ("label", "target", "y", "class")
PREDICTION_COLUMNS = ("prediction", "predicted")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass
class FeatureProfile:
    """The reference of one feature (or of the prediction)."""

    name: str
    kind: str  # number | category
    dtype: str
    count: int
    missing_rate: float
    counts: list[float] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)
    quantiles: dict[str, float] = field(default_factory=dict)
    mean: float = 0.0
    std: float = 0.0
    min: float = 0.0
    max: float = 0.0
    categories: list[str] = field(default_factory=list)

    @property
    def bins(self) -> int:
        return len(self.edges) - 1

    @property
    def width(self) -> int:
        """Slots this feature takes in a window's count vector."""
        return self.bins + 7 if self.kind == NUMBER else len(self.categories) + 2

    def bin_labels(self) -> list[str]:
        """Names of the distribution slots: ``<min``, each bin, ``>max``; or each category, ``unseen``."""
        if self.kind != NUMBER:
            return [*self.categories, "(unseen)"]
        inner = [f"{a:.3g}..{b:.3g}" for a, b in zip(self.edges, self.edges[1:], strict=False)]
        return [f"<{self.edges[0]:.3g}", *inner, f">{self.edges[-1]:.3g}"]

    def reference_shares(self) -> list[float]:
        """The reference's share of each slot named by :meth:`bin_labels`."""
        part = np.asarray(self.counts[: len(self.bin_labels())], dtype=np.float64)
        total = part.sum()
        return (part / total).tolist() if total else [0.0] * len(part)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureProfile:
        return cls(**data)


@dataclass
class Profile:
    """A model version's reference."""

    features: list[FeatureProfile]
    rows: int
    prediction: FeatureProfile | None = None
    classes: list[str] = field(default_factory=list)
    task: str = ""  # classification | regression | '' (unknown)
    reference_metric: dict[str, Any] | None = None  # {"name", "value"}

    @property
    def signature(self) -> dict[str, Any]:
        return {"names": [f.name for f in self.features], "count": len(self.features),
                "dtypes": [f.dtype for f in self.features]}

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features], "rows": self.rows,
                "prediction": self.prediction.to_dict() if self.prediction else None,
                "classes": self.classes, "task": self.task, "reference_metric": self.reference_metric,
                "signature": self.signature}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        prediction = data.get("prediction")
        return cls(features=[FeatureProfile.from_dict(f) for f in data["features"]], rows=int(data["rows"]),
                   prediction=FeatureProfile.from_dict(prediction) if prediction else None,
                   classes=list(data.get("classes") or []), task=data.get("task") or "",
                   reference_metric=data.get("reference_metric"))


# -- turning values into slots ---------------------------------------------------------------------
def category_key(value: Any) -> str | None:
    """The category a value counts as: ``None`` for missing, ``1.0`` and ``1`` alike as ``"1"``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def as_numbers(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(floats with NaN for missing or invalid, mask of invalid values)``."""
    try:
        array = np.asarray(values, dtype=np.float64)
        return array, np.zeros(len(array), dtype=bool)
    except (TypeError, ValueError):
        pass
    out = np.full(len(values), np.nan)
    invalid = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[i] = float(value)
        else:
            try:
                out[i] = float(value)
            except (TypeError, ValueError):
                invalid[i] = True
    return out, invalid


def slot_of_numbers(feature: FeatureProfile, values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Slot of each value: 0 below the reference, 1..n the bins, n+1 above, n+2 missing, n+3 invalid."""
    edges = np.asarray(feature.edges)
    bins = feature.bins
    index = np.searchsorted(edges, values, side="right")
    slots = np.where(values == edges[-1], bins, index)
    slots = np.where(np.isnan(values), bins + 2, slots)
    return np.where(invalid, bins + 3, slots).astype(np.int64)


def slot_of_categories(feature: FeatureProfile, values: list[Any],
                       lookup: dict[str, int] | None = None) -> np.ndarray:
    """Slot of each value: its category's index, ``k`` unseen, ``k+1`` missing."""
    lookup = lookup if lookup is not None else {c: i for i, c in enumerate(feature.categories)}
    unseen, missing = len(feature.categories), len(feature.categories) + 1

    def slot(value: Any) -> int:
        key = category_key(value)
        return missing if key is None else lookup.get(key, unseen)

    try:  # few distinct values: map each once
        memo = {value: slot(value) for value in set(values)}
        return np.fromiter((memo[v] for v in values), dtype=np.int64, count=len(values))
    except TypeError:  # an unhashable value (a list): one by one
        return np.fromiter((slot(v) for v in values), dtype=np.int64, count=len(values))


def feature_slots(feature: FeatureProfile, values: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Slot of each value, and (numbers) the values as floats, NaN where missing or invalid."""
    if feature.kind == NUMBER:
        numbers, invalid = as_numbers(values)
        return slot_of_numbers(feature, numbers, invalid), numbers
    return slot_of_categories(feature, values), None


def fold_by_group(feature: FeatureProfile, values: list[Any], group: np.ndarray, groups: int) -> np.ndarray:
    """Slot vectors (``groups`` x :attr:`FeatureProfile.width`) of values, row ``i`` in ``group[i]``."""
    out = np.zeros((groups, feature.width))
    if not len(values):
        return out
    slots, numbers = feature_slots(feature, values)
    counted = feature.bins + 4 if numbers is not None else feature.width
    flat = np.bincount(group * counted + slots, minlength=groups * counted)
    out[:, :counted] = flat.reshape(groups, counted)
    if numbers is not None:
        finite = ~np.isnan(numbers)
        where, x = group[finite], numbers[finite]
        out[:, counted] = np.bincount(where, weights=np.clip(feature.edges[0] - x, 0, None), minlength=groups)
        out[:, counted + 1] = np.bincount(where, weights=np.clip(x - feature.edges[-1], 0, None),
                                          minlength=groups)
        out[:, counted + 2] = np.bincount(where, weights=x, minlength=groups)
    return out


def fold_feature(feature: FeatureProfile, values: list[Any]) -> np.ndarray:
    """The slot vector (length :attr:`FeatureProfile.width`) of one batch of values."""
    out: np.ndarray = fold_by_group(feature, values, np.zeros(len(values), dtype=np.int64), 1)[0]
    return out


# -- building a profile ------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def profile_column(name: str, values: list[Any]) -> FeatureProfile:
    """The reference of one column: numbers get decile edges, anything else categories."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    missing_rate = 1 - len(present) / len(values) if values else 0.0
    if present and all(_is_number(v) for v in present):
        numbers = np.asarray(present, dtype=np.float64)
        edges = np.unique(np.quantile(numbers, np.linspace(0, 1, BINS + 1)))
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
        feature = FeatureProfile(
            name=name, kind=NUMBER, dtype="int" if all(float(v).is_integer() for v in present[:1000])
            else "float", count=len(values), missing_rate=missing_rate, edges=[float(e) for e in edges],
            quantiles={str(q): float(np.quantile(numbers, q)) for q in QUANTILES},
            mean=float(numbers.mean()), std=float(numbers.std()), min=float(numbers.min()),
            max=float(numbers.max()),
        )
    else:
        keys = [category_key(v) for v in present]
        frequent = [k for k, _ in Counter(k for k in keys if k is not None).most_common(MAX_CATEGORIES)]
        feature = FeatureProfile(name=name, kind=CATEGORY, dtype="bool" if all(
            isinstance(v, bool) for v in present) and present else "str", count=len(values),
            missing_rate=missing_rate, categories=sorted(frequent))
    feature.counts = fold_feature(feature, values).tolist()
    return feature


def _split_columns(table: dict[str, list[Any]], label: str | None, prediction: str | None,
                   model: Any) -> tuple[list[str], str | None, str | None]:
    for given, what in ((label, "label"), (prediction, "prediction")):
        if given is not None and given not in table:
            raise UsageError(f"no column {given!r} for the {what}", f"columns: {', '.join(table)}")
    label = label or next((c for c in table if c.lower() in LABEL_COLUMNS), None)
    prediction = prediction or next((c for c in table if c.lower() in PREDICTION_COLUMNS), None)
    rest = [c for c in table if c not in (label, prediction)]
    names = getattr(model, "feature_names_in_", None)
    if names is not None and all(str(n) in table for n in names):
        return [str(n) for n in names], label, prediction
    wanted = getattr(model, "n_features_in_", None)
    if isinstance(wanted, int) and len(rest) > wanted:
        if label is None and len(rest) == wanted + 1:
            label = rest[-1]  # the usual layout: features, then the target
        rest = rest[:wanted]
    return rest, label, prediction


def build_profile(table: dict[str, list[Any]], *, label: str | None = None,
                  prediction: str | None = None, model: Any = None) -> Profile:
    """Profile a table: its feature columns, and predictions (a column, or ``model.predict``)."""
    features, label, prediction = _split_columns(table, label, prediction, model)
    if not features:
        raise UsageError("no feature columns to profile", "the file holds only a label or prediction")
    rows = len(table[features[0]])
    profile = Profile(features=[profile_column(n, table[n]) for n in features], rows=rows)
    predicted: list[Any] | None = list(table[prediction]) if prediction else None
    if predicted is None and model is not None and hasattr(model, "predict"):
        predicted = _predict(model, [table[n] for n in features])
    if model is not None and hasattr(model, "classes_"):
        profile.classes = [category_key(c) or "" for c in model.classes_]
    if predicted is not None:
        column = profile_column("prediction", predicted)
        if column.kind == NUMBER and (profile.classes or (column.dtype == "int" and len(column.edges) <= 3)):
            column = profile_column("prediction", [category_key(v) for v in predicted])
        profile.prediction = column
        profile.task = "regression" if column.kind == NUMBER else "classification"
        if label is not None:
            profile.reference_metric = reference_metric(profile.task, predicted, table[label])
    return profile


def _predict(model: Any, columns: list[list[Any]]) -> list[Any] | None:
    """``model.predict`` on the reference rows; None when the model cannot take them."""
    try:
        matrix = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
        return list(np.asarray(model.predict(matrix)).tolist())
    except Exception:
        return None


def reference_metric(task: str, predicted: list[Any], labels: list[Any]) -> dict[str, Any] | None:
    """Accuracy (classification) or MAE (regression) of ``predicted`` against ``labels``."""
    from workbench.monitor.labels import score

    scores = score(task, predicted, labels)
    name = "accuracy" if task == "classification" else "mae"
    return {"name": name, "value": scores[name], **scores} if name in scores else None
