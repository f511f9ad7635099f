"""A cluster deploy whose serving image cannot load the model's framework version is refused in one
line, naming both versions, before anything is recorded or applied (the DeployService on kmock)."""

from __future__ import annotations

import asyncio

import kmock
import pytest

from tests.deploy.test_cluster import NS, healthy, run_with
from tests.deploy.test_delivery import _model
from tests.security.test_expose import _live
from workbench.core.workspace import Workspace
from workbench.deploy import images
from workbench.errors import ConfigError, DeployError


@pytest.mark.parametrize(
    ("package", "have", "model", "ok"),
    [
        ("scikit-learn", "1.9.0", "1.9.1", True),  # same minor: loads (with a warning)
        ("scikit-learn", "1.5.2", "1.9.1", False),
        ("scikit-learn", "1.10.0", "1.9.1", False),  # newer is refused too: pickles are not portable
        ("xgboost", "3.1.0", "2.1.4", True),  # later versions read earlier models
        ("xgboost", "2.0.3", "2.1.4", False),
        ("torch", "2.13.0", "2.13.0", True),
        ("onnxruntime", "1.0.0", "9.9.9", True),  # not a rule we know: not checked
    ],
)
def test_rules(package: str, have: str, model: str, ok: bool) -> None:
    call = lambda: images.check("reg/img:1", {package: have}, package, model, "iris:2")  # noqa: E731
    if ok:
        call()
        return
    with pytest.raises(DeployError) as err:
        call()
    line = err.value.one_line()
    assert f"the serving image reg/img:1 has {package} {have}, and iris:2 was saved with" in line
    assert f"saved with {package} {model}: " in line
    assert f'image_frameworks = ["{package}=={model}"]' in line and "\n" not in line


def test_nothing_declared_or_recorded_is_not_checked() -> None:
    images.check("reg/img:1", {}, "scikit-learn", "1.9.1", "iris:2")
    images.check("reg/img:1", {"scikit-learn": "1.5.2"}, "scikit-learn", None, "iris:2")
    with pytest.raises(ConfigError, match="not PACKAGE==VERSION"):
        images.declared(["scikit-learn>=1.5"])
    assert images.declared(["scikit_learn == 1.5.2"]) == {"scikit-learn": "1.5.2"}


async def test_a_deploy_to_an_image_that_cannot_load_the_model_is_refused(
        cluster_ws: Workspace, kmock: kmock.KubernetesEmulator) -> None:
    ws = cluster_ws
    v1 = _model(ws)  # saved with this machine's scikit-learn
    import sklearn

    ws.config.deploy.image = "registry.example.com/serving:old"
    ws.config.deploy.image_frameworks = ["scikit-learn==1.5.2"]
    with pytest.raises(DeployError) as err:
        await asyncio.to_thread(ws.deployments.deploy, v1, name="iris", target="kubernetes", namespace=NS,
                                timeout=30)
    assert err.value.one_line().startswith(
        "the serving image registry.example.com/serving:old has scikit-learn 1.5.2, and iris:1 was saved "
        f"with scikit-learn {sklearn.__version__}: a pickled model loads only under the same minor version")
    assert ws.deployments.records.find("iris") is None and _live(kmock, "deployments") == []

    # An image given with the deploy (as 'deploy --build-image' does) carries its own declaration.
    with pytest.raises(DeployError, match=r"image reg\.example\.com/built:2 has scikit-learn 0\.24\.2"):
        await asyncio.to_thread(ws.deployments.deploy, v1, name="iris", target="kubernetes", namespace=NS,
                                timeout=30, image="reg.example.com/built:2",
                                image_frameworks=["scikit-learn==0.24.2"])
    ws.config.deploy.image_frameworks = [f"scikit-learn=={sklearn.__version__}"]
    info = await run_with(kmock, healthy, None, lambda: ws.deployments.deploy(
        v1, name="iris", target="kubernetes", namespace=NS, timeout=30))
    assert info.state == "available"
    image = kmock.objects["apps/v1/deployments", NS, "iris"].raw["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "registry.example.com/serving:old"
