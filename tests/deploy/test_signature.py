"""Requests are checked against the model version's input signature (its reference profile's feature
names, count and dtypes) before they reach the model: a mismatch is HTTP 400 with one line saying
what was expected, and ``workbench predict`` shows that line. A real MLServer replica serves here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from tests.deploy.conftest import REQUEST, answers
from workbench.core.workspace import Workspace
from workbench.deploy import local
from workbench.deploy.types import ModelRef
from workbench.errors import DeployError

pytestmark = pytest.mark.slow

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
PREFIX = "the request does not match iris:2's input signature: "


def _tensor(name: str, values: list[Any], datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": [len(values), 1], "datatype": datatype, "data": values}



REFUSED: dict[str, dict[str, Any]] = {
    "expects 4 features (sepal_length, sepal_width, petal_length, petal_width), got 3":
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [5.1, 3.5, 1.4]}]},
    "expects numbers for sepal_length, sepal_width, petal_length, petal_width, got BYTES":
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": list("abcd")}]},
    "missing feature petal_width; unknown input petal_wdth "
    "(expects sepal_length, sepal_width, petal_length, petal_width)":
        {"inputs": [_tensor(n, [1.0]) for n in [*NAMES[:3], "petal_wdth"]]},
}
"""Requests every V2 server behind Workbench refuses with the same reason (MLServer and KServe)."""

def test_requests_that_do_not_match_the_signature_are_refused(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.datasets import load_iris

    from workbench.monitor.profile import build_profile

    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    x, _ = load_iris(return_X_y=True)
    table = {n: x[:, i].tolist() for i, n in enumerate(NAMES)}
    ws.monitor.save_profile("iris", 2, "test", build_profile(table))
    _, v2 = iris_models
    # Capture off: the check does not depend on recording.
    info = ws.deployments.deploy(v2, name="iris", replicas=1, log_predictions=0)
    assert ws.deployments.records.spec_of("iris", info.revision).signature == {
        "names": NAMES, "count": 4, "dtypes": ["float"] * 4}
    url = f"{info.endpoint}/v2/models/iris/infer"
    try:
        assert answers(ws.deployments.predict("iris", REQUEST)) == [0, 2]

        refused = {
            **REFUSED,
            "feature petal_width expects numbers, got BYTES":
                {"inputs": [*(_tensor(n, [1.0]) for n in NAMES[:3]), _tensor("petal_width", ["x"], "BYTES")]},
            "inputs have different row counts (sepal_length: 1, sepal_width: 1, petal_length: 1, "
            "petal_width: 2)": {"inputs": [*(_tensor(n, [1.0]) for n in NAMES[:3]),
                                           _tensor("petal_width", [1.0, 2.0])]},
        }
        for reason, payload in refused.items():
            status, body = local.http_json(url, payload, timeout=30)
            assert (status, body) == (400, {"error": PREFIX + reason}), reason
            with pytest.raises(DeployError) as err:
                ws.deployments.predict("iris", payload)
            assert err.value.one_line().startswith(f"'iris' answered 400: {PREFIX}{reason}")

        res = run_workbench(ws.root, "predict", "iris", "--data", "[[5.1, 3.5, 1.4]]", timeout=120,
                            env={"WORKBENCH_LOCAL_RUNTIME": "process"})
        assert res.returncode != 0 and "Traceback" not in res.stderr
        assert res.stderr.strip().splitlines()[0].startswith(f"error: 'iris' answered 400: {PREFIX}expects 4")
        assert len(res.stderr.strip().splitlines()) == 1
    finally:
        ws.deployments.undeploy("iris")


def test_a_refusal_through_the_cluster_proxy_keeps_the_servers_words() -> None:
    """On a cluster, ``predict`` goes through the API server's service proxy: the model server's
    ``{"error": ...}`` answer is what the user reads, not the proxy's ``Bad Request``."""
    from kubernetes.client.exceptions import ApiException

    from workbench.deploy.kubeapi import api_error

    exc = ApiException(status=400, reason="Bad Request")
    exc.body = '{"error": "' + PREFIX + 'expects 4 features (a, b, c, d), got 3"}'
    line = api_error(exc, "post", "/api/v1/namespaces/ml/services/iris:http/proxy/v2/models/iris/infer",
                     "ml").one_line()
    assert line.endswith(f"failed (400): {PREFIX}expects 4 features (a, b, c, d), got 3")
