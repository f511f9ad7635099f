"""Score model versions on labelled production rows, for ``workbench retrain --compare``.

A model is loaded where it is served: in the serving venv of its framework *version* (a pickled
scikit-learn model loads only under the version that saved it), by a small script run with that
venv's Python, which reads ``{"framework", "path", "rows"}`` on stdin and prints the predictions.
The main install needs no ML framework. Classification labels (whole numbers, text) are scored by
accuracy, numbers by RMSE.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.monitor.host import MonitorHost

SCORER = r"""
import json, sys
import numpy as np
req = json.load(sys.stdin)
framework, path, rows = req["framework"], req["path"], np.asarray(req["rows"], dtype=float)
if framework == "sklearn":
    import joblib
    out = joblib.load(path).predict(rows)
elif framework == "xgboost":
    import xgboost
    booster = xgboost.Booster()
    booster.load_model(path)
    out = booster.predict(xgboost.DMatrix(rows))
elif framework == "lightgbm":
    import lightgbm
    out = lightgbm.Booster(model_file=path).predict(rows)
else:
    sys.exit("no offline scorer for framework " + framework)
json.dump(np.asarray(out).tolist(), sys.stdout)
"""


@dataclass
class Score:
    """How one model version did on the labelled rows."""

    metric: str  # accuracy | rmse
    value: float
    rows: int

    def better_than(self, other: Score) -> bool:
        return self.value > other.value if self.metric == "accuracy" else self.value < other.value


def metric_for(labels: list[Any]) -> str:
    """``accuracy`` for class labels (whole numbers, text, booleans), ``rmse`` for other numbers."""
    if all(isinstance(v, str | bool | int) or (isinstance(v, float) and v.is_integer()) for v in labels):
        return "accuracy"
    return "rmse"


def score(predicted: list[Any], labels: list[Any], metric: str) -> float:
    if metric == "accuracy":
        hits = sum(1 for p, y in zip(predicted, labels, strict=True) if _same(p, y))
        return hits / len(labels)
    errors = [(float(p) - float(y)) ** 2 for p, y in zip(predicted, labels, strict=True)]
    return math.sqrt(sum(errors) / len(errors))


def _same(predicted: Any, label: Any) -> bool:
    if isinstance(predicted, int | float) and isinstance(label, int | float):
        return float(predicted) == float(label)
    return str(predicted) == str(label)


def predict_offline(ws: MonitorHost, model: Any, rows: list[list[float]]) -> list[Any]:
    """Predictions of a registered model version (``ModelRef``) for ``rows``, in its serving venv."""
    from workbench.deploy import serving

    runtime = serving.runtime_for(model.framework or serving.guess_framework(model.filename))
    venv = serving.ensure_serve_venv(runtime, model.framework_version)
    with tempfile.TemporaryDirectory(dir=ws.paths.tmp if ws.paths.tmp.is_dir() else None) as tmp:
        path = Path(tmp) / model.filename
        ws.versions.export_object(model.hash, path)
        request = json.dumps({"framework": runtime.framework, "path": str(path), "rows": rows})
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-c", SCORER], input=request, capture_output=True, text=True,
            check=False,
        )
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {result.returncode}"
        raise WorkbenchError(f"cannot score {model.name}:{model.version}: {why[:300]}",
                             "check that the model loads with its recorded framework version")
    answer: list[Any] = json.loads(result.stdout)
    return answer
