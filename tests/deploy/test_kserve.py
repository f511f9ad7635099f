"""The second model server for real: KServe's ModelServer serving scikit-learn models trained here,
through the same front door, signature check and capture as MLServer, chosen by configuration.

One deployment per server of the same model version: both answer the same V2 requests with the same
outputs, and refuse the same bad requests with the same one-line 400. The KServe deployment then
rolls out a new version and back with a client hammering its endpoint (zero failed requests), has a
replica killed (the supervisor restarts it on its port), and its answers are captured for monitoring.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from tests.deploy.conftest import REQUEST, answers
from tests.deploy.test_docker import docker_client  # noqa: F401  (fixture)
from tests.deploy.test_frontdoor import Hammer, _runtime
from tests.deploy.test_signature import NAMES, PREFIX, REFUSED
from workbench.core.workspace import Workspace
from workbench.deploy import frontdoor, local, servers, serving
from workbench.deploy.types import ModelRef
from workbench.errors import DeployError, UsageError

pytestmark = pytest.mark.slow

BAD = REFUSED  # the same refusals as MLServer's, word for word


@pytest.fixture(scope="session")
def kserve_venv() -> Path:
    """The real KServe serving venv for this scikit-learn (about two minutes the first time, cached)."""
    import sklearn

    return servers.ensure_venv(servers.get("kserve"), serving.runtime_for("sklearn"), sklearn.__version__)


def _wait_restarted(ws: Workspace, victim: local.Replica) -> local.Replica:
    deadline = time.monotonic() + 120
    while True:
        current = local.Replica.from_json(_runtime(ws)["replicas"][0])
        if current.pid != victim.pid and local.is_ready("iris", current):
            return current
        assert time.monotonic() < deadline, "the killed replica was not restarted"
        time.sleep(0.1)


def test_kserve_serves_like_mlserver_behind_the_same_front_door(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, kserve_venv: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.datasets import load_iris

    from workbench.monitor.profile import build_profile

    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    x, _ = load_iris(return_X_y=True)
    profile = build_profile({n: x[:, i].tolist() for i, n in enumerate(NAMES)})
    ws.monitor.save_profile("iris", 1, "test", profile)
    ws.monitor.save_profile("iris", 2, "test", profile)
    v1, v2 = iris_models
    dep = ws.deployments
    ws.config.deploy.server = "kserve"  # [deploy] server picks it; --server mlserver overrides
    info = dep.deploy(v2, name="iris")  # one replica: every KServe start costs seconds (import kserve)
    mirror = dep.deploy(v2, name="iris-ml", server="mlserver")
    try:
        assert dep.records.spec_of("iris", info.revision).server == "kserve"
        assert dep.records.spec_of("iris-ml", mirror.revision).server == "mlserver"
        assert (info.server, mirror.server) == ("kserve", "mlserver")  # deployments --json shows it
        replicas = [local.Replica.from_json(r) for r in _runtime(ws)["replicas"]]
        assert {r.server for r in replicas} == {"kserve"}
        assert all(b"workbench_kserve" in Path(f"/proc/{r.pid}/cmdline").read_bytes() for r in replicas)

        # The same answers, to the byte that matters, from both servers through their front doors.
        for request in (REQUEST, {**REQUEST, "outputs": [{"name": "predict_proba"}]}):
            ours, theirs = (local.http_json(f"{i.endpoint}/v2/models/{n}/infer", request)
                            for i, n in ((info, "iris"), (mirror, "iris-ml")))
            assert ours[0] == theirs[0] == 200
            keep = ("name", "shape", "datatype", "data")
            assert [{k: o[k] for k in keep} for o in ours[1]["outputs"]] == [
                {k: o[k] for k in keep} for o in theirs[1]["outputs"]]
        assert answers(dep.predict("iris", REQUEST)) == [0, 2]

        # The same refusals: HTTP 400 with one line, and the same words from 'predict'.
        for reason, payload in BAD.items():
            for name, endpoint in (("iris", info.endpoint), ("iris-ml", mirror.endpoint)):
                status, body = local.http_json(f"{endpoint}/v2/models/{name}/infer", payload)
                assert (status, body) == (400, {"error": PREFIX + reason}), (name, reason)
            with pytest.raises(DeployError) as err:
                dep.predict("iris", payload)
            assert err.value.one_line().startswith(f"'iris' answered 400: {PREFIX}{reason}")
        res = run_workbench(ws.root, "predict", "iris", "--data", "[[5.1, 3.5, 1.4]]", timeout=120,
                            env={"WORKBENCH_LOCAL_RUNTIME": "process"})
        assert res.returncode != 0 and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and f"400: {PREFIX}expects 4" in res.stderr
        dep.undeploy("iris-ml")

        # Rollout and rollback under load: zero failed requests, one endpoint.
        hammer = Hammer(info.endpoint)
        hammer.start()
        try:
            hammer.wait_for(10)
            ws.config.deploy.server = "mlserver"  # a new version keeps the server the deployment runs
            assert dep.deploy(v1, name="iris").endpoint == info.endpoint
            hammer.wait_for(10)
            assert dep.rollback("iris").endpoint == info.endpoint
            hammer.wait_for(10)
        finally:
            hammer.stop.set()
            hammer.join(timeout=60)
        assert hammer.failures == [] and hammer.seen == {(0, 0), (0, 2)}
        # The supervisor restarts a killed KServe replica on its own port (with one replica requests
        # fail meanwhile: tests/deploy/test_frontdoor.py shows none do with several).
        victim = local.Replica.from_json(_runtime(ws)["replicas"][0])
        os.kill(victim.pid, signal.SIGKILL)
        current = _wait_restarted(ws, victim)
        assert (current.http_port, current.server) == (victim.http_port, "kserve")
        assert answers(dep.predict("iris", REQUEST)) == [0, 2]
        # Metrics from KServe's own series on its HTTP port; it counts no errors: the rate is unknown.
        snap = dep.metrics("iris")
        assert snap.replicas_scraped == 1 and snap.requests_total >= 1
        assert snap.latency_p50 is not None and snap.error_rate is None
        assert [(r.action, r.version) for r in dep.history("iris")] == [
            ("deploy", "2"), ("deploy", "1"), ("rollback", "2")]
        assert {dep.records.spec_of("iris", r.revision).server for r in dep.history("iris")} == {"kserve"}

        # Every answer was captured for monitoring, refusals as errors.
        assert ws.predictions.ingest().added > 0
        rows = ws.predictions.query("iris", newest_first=False)
        assert {r.status for r in rows} == {"ok", "error"}
        ok = next(r for r in rows if r.status == "ok")
        assert set(ok.features) == set(NAMES) and ok.output in (0, 2)
        assert any(r.error == PREFIX + next(iter(BAD)) for r in rows)
    finally:
        door = int(_runtime(ws)["frontdoor"]["pid"])
        replicas = [local.Replica.from_json(r) for r in _runtime(ws)["replicas"]]
        dep.undeploy("iris")
        row = dep.records.find("iris-ml")
        if row is not None and row["state"] != "undeployed":
            dep.undeploy("iris-ml")
    assert not frontdoor.running(door) and not any(local.alive(r) for r in replicas)


def test_kserve_serves_scikit_learn_only(ws: Workspace) -> None:
    with pytest.raises(UsageError) as err:
        servers.get("kserve").check(serving.runtime_for("xgboost"))
    line = err.value.one_line()
    assert line.startswith("the kserve server serves scikit-learn models here, not xgboost (")
    assert "--server mlserver" in line and "\n" not in line
    with pytest.raises(UsageError, match="unknown model server 'triton'"):
        servers.get("triton")


def test_kserve_in_docker_under_restricted_rules(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], kserve_venv: Path, docker_client: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KServe's venv mounted read-only onto the base image's Python, as MLServer's is: an arbitrary
    uid in group 0, a read-only root; it answers and its answers are captured through the spool."""
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "docker")
    info = ws.deployments.deploy(iris_models[1], name="iris", server="kserve", timeout=180)
    try:
        (replica,) = [local.Replica.from_json(r) for r in _runtime(ws)["replicas"]]
        assert (replica.kind, replica.server) == ("docker", "kserve")
        attrs = docker_client.containers.get(replica.container).attrs
        assert attrs["Config"]["User"] == local.DOCKER_USER and attrs["HostConfig"]["ReadonlyRootfs"]
        assert answers(ws.deployments.predict("iris", REQUEST)) == [0, 2]
        assert info.endpoint and ws.predictions.ingest().added == 2
    finally:
        ws.deployments.undeploy("iris")
    assert local._container_state(replica.container) == "missing"
