"""The server behind the V2 protocol is configuration: what each server renders, installs and refuses.

Fast checks without a running server (tests/deploy/test_kserve.py runs one): the cluster manifests of
a KServe deployment (image, command, ports, ServingRuntime) pass their schemas; undeclared default
images are checked against the model's framework version before rollout; a bad choice is one line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from tests.deploy.test_manifests import DELIVERY, spec
from workbench.config import ProjectConfig, load_config
from workbench.core.workspace import Workspace
from workbench.deploy import images, kserve_runtime, manifests, servers, serving
from workbench.deploy.types import DeploySpec
from workbench.errors import ConfigError, DeployError


def kserve_spec(**changes: object) -> DeploySpec:
    return DeploySpec(**{**spec().__dict__, "server": "kserve", **changes})


def test_a_kserve_deployment_renders_kserves_image_and_our_server_script() -> None:
    s = kserve_spec()
    plain = manifests.render(s, 1, openshift=True, kserve=False, ingress_class=None, delivery=DELIVERY)
    on_kserve = manifests.render(s, 1, openshift=False, kserve=True, ingress_class=None, delivery=DELIVERY)
    for obj in [*plain, *on_kserve]:
        manifests.validate(obj)
    dep = next(o for o in plain if o["kind"] == "Deployment")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "kserve" and container["image"] == servers.KSERVE_IMAGE
    assert container["command"] == ["python", f"{serving.MODEL_MOUNT}/workbench_kserve.py", "--model_name",
                                    "iris", "--http_port", "8080", "--grpc_port", "8081",
                                    "--enable_latency_logging", "false"]
    assert {"name": "WORKBENCH_KSERVE_HOST", "value": "0.0.0.0"} in container["env"]
    assert [p["name"] for p in container["ports"]] == ["http", "grpc"]  # /metrics is on the HTTP port
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/iris/ready"
    service = next(o for o in plain if o["kind"] == "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [8080, 8081]
    # The pods' folder holds KServe's settings and script, not MLServer's model-settings.json.
    files = next(o for o in plain if o["kind"] == "ConfigMap")
    texts = {**files.get("data", {}), **files.get("binaryData", {})}
    assert {kserve_runtime.SETTINGS_FILE, "workbench_kserve.py"} <= set(texts)
    assert "model-settings.json" not in texts
    runtime = next(o for o in on_kserve if o["kind"] == "ServingRuntime")
    assert runtime["metadata"]["name"] == "iris-kserve"
    assert runtime["spec"]["containers"][0]["command"][1] == "/mnt/models/workbench_kserve.py"
    isvc = next(o for o in on_kserve if o["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "iris-kserve"
    # MLServer stays what a revision without a recorded server gets.
    old = manifests.render(spec(), 1, openshift=True, kserve=False, ingress_class=None, delivery=DELIVERY)
    (mls,) = next(o for o in old if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    assert mls["command"] == ["mlserver", "start", serving.MODEL_MOUNT]
    assert mls["image"] == serving.DEFAULT_IMAGE + "-sklearn"


@pytest.mark.parametrize("server", ["mlserver", "kserve"])
def test_an_undeclared_default_image_is_checked_against_the_model(server: str) -> None:
    image = servers.get(server).default_image(serving.runtime_for("sklearn"))
    held = servers.image_frameworks(image)["scikit-learn"]
    model = DeploySpec(**{**spec().__dict__, "server": server})
    with pytest.raises(DeployError) as err:
        images.check_spec(model, "scikit-learn")  # saved with 1.9.1
    line = err.value.one_line()
    assert line.startswith(f"the serving image {image} has scikit-learn {held}, and Iris_Model:3 was saved "
                           "with scikit-learn 1.9.1: ")
    assert "\n" not in line
    # A model saved with what the image holds passes; a declaration always wins.
    same = DeploySpec(**{**model.__dict__, "model": model.model.__class__(
        **{**model.model.__dict__, "framework_version": held})})
    images.check_spec(same, "scikit-learn")
    images.check_spec(DeploySpec(**{**model.__dict__, "image_frameworks": ["scikit-learn==1.9.0"]}),
                      "scikit-learn")
    # Any other undeclared image is not checked (nothing can be learnt about it without pulling it).
    images.check_spec(DeploySpec(**{**model.__dict__, "image": "reg.example.com/mine:1"}), "scikit-learn")


def test_the_choice_is_configuration_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    assert ProjectConfig().deploy.server == "mlserver"
    config = tmp_path / "config.toml"
    config.write_text('[deploy]\nserver = "kserve"\n')
    assert load_config(config).deploy.server == "kserve"
    config.write_text('[deploy]\nserver = "triton"\n')
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert err.value.one_line().endswith("config 'deploy.server' is 'triton', not a model server "
                                         "(use one of mlserver, kserve)")
    # A revision recorded before the choice existed replays with MLServer.
    old = spec().to_json()
    old.pop("server")
    assert servers.get(DeploySpec.from_json(old).server).name == "mlserver"


def test_each_server_has_its_own_venv_and_pins() -> None:
    runtime = serving.runtime_for("sklearn")
    mls, ks = servers.get("mlserver"), servers.get("kserve")
    assert ks.requirements(runtime, "1.9.1") == ["kserve==0.21.0", "joblib", "scikit-learn==1.9.1"]
    assert mls.requirements(runtime, "1.9.1") == serving.requirements(runtime, "1.9.1")
    assert servers.venv_env(mls) == "WORKBENCH_SERVE_VENV"
    assert servers.venv_env(ks) == "WORKBENCH_SERVE_VENV_KSERVE"
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["serve-kserve"]
    assert set(servers.KSERVE_REQUIREMENTS) == set(extra)


def test_bad_server_flags_are_one_line(ws: Workspace) -> None:
    res = run_workbench(ws.root, "deploy", "iris:1", "--server", "triton")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("error: argument --server: invalid choice: 'triton'")
    res = run_workbench(ws.root, "deploy", "iris:1", "--server", "kserve", "--target", "kubernetes",
                        "--build-image", "--registry", "reg.example.com/x")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("error: --build-image builds MLServer images, not kserve ones")
