"""`workbench import mlflow http://...` against a real MLflow tracking server (mlflow-skinny's
server with Flask) serving the SQLite fixture: the same runs, params, tags and every point as the
store holds, through the REST API. Skipped where the server's packages are not installed."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.core.workspace import Workspace

pytest.importorskip("mlflow.server")
pytest.importorskip("flask_cors")
pytest.importorskip("sqlalchemy")
pytestmark = pytest.mark.slow  # starting an MLflow server takes 10-60 s

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "expected.json").read_text())["sqlite"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    with gzip.open(DATA / "mlflow.db.gz") as src, (root / "mlflow.db").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    for attempt in range(5):  # a port found free can be taken before the server binds it: another
        with socket.socket() as probe:  # port then (the log says "address already in use")
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        log = root / f"server{attempt}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{root / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=root, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
            env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True)
        if _wait_healthy(url, proc):
            break
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
        if "address already in use" not in log.read_text():
            pytest.fail("mlflow server did not start: " + log.read_text()[-2000:])
    else:
        pytest.fail("mlflow server found no free port in 5 tries")
    try:
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    """Whether the server answers /health before it exits (or 180 s pass)."""
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return proc.poll() is None  # our server, not one that took the port and died
        except OSError:
            pass
        time.sleep(0.2)
    return False


def test_server_runs_imported_through_the_rest_api(server: str, ws: Workspace, cli: Any) -> None:
    result = cli(ws.root, "import", "mlflow", server, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["runs_new"] == len(EXPECTED["runs"])
    for source_id, want in EXPECTED["runs"].items():
        run = ws.runs.get(report["run_ids"][source_id])
        assert run.name == want["name"]
        assert run.params == want["params"]
        assert run.tags["team"] == want["tags"]["team"] and run.tags["experiment"] == "iris"
        assert {k: m.last for k, m in run.metrics.items()} == want["metrics"]
        assert run.metrics["loss"].count == want["loss_points"]
        assert run.started_at == pytest.approx(want["start_time"] / 1000)
    again = json.loads(cli(ws.root, "import", "mlflow", server, "--json").out)
    assert (again["runs_new"], again["points"]) == (0, 0)
