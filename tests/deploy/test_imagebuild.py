"""A serving image built offline (generated Containerfile, ``docker build``) for the model's exact
framework version: it declares the version in a label the deploy check reads back, and it serves the
model the way a cluster pod runs it (``mlserver start /mnt/models``, an arbitrary uid in group 0,
read-only root, the model folder mounted read-only)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REQUEST, answers
from tests.deploy.test_docker import docker_client  # noqa: F401  (a fixture)
from workbench.core.workspace import Workspace
from workbench.deploy import imagebuild, images, local, serving
from workbench.deploy.types import ModelRef
from workbench.errors import DeployError

pytestmark = pytest.mark.slow


def test_built_image_declares_its_framework_and_serves_like_a_pod(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, docker_client: Any,  # noqa: F811
) -> None:
    import sklearn

    runtime = serving.runtime_for("sklearn")
    tag = imagebuild.image_tag("", runtime, sklearn.__version__)
    assert tag == f"workbench-serve:sklearn-{sklearn.__version__}-mlserver{serving.MLSERVER_VERSION}"
    frameworks = imagebuild.build(docker_client, serve_venv, runtime, sklearn.__version__, tag=tag,
                                  base=local.local_image())
    container = None
    try:
        assert frameworks == {"scikit-learn": sklearn.__version__}
        assert imagebuild.frameworks_of(docker_client, tag) == frameworks
        built = docker_client.images.get(tag).id  # built once per machine: the same build is reused
        imagebuild.build(docker_client, serve_venv, runtime, sklearn.__version__, tag=tag,
                         base=local.local_image())
        assert docker_client.images.get(tag).id == built
        # Bytecode is in the image: a pod (read-only root) would otherwise compile it at every start.
        probe = ("import importlib.util, os, sklearn, mlserver; "
                 "print(all(os.path.exists(importlib.util.cache_from_source(m.__file__)) "
                 "for m in (sklearn, mlserver)))")
        out = docker_client.containers.run(tag, ["python3", "-c", probe], remove=True, network_mode="none")
        assert out.decode().strip() == "True"
        # The deploy check accepts this image for the model, and refuses it for another version.
        images.check(tag, frameworks, "scikit-learn", sklearn.__version__, "iris:2")
        with pytest.raises(DeployError, match="has scikit-learn"):
            images.check(tag, frameworks, "scikit-learn", "0.24.2", "iris:1")

        _, v2 = iris_models
        folder = ws.root / "served"
        folder.mkdir()
        (folder / v2.filename).write_bytes((ws.root / v2.path).read_bytes())
        serving.write_model_folder(folder, "iris", "2", v2.filename, runtime)
        http, grpc, metrics = local.free_ports(3)
        env = serving.server_env(http, grpc, metrics, scratch="/tmp")
        container = docker_client.containers.run(
            tag, ["mlserver", "start", serving.MODEL_MOUNT], detach=True, user="1000770000:0",
            read_only=True, tmpfs={"/tmp": "rw,mode=1777"}, network_mode="host", environment=env,
            cap_drop=["ALL"], security_opt=["no-new-privileges"],
            volumes={str(folder): {"bind": serving.MODEL_MOUNT, "mode": "ro"}},
        )
        url = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/models/iris/ready", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            container.reload()
            assert container.status == "running", container.logs()[-2000:].decode(errors="replace")
            assert time.monotonic() < deadline, "the built image's server never became ready"
            time.sleep(0.2)
        status, body = local.http_json(f"{url}/v2/models/iris/infer", json.loads(json.dumps(REQUEST)))
        assert status == 200 and answers(body) == [0, 2]
    finally:
        if container is not None:
            container.remove(force=True)
