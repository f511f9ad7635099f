"""The KServe side of the model server: a ``kserve.ModelServer`` script written into the model folder.

KServe publishes no scikit-learn server on PyPI (its ``sklearnserver`` ships only inside its images),
so :data:`SOURCE` is a small one on ``kserve.Model``, written as ``workbench_kserve.py`` beside the
model and run as ``python workbench_kserve.py`` (locally from the ``serve-kserve`` venv; on a cluster
from KServe's ``sklearnserver`` image, which has ``kserve``, scikit-learn and joblib). It answers
V2 ``infer`` the way MLServer's scikit-learn runtime does (output ``predict``, ``predict_proba`` or
``transform``; shape ``[rows, 1]`` for a vector; ``content_type: np``), so a client cannot tell the
two apart, and it shares the capturing runtime's core (:data:`workbench.deploy.capture.CORE_SOURCE`):
the same signature check (HTTP 400, one line) and the same prediction records.

Settings come from ``kserve-settings.json`` beside it (:func:`settings`); the server listens on
``WORKBENCH_KSERVE_HOST`` (default ``0.0.0.0``, KServe's own; a local replica sets ``127.0.0.1``).
"""

from __future__ import annotations

import json
from typing import Any

from workbench.deploy import capture

MODULE = "workbench_kserve"
SETTINGS_FILE = "kserve-settings.json"
HOST_ENV = "WORKBENCH_KSERVE_HOST"


def settings(name: str, version: str, filename: str, *, revision: int, log_rate: float,
             model: str | None, signature: dict[str, Any] | None) -> str:
    """``kserve-settings.json``: the model file, and the capture/signature settings (rate 0: none)."""
    base: dict[str, Any] = {"name": name, "implementation": "", "parameters": {"version": str(version)}}
    cfg = capture.capture_settings(base, deployment=name, revision=revision, rate=log_rate, model=model,
                                   signature=signature)["parameters"]["extra"]["workbench_capture"]
    cfg.pop("implementation", None)
    return json.dumps({"name": name, "version": str(version), "uri": filename, "capture": cfg}, indent=2)


_HEAD = '''"""Serves a scikit-learn model with KServe's ModelServer, V2 protocol (written by Workbench)."""
import os

import joblib
import kserve
import numpy as np
from kserve import InferOutput, InferResponse
from kserve.errors import InvalidInput
'''

_TAIL = '''

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUTS = ("predict", "predict_proba", "transform")
DATATYPES = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}


def _matrix(payload):
    """One tensor: a matrix as its shape says; several: one column each (a DataFrame)."""
    inputs = payload.inputs
    if len(inputs) == 1:
        return inputs[0].as_numpy()
    import pandas as pd
    return pd.DataFrame({t.name: t.as_numpy().reshape(len(t.as_numpy()), -1)[:, 0] for t in inputs})


def _output(name, value):
    """Encoded as MLServer's NumpyCodec does: a vector is [rows, 1]."""
    array = np.asarray(value)
    shape = list(array.shape) if array.ndim > 1 else [len(array), 1]
    datatype = DATATYPES.get(array.dtype.kind, "BYTES")
    data = array.reshape(-1).tolist()
    if datatype == "BYTES":
        data = [str(v) for v in data]
    return InferOutput(name=name, shape=shape, datatype=datatype, data=data,
                       parameters={"content_type": "np"})


class WorkbenchModel(Recording, kserve.Model):
    def __init__(self, cfg):
        kserve.Model.__init__(self, cfg["name"])
        self._cfg = cfg
        self.load()

    def load(self):
        self._model = joblib.load(os.path.join(HERE, self._cfg["uri"]))
        self._setup(dict(self._cfg.get("capture") or {"rate": 0}), _expected_features(self._model))
        self.ready = True
        return True

    async def predict(self, payload, headers=None, response_headers=None):
        return await self._serve(payload, self._infer, InvalidInput)

    async def _infer(self, payload):
        wanted = [o.name for o in (payload.request_outputs or [])] or ["predict"]
        for name in wanted:
            if name not in OUTPUTS:
                raise InvalidInput("only %s can be asked for (%s was)" % (", ".join(OUTPUTS), name))
        x = _matrix(payload)
        outputs = [_output(name, getattr(self._model, name)(x)) for name in wanted]
        return InferResponse(response_id=payload.id or uuid.uuid4().hex, model_name=self.name,
                             model_version=self._cfg.get("version"), infer_outputs=outputs)


def _bind(host):
    """KServe's REST server always listens on 0.0.0.0: make it listen on ``host``."""
    import uvicorn
    from kserve.protocol.rest import server as rest

    class Config(uvicorn.Config):
        def __init__(self, *args, **kwargs):
            kwargs["host"] = host
            super().__init__(*args, **kwargs)

    rest.uvicorn.Config = Config


if __name__ == "__main__":
    with open(os.path.join(HERE, "kserve-settings.json"), encoding="utf-8") as f:
        settings = json.load(f)
    host = os.environ.get("WORKBENCH_KSERVE_HOST", "0.0.0.0")
    if host != "0.0.0.0":
        _bind(host)
    kserve.ModelServer().start([WorkbenchModel(settings)])
'''

SOURCE = _HEAD + capture.CORE_SOURCE + _TAIL
"""``workbench_kserve.py``: the model, the shared capture core, and the server's entry point."""
