"""A cluster deployment whose pods really run: on the cluster double with a Docker-backed kubelet, each
replica's init container fetches the model version from the project's S3 remote (SeaweedFS) and
verifies it, MLServer serves it in the built serving image under OpenShift's arbitrary uid, and
``workbench predict``'s path (the API server's service proxy) reaches it over the pod network. When a
node fails, its replica is replaced on another node and the deployment keeps answering.
"""

from __future__ import annotations

import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import docker_unavailable
from tests.deploy.conftest import REQUEST, answers
from tests.deploy.test_delivery import seaweed  # noqa: F401  (a fixture)
from tests.executors.conftest import IMAGE, docker_client  # noqa: F401  (a fixture)
from tests.kube.controllers import ClusterDouble, ready
from tests.kube.docker_kubelet import DockerKubelet, close_cluster
from tests.remote.servers import Seaweed, s3_env
from workbench.core.workspace import Workspace
from workbench.deploy import cluster as cluster_mod
from workbench.deploy import imagebuild, local, serving
from workbench.deploy.types import ModelRef

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NS = "ml"
SELECTOR = {"app.kubernetes.io/name": "iris"}


class Forward(socketserver.ThreadingTCPServer):
    """A TCP forwarder from the pod network's gateway to a server on the host's loopback (the
    cluster's way out to an S3 endpoint outside it)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.target = target
        super().__init__((host, 0), _Pipe)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: Any = self.server
        with socket.create_connection(server.target) as upstream:
            def pump(src: socket.socket, dst: socket.socket) -> None:
                try:
                    while data := src.recv(65536):
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join(60)


@pytest.fixture(scope="module")
def serve_image(docker_client: Any, serve_venv: Path) -> str:  # noqa: F811
    import sklearn

    runtime = serving.runtime_for("sklearn")
    tag = imagebuild.image_tag("", runtime, sklearn.__version__)
    imagebuild.build(docker_client, serve_venv, runtime, sklearn.__version__, tag=tag,
                     base=local.local_image())
    return tag


@pytest.fixture
def cluster(tmp_path: Path, docker_client: Any, ws: Workspace,  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> Iterator[ClusterDouble]:
    from kubernetes.config import kube_config

    try:
        network = docker_client.networks.create(f"wbk-pods-{secrets.token_hex(4)}", driver="bridge")
    except Exception as exc:  # a daemon that cannot make bridges cannot give pods their own IPs
        docker_unavailable(f"cannot create a Docker bridge network for pod IPs: {exc}")
    monkeypatch.setattr(cluster_mod, "POLL", 0.1)

    def kubelet(double: ClusterDouble, node: str) -> DockerKubelet:
        return DockerKubelet(double, node, client=docker_client, network=network.name,
                             sandbox_image=IMAGE)

    double = ClusterDouble(tmp_path / "cluster", NS, kubelet=kubelet)
    path = str(double.kubeconfig(tmp_path / "kubeconfig", NS))
    monkeypatch.setenv("KUBECONFIG", path)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", path)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for name in ("node-a", "node-b", "node-c"):
        double.add_node(name)
    network.reload()
    double.gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    try:
        yield double
    finally:
        try:
            close_cluster(double, docker_client)
        finally:
            network.remove()


def test_replicas_fetch_serve_and_survive_a_node_failure(
        ws: Workspace, cluster: ClusterDouble, seaweed: Seaweed,  # noqa: F811
        iris_models: tuple[ModelRef, ModelRef], serve_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn

    for key, value in s3_env(seaweed.endpoint).items():
        monkeypatch.setenv(key, value)
    port = int(seaweed.endpoint.rsplit(":", 1)[1])
    forward = Forward(cluster.gateway, ("127.0.0.1", port))
    try:
        ws.remote.add("origin", "s3://models/pods", endpoint_url=seaweed.endpoint)
        ws.config.deploy.remote_endpoint = f"http://{cluster.gateway}:{forward.server_address[1]}"
        _, v2 = iris_models
        frameworks = [f"scikit-learn=={sklearn.__version__}"]
        info = ws.deployments.deploy(v2, name="iris", target="kubernetes", namespace=NS, replicas=2,
                                     image=serve_image, image_frameworks=frameworks, timeout=120)
        assert (info.state, info.replicas) == ("available", 2), info
        pods = cluster.pods(SELECTOR)
        assert len({p["spec"]["nodeName"] for p in pods}) == 2  # spread over two nodes
        fetched = [p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods]
        assert fetched == [0, 0]
        for _ in range(4):  # through the service proxy, to each replica in turn
            assert answers(ws.deployments.predict("iris", REQUEST)) == [0, 2]

        # A node dies: its replica goes out of the Service at once and is replaced on the third node.
        lost = pods[0]["spec"]["nodeName"]
        survivor = pods[1]["metadata"]["name"]
        cluster.fail_node(lost)
        cluster.wait_for(f"{lost}'s pod out of the endpoints", lambda: all(
            p["metadata"]["name"] == survivor or p["spec"].get("nodeName") != lost
            for p in cluster.pods(SELECTOR) if ready(p)))
        failures = 0
        answered = 0
        deadline = time.monotonic() + 240
        while True:  # keep asking while the replacement fetches its model and starts
            try:
                assert answers(ws.deployments.predict("iris", REQUEST)) == [0, 2]
                answered += 1
            except Exception:
                failures += 1
            status = cluster_mod.ClusterTarget.connect("kubernetes", NS).status("iris")
            placed = {p["spec"].get("nodeName") for p in cluster.pods(SELECTOR)}
            if status.state == "complete" and status.ready == 2 and lost not in placed and answered >= 5:
                break
            assert time.monotonic() < deadline, f"no recovery: {status}, {placed}"
        assert failures == 0 and len(placed) == 2
    finally:
        forward.shutdown()
        forward.server_close()


def test_an_image_that_cannot_be_pulled_is_named_in_the_rollout(cluster: ClusterDouble) -> None:
    from tests.deploy.test_cluster import fetch
    from tests.deploy.test_cluster_nodes import FETCHED, spec, target

    t = target(cluster)
    s = spec(1, image="registry.example/serving:missing")
    status, _ = t.apply(s, 1, t.render(s, 1, FETCHED), fetch, 3, credentials={})
    assert status.state == "failed"
    assert any(r.startswith("pod iris-") and "cannot pull image registry.example/serving:missing" in r
               for r in status.reasons), status
