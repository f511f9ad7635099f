"""An MLflow tracking server, read through its REST API (``/api/2.0/mlflow/...``) with the standard
library: experiments/search, runs/search (params, tags and latest metrics per page of runs),
metrics/get-history per key, registered-models/search and model-versions/search. Credentials come
from the variables MLflow's own client reads (``MLFLOW_TRACKING_TOKEN``, or
``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``) and are never printed. Artifacts are
not downloaded over the API: a model version whose files are on a path this machine sees is
registered, others are listed as not found."""

from __future__ import annotations

import base64
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from workbench.importers.mlflow_common import PARENT_TAG, local_path, split_tags, status_of
from workbench.importers.model import ImportSourceError, ModelFile, Series, Source, SourceRun

TIMEOUT = 60.0
PAGE = 1000
HISTORY_PAGE = 25_000


class Client:
    """A minimal JSON client for one server."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.headers = {"Content-Type": "application/json", "User-Agent": "workbench-import"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body, doseq=True)
        elif body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise ImportSourceError(f"MLflow server {self.base} answered {exc.code} to {path}: {detail}",
                                    "check the URI and MLFLOW_TRACKING_TOKEN/USERNAME/PASSWORD") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ImportSourceError(f"cannot reach the MLflow server {self.base} ({exc})",
                                    "check the URI and that the server is running") from None
        return answer if isinstance(answer, dict) else {}

    def pages(self, method: str, path: str, body: dict[str, Any], field: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            answer = self.call(method, path, {**body, **({"page_token": token} if token else {})})
            yield from answer.get(field) or []
            token = answer.get("next_page_token")
            if not token:
                return


def _history(client: Client, run_id: str, keys: list[str]) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for key in keys:
        series = out[key] = Series()
        query = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
        for point in client.pages("GET", "metrics/get-history", query, "metrics"):
            value = point.get("value")
            number = math.nan if value in ("NaN", None) else float(value)
            series.add(int(point.get("step") or 0), int(point.get("timestamp") or 0) / 1000.0, number)
    return out


def open_server(uri: str) -> Source:
    client = Client(uri)
    experiments = {str(e["experiment_id"]): str(e.get("name") or e["experiment_id"])
                   for e in client.pages("POST", "experiments/search", {"max_results": PAGE}, "experiments")}
    if not experiments:
        raise ImportSourceError(f"the MLflow server {uri} lists no experiments", "check the tracking URI")
    listed = list(client.pages("POST", "runs/search",
                               {"experiment_ids": sorted(experiments), "max_results": PAGE}, "runs"))

    def runs() -> Iterator[SourceRun]:
        for run in listed:
            info, data = run.get("info") or {}, run.get("data") or {}
            run_id = str(info.get("run_id") or info.get("run_uuid"))
            tags = {t["key"]: str(t.get("value", "")) for t in data.get("tags") or []}
            name, tags = split_tags(tags)
            keys = sorted({m["key"] for m in data.get("metrics") or []})
            yield SourceRun(
                kind="mlflow", source_id=run_id, name=str(info.get("run_name") or name or run_id),
                status=status_of(info.get("status")), started_at=int(info.get("start_time") or 0) / 1000.0,
                ended_at=int(info["end_time"]) / 1000.0 if info.get("end_time") else None,
                params={p["key"]: str(p.get("value", "")) for p in data.get("params") or []},
                tags={**tags, "experiment": experiments.get(str(info.get("experiment_id")), "")},
                parent_id=tags.get(PARENT_TAG),
                load_metrics=partial(_history, client, run_id, keys),
                artifacts=local_path(str(info.get("artifact_uri") or ""), [Path.cwd()]),
            )

    def models() -> list[ModelFile]:
        found = []
        try:
            registered = list(client.pages("GET", "registered-models/search", {"max_results": 1000},
                                           "registered_models"))
        except ImportSourceError:
            return []  # a server without a registry
        for model in registered:
            name = str(model["name"])
            aliases: dict[int, list[str]] = {}
            for alias in model.get("aliases") or []:
                aliases.setdefault(int(alias["version"]), []).append(str(alias["alias"]))
            quoted = name.replace("'", "\\'")
            query = {"filter": f"name='{quoted}'", "max_results": 1000}
            for version in client.pages("GET", "model-versions/search", query, "model_versions"):
                number = int(version["version"])
                where = local_path(version.get("storage_location") or version.get("source"), [Path.cwd()])
                found.append(ModelFile(name, number, where, version.get("run_id") or None,
                                       aliases.get(number, [])))
        return found

    return Source("mlflow", uri, len(listed), runs, models)
