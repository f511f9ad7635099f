"""A Docker daemon that stops answering mid-launch is one line, and the container it may still
create is removed. The daemon here is a stand-in on loopback that speaks just enough of the Engine
API (ping, image inspect) and never answers a container create: the fault cannot be made to happen
on demand with the real daemon."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.core.workspace import Workspace
from workbench.errors import ExecutorError
from workbench.executors.base import LaunchSpec


class _Stuck(BaseHTTPRequestHandler):
    seen: list[str] = []
    release = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: object, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        if self.path.endswith("/_ping"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        elif "/images/" in self.path:
            self._answer({"Id": "sha256:" + "0" * 64, "RepoDigests": [], "Config": {}})
        else:
            self._answer({"message": "not here"}, 404)

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path}")
        if "/containers/create" in self.path:
            self.release.wait(60)  # the client gives up long before
        self._answer({"message": "late"}, 500)

    def do_DELETE(self) -> None:
        self.seen.append(f"DELETE {self.path}")
        self._answer({}, 204)


@pytest.fixture
def stuck_daemon() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stuck)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    _Stuck.release.set()
    server.shutdown()


def test_a_daemon_that_stops_answering_is_one_line_and_leaves_no_container(
    ws: Workspace, stuck_daemon: str
) -> None:
    import docker

    from workbench.executors.docker import DockerExecutor, container_name

    executor = DockerExecutor(ws)
    executor._client = docker.DockerClient(base_url=stuck_daemon, timeout=2, version="1.41")
    snapshot = ws.versions.snapshot("in", "manual").id
    spec = LaunchSpec(job_id="stuck1", command=["python3", "-c", "pass"], project_root=ws.root,
                      input_snapshot=snapshot, image="workbench-python:bookworm")
    with pytest.raises(ExecutorError) as caught:
        executor.launch(spec)
    line = caught.value.one_line()
    assert "\n" not in line and line.startswith("the Docker daemon did not answer (ReadTimeout)")
    assert any(s.startswith("DELETE") and container_name("stuck1") in s for s in _Stuck.seen), _Stuck.seen
    assert not (ws.paths.runs / "stuck1" / "docker").exists()
