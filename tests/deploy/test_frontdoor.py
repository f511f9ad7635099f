"""The local target behaves like a small cluster: one stable endpoint, zero failed requests while a
new version rolls out or is rolled back, and a crashed replica restarted on its own port.

Real MLServer replicas, a real front door process, and a client hammering the endpoint over
keep-alive connections (as a load generator or an application would) the whole time.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REQUEST, answers
from workbench.core.workspace import Workspace
from workbench.deploy import frontdoor, local
from workbench.deploy.types import ModelRef
from workbench.errors import DeployError

pytestmark = pytest.mark.slow


class Hammer(threading.Thread):
    """Sends the request in a loop over one keep-alive connection; counts answers and failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.port = int(url.rsplit(":", 1)[1])
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.seen: set[tuple[int, ...]] = set()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = json.dumps(REQUEST)
        while not self.stop.is_set():
            try:
                conn.request("POST", "/v2/models/iris/infer", body=body,
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                continue
            if response.status != 200:
                self.failures.append(f"{response.status}: {data[:200]!r}")
                continue
            self.ok += 1
            self.seen.add(tuple(answers(json.loads(data))))
        conn.close()

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        target = self.ok + count
        while self.ok < target:
            assert time.monotonic() < deadline, f"only {self.ok} answers; failures {self.failures[:3]}"
            time.sleep(0.02)


def _runtime(ws: Workspace) -> dict[str, Any]:
    row = ws.db.execute("SELECT runtime FROM deployments WHERE name='iris'").fetchone()
    data: dict[str, Any] = json.loads(row[0])
    return data


def test_stable_endpoint_zero_failed_requests_and_restarts(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    v1, v2 = iris_models
    dep = ws.deployments
    info = dep.deploy(v1, name="iris", replicas=2)
    endpoint = info.endpoint
    door_pid = int(_runtime(ws)["frontdoor"]["pid"])
    hammer = Hammer(endpoint)
    hammer.start()
    try:
        hammer.wait_for(20)
        assert dep.deploy(v2, name="iris").endpoint == endpoint  # new version, same port
        hammer.wait_for(20)
        assert dep.rollback("iris").endpoint == endpoint
        hammer.wait_for(20)
        assert dep.scale("iris", 3).endpoint == endpoint
        hammer.wait_for(20)
        assert hammer.seen == {(0, 0), (0, 2)}  # both versions answered through the one endpoint
        assert hammer.failures == []
        assert int(_runtime(ws)["frontdoor"]["pid"]) == door_pid  # one front door all along

        # A crashed replica is started again on its own port; no request fails meanwhile.
        victim = local.Replica.from_json(_runtime(ws)["replicas"][0])
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while True:
            current = local.Replica.from_json(_runtime(ws)["replicas"][0])
            if current.pid != victim.pid and local.is_ready("iris", current):
                break
            assert time.monotonic() < deadline, "the killed replica was not restarted"
            time.sleep(0.1)
        assert (current.http_port, current.index) == (victim.http_port, victim.index)
        hammer.wait_for(20)
        assert dep.get("iris").ready == 3
        assert hammer.failures == []
        assert answers(dep.predict("iris", REQUEST)) == [0, 0]  # predict goes through the door too
    finally:
        hammer.stop.set()
        hammer.join(timeout=60)
        dep.undeploy("iris")
    assert not frontdoor.running(door_pid)
    assert not frontdoor.reload(int(endpoint.rsplit(":", 1)[1]), timeout=2)


def test_port_is_chosen_and_a_busy_port_is_one_line(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    v1, _ = iris_models
    port = local.free_port()
    info = ws.deployments.deploy(v1, name="iris", port=port)
    try:
        assert info.endpoint == f"http://127.0.0.1:{port}"
        status, body = local.http_json(f"{info.endpoint}/v2/models/iris/infer", REQUEST)
        assert status == 200 and answers(body) == [0, 0]
    finally:
        ws.deployments.undeploy("iris")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(DeployError) as err:
            ws.deployments.deploy(v1, name="other", port=taken)
    assert f"could not start on port {taken}" in err.value.one_line()
    assert ws.deployments.get("other").state == "failed"
