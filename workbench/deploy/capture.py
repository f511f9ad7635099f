"""Record every answer of a deployment: a wrapping MLServer runtime written into the model folder.

MLServer has no hook for payloads, so the model folder's ``model-settings.json`` names
:data:`CAPTURE_CLASS` as the implementation and keeps the real runtime (``mlserver_sklearn.SKLearnModel``
...) and the capture settings under ``parameters.extra.workbench_capture``. The wrapper loads the
real runtime, checks each request's shape against the model (``expects 4 features, got 3``), calls
the real ``predict`` and writes one JSON line per answered row:

- on a local replica, appended with a single ``write`` to
  ``.workbench/monitor/spool/<deployment>/r<revision>-<replica>.jsonl`` (``WORKBENCH_SPOOL_DIR`` and
  ``WORKBENCH_REPLICA`` in the replica's environment), then ``r<revision>-<replica>.1.jsonl`` ...
  past :data:`ROTATE_ENV` bytes each: the files survive Workbench not running, and
  :mod:`workbench.monitor.ingest` reads them from offsets and deletes those it has read whole;
- on a cluster pod (no spool variable), printed on stdout after :data:`MARKER`, collected through the
  pod log API (:mod:`workbench.monitor.podlogs`).

The module runs inside the serving venv, where Workbench is not installed: :data:`RUNTIME_SOURCE` uses
only the standard library and MLServer.
"""

from __future__ import annotations

import json
from typing import Any

CAPTURE_MODULE = "workbench_capture"
CAPTURE_CLASS = f"{CAPTURE_MODULE}.CapturingModel"
MARKER = "@@workbench-prediction@@ "
"""Prefix of a prediction line on a pod's stdout."""
SPOOL_ENV = "WORKBENCH_SPOOL_DIR"
REPLICA_ENV = "WORKBENCH_REPLICA"
ROTATE_ENV = "WORKBENCH_SPOOL_ROTATE_BYTES"
"""Start a new spool file past this size (default 64 MiB); passed through to local replicas."""

FIELDS = (
    "deployment",
    "revision",
    "model",
    "version",
    "request_id",
    "row_index",
    "ts",
    "latency_ms",
    "status",
    "error",
    "features",
    "output",
)
"""The keys of one spooled line (the columns of the ``predictions`` table)."""


def spool_line(head: dict[str, Any], features: dict[str, Any], output: Any) -> str:
    """One spool line as the capturing runtime writes it: ``head`` (the small fields), then ``fl``
    (the features' JSON length), ``features`` and ``output`` (see ``ingest.parse_line``)."""
    feats = json.dumps(features, separators=(",", ":"), default=str)
    out = json.dumps(output, separators=(",", ":"), default=str)
    text = json.dumps(head, separators=(",", ":"), default=str)
    return f'{text[:-1]},"fl":{len(feats)},"features":{feats},"output":{out}}}'


def capture_settings(
    settings: dict[str, Any], *, deployment: str, revision: int, rate: float, model: str | None = None,
    signature: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wrap ``model-settings.json`` (as built by ``serving.model_settings``) so it records answers.
    ``model``: the registry's model name (the server knows the model by the deployment's name);
    ``signature``: the input signature every request is checked against (refused with HTTP 400)."""
    wrapped: dict[str, Any] = json.loads(json.dumps(settings))
    params = wrapped.setdefault("parameters", {})
    extra = params.setdefault("extra", {})
    extra["workbench_capture"] = {
        "implementation": wrapped["implementation"],
        "deployment": deployment,
        "revision": revision,
        "model": model or wrapped.get("name", deployment),
        "version": str(params.get("version", "")),
        "rate": rate,
    }
    if signature:
        extra["workbench_capture"]["signature"] = {
            "names": [str(n) for n in signature.get("names") or []],
            "dtypes": [str(d) for d in signature.get("dtypes") or []],
        }
    wrapped["implementation"] = CAPTURE_CLASS
    return wrapped


CORE_SOURCE = r'''
import importlib
import json
import os
import random
import sys
import time
import uuid

MARKER = "@@workbench-prediction@@ "
NUMERIC = ("int", "float", "bool")
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _one_line(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]


def _data(tensor):
    data = getattr(tensor.data, "root", tensor.data)
    return data if isinstance(data, list) else list(data)


def _rows(flat, shape):
    """Split a flat (or nested) list into shape[0] rows."""
    while flat and isinstance(flat[0], list):
        flat = [v for row in flat for v in row]
    count = int(shape[0]) if shape else 1
    if count <= 0:
        return []
    width = max(1, len(flat) // count)
    if width == 1:
        return [[v] for v in flat[:count]] if len(flat) >= count else [flat]
    return [flat[i * width:(i + 1) * width] for i in range(count)]


def _expected_features(model):
    for attr in ("n_features_in_",):
        value = getattr(model, attr, None)
        if isinstance(value, int):
            return value
    for method in ("num_features", "num_feature"):
        fn = getattr(model, method, None)
        if callable(fn):
            try:
                return int(fn())
            except Exception:
                pass
    return None


class Recording:
    """Checks each request against the signature and records each answer; the server's adapter
    below calls :meth:`_setup` once the model is loaded and :meth:`_serve` for every request."""

    def _setup(self, cfg, expects):
        self._expects = expects
        self._rate = float(cfg.get("rate", 1.0))
        base = {k: cfg.get(k) for k in ("deployment", "revision", "model", "version")}
        self._prefix = _dumps(base)[:-1] + ","
        self._signature = cfg.get("signature") or None
        self._names = cfg.get("features") or (self._signature or {}).get("names") or None
        self._what = "%s:%s" % (cfg.get("model"), cfg.get("version"))
        self._spool = os.environ.get("WORKBENCH_SPOOL_DIR")
        self._fd = None
        if self._spool and self._rate > 0:
            os.makedirs(self._spool, exist_ok=True)
            replica = os.environ.get("WORKBENCH_REPLICA", "0")
            self._stem = "r%s-%s" % (cfg.get("revision", 0), replica)
            self._rotate = int(os.environ.get("WORKBENCH_SPOOL_ROTATE_BYTES") or 64 << 20)
            seqs = [0]
            for name in os.listdir(self._spool):  # a restarted server goes on in its newest file
                middle = name[len(self._stem) + 1:-len(".jsonl")]
                if name.startswith(self._stem + ".") and name.endswith(".jsonl") and middle.isdigit():
                    seqs.append(int(middle))
            self._open(max(seqs))

    def _open(self, seq):
        """Append to the spool file number ``seq`` (r1-0.jsonl, r1-0.1.jsonl ...); Workbench deletes
        a file once it has ingested all of it and a newer one exists."""
        if self._fd is not None:
            os.close(self._fd)
        name = self._stem + (".%d" % seq if seq else "") + ".jsonl"
        self._seq = seq
        self._fd = os.open(os.path.join(self._spool, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o664)
        self._size = os.fstat(self._fd).st_size

    def _emit(self, lines):
        if not lines:
            return
        if self._fd is not None:
            self._size += os.write(self._fd, "".join(line + "\n" for line in lines).encode())
            if self._size >= self._rotate:
                self._open(self._seq + 1)
        else:
            sys.stdout.write("".join(MARKER + line + "\n" for line in lines))
            sys.stdout.flush()

    def _features(self, payload):
        """Rows of {name: value} from the request, and the number of features per row."""
        inputs = payload.inputs
        if len(inputs) == 1:
            rows = _rows(_data(inputs[0]), inputs[0].shape)
            width = len(rows[0]) if rows else 0
            names = self._names if self._names and len(self._names) == width else None
            names = names or ["f%d" % i for i in range(width)]
            return [dict(zip(names, row)) for row in rows], width
        columns = [(t.name, _rows(_data(t), t.shape)) for t in inputs]
        count = min(len(c) for _, c in columns) if columns else 0
        rows = [{n: (c[i][0] if len(c[i]) == 1 else c[i]) for n, c in columns} for i in range(count)]
        return rows, len(columns)

    def _line(self, request_id, index, ts, latency, status, error, features, output):
        # Small fields first, then "fl" (the features' JSON length), features and output last:
        # Workbench slices those two out without decoding them (workbench.monitor.ingest).
        feats = _dumps(features)
        return '%s"request_id":%s,"row_index":%d,"ts":%r,"latency_ms":%r,"status":"%s","error":%s,' \
            '"fl":%d,"features":%s,"output":%s}' % (
                self._prefix, _dumps(request_id), index, ts, latency, status, _dumps(error), len(feats),
                feats, _dumps(output))

    def _mismatch(self, payload):
        """Why the request does not match the recorded input signature (one line), or ''."""
        names = list(self._signature["names"])
        dtypes = list(self._signature.get("dtypes") or [])
        numeric = {n for n, d in zip(names, dtypes) if d in NUMERIC}
        inputs = payload.inputs
        if len(inputs) == 1 and not (len(names) == 1 and inputs[0].name in names):
            tensor = inputs[0]  # one matrix: a column per feature
            rows = _rows(_data(tensor), tensor.shape)
            width = len(rows[0]) if rows else 0
            if width != len(names):
                return "expects %d features (%s), got %d" % (len(names), ", ".join(names), width)
            if tensor.datatype == "BYTES" and len(numeric) == len(names):
                return "expects numbers for %s, got BYTES" % ", ".join(names)
            return ""
        got = [t.name for t in inputs]
        missing = [n for n in names if n not in got]
        unknown = [g for g in got if g not in names]
        if missing or unknown:
            words = []
            if missing:
                words.append("missing feature%s %s" % ("s" if len(missing) > 1 else "", ", ".join(missing)))
            if unknown:
                words.append("unknown input%s %s" % ("s" if len(unknown) > 1 else "", ", ".join(unknown)))
            return "%s (expects %s)" % ("; ".join(words), ", ".join(names))
        for tensor in inputs:
            if tensor.name in numeric and tensor.datatype == "BYTES":
                return "feature %s expects numbers, got BYTES" % tensor.name
        counts = {t.name: int(t.shape[0]) if t.shape else 1 for t in inputs}
        if len(set(counts.values())) > 1:
            return "inputs have different row counts (%s)" % ", ".join("%s: %d" % kv for kv in counts.items())
        return ""

    async def _serve(self, payload, call, refuse):
        """Answer ``payload`` with ``await call(payload)``; a request that does not fit the model
        raises ``refuse(one line)``, which the server answers with HTTP 400."""
        if self._signature:
            try:
                problem = self._mismatch(payload)
            except Exception as exc:
                problem = "cannot read the request: " + _one_line(exc)
            if problem:
                problem = "the request does not match %s's input signature: %s" % (self._what, problem)
                if self._rate > 0:
                    self._emit([self._line(payload.id or uuid.uuid4().hex, 0, time.time(), 0.0, "error",
                                           problem, {}, None)])
                raise refuse(problem)
        if self._rate <= 0 or (self._rate < 1 and random.random() >= self._rate):
            return await call(payload)
        ts = time.time()
        start = time.perf_counter()
        request_id = payload.id or uuid.uuid4().hex
        try:
            rows, width = self._features(payload)
        except Exception as exc:
            rows, width = [], None
            error = "cannot read the request: " + _one_line(exc)
        else:
            error = ""
            if self._expects is not None and len(payload.inputs) == 1 and width != self._expects:
                error = "expects %d features, got %d" % (self._expects, width)
        if error:
            latency = (time.perf_counter() - start) * 1000
            first = rows[0] if rows else {}
            self._emit([self._line(request_id, 0, ts, latency, "error", error, first, None)])
            raise refuse(error)
        try:
            response = await call(payload)
        except Exception as exc:
            latency = (time.perf_counter() - start) * 1000
            self._emit([self._line(request_id, 0, ts, latency, "error", _one_line(exc),
                                   rows[0] if rows else {}, None)])
            raise
        latency = (time.perf_counter() - start) * 1000
        response.id = request_id
        outputs = [(o.name, _rows(_data(o), o.shape)) for o in response.outputs]
        lines = []
        for index, features in enumerate(rows):
            answer = {}
            for name, values in outputs:
                value = values[index] if index < len(values) else None
                answer[name] = value[0] if isinstance(value, list) and len(value) == 1 else value
            output = next(iter(answer.values())) if len(answer) == 1 else answer
            lines.append(self._line(request_id, index, ts, latency, "ok", "", features, output))
        self._emit(lines)
        return response
'''

MLSERVER_SOURCE = '''"""Records each request and answer of the wrapped MLServer runtime (by Workbench)."""
from mlserver import MLModel
from mlserver.errors import InferenceError
''' + CORE_SOURCE + '''

class CapturingModel(Recording, MLModel):
    async def load(self):
        extra = (self._settings.parameters.extra or {}) if self._settings.parameters else {}
        cfg = dict(extra.get("workbench_capture") or {})
        module, _, name = cfg["implementation"].rpartition(".")
        self._inner = getattr(importlib.import_module(module), name)(self._settings)
        ready = await self._inner.load()
        self._setup(cfg, _expected_features(getattr(self._inner, "_model", None)))
        return ready

    async def metadata(self):
        return await self._inner.metadata()

    async def predict(self, payload):
        return await self._serve(payload, self._inner.predict, InferenceError)
'''
RUNTIME_SOURCE = MLSERVER_SOURCE
"""The capturing MLServer runtime (``workbench_capture.py`` in a model folder)."""
