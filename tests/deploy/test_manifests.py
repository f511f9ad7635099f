"""Every rendered object passes its official schema; broken ones are caught before they are sent."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from workbench.deploy import manifests, serving
from workbench.deploy.delivery import Delivery
from workbench.deploy.types import DeploySpec, ModelRef, check_name, default_name
from workbench.errors import DeployError

DELIVERY = Delivery("origin", "models", "team/serving/sha256/" + "ef" * 32, "ef" * 32, 2_000_000,
                    "https://s3.example.com", "eu-west-1")
"""Where the pods fetch the model (a default S3 remote): several replicas share no volume."""


def spec(framework: str = "sklearn", filename: str = "model.joblib") -> DeploySpec:
    model = ModelRef("Iris_Model", "3", "cd" * 32, framework, "1.9.1", "run-9", filename)
    return DeploySpec(
        name="iris",
        target="openshift",
        model=model,
        replicas=2,
        namespace="ml",
        cpu="1",
        memory="1Gi",
        gpus=1,
    )


@pytest.mark.parametrize(
    ("framework", "filename"),
    [
        ("sklearn", "model.joblib"),
        ("xgboost", "model.ubj"),
        ("lightgbm", "model.txt"),
        ("onnx", "model.onnx"),
    ],
)
def test_every_object_validates(framework: str, filename: str) -> None:
    s = spec(framework, filename)
    objects = [
        *manifests.render(s, 1, openshift=True, kserve=False, ingress_class=None, delivery=DELIVERY),
        *manifests.render(s, 1, openshift=False, kserve=True, ingress_class=None, delivery=DELIVERY),
        manifests.ingress(s, 1, "nginx"),
        *manifests.loader_objects(s, 1, b"x" * 2_000_000),
        manifests.fetch_secret(s, {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, 1),
        # Without a remote: one volume, which several replicas may share only when ReadWriteMany.
        *manifests.render(s, 1, openshift=True, kserve=False, ingress_class=None,
                          storage_class="nfs", storage_access="ReadWriteMany"),
        *manifests.render(DeploySpec(**{**s.__dict__, "replicas": 1}), 1, openshift=False, kserve=True,
                          ingress_class=None),
    ]
    for obj in objects:
        manifests.validate(obj)
        meta = obj["metadata"]
        assert meta["annotations"]["workbench.dev/artifact-hash"] == s.model.hash
        assert meta["labels"]["workbench.dev/model"] == "Iris_Model"
    isvc = next(o for o in objects if o["kind"] == "InferenceService")
    assert (
        isvc["spec"]["predictor"]["model"]["modelFormat"]["name"]
        == serving.runtime_for(framework).kserve_format
    )
    dep = next(o for o in objects if o["kind"] == "Deployment")
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}


@pytest.mark.parametrize(
    ("kind", "breakage", "words"),
    [
        ("Deployment", lambda o: o["spec"].__setitem__("replicas", "two"), "Deployment iris is invalid"),
        ("Service", lambda o: o["spec"]["ports"][0].__setitem__("port", "http"), "Service iris is invalid"),
        ("Route", lambda o: o["spec"]["tls"].__setitem__("termination", "edgy"), "spec.tls.termination"),
        ("Route", lambda o: o["spec"].pop("to"), "'to' is a required property"),
        (
            "InferenceService",
            lambda o: o["spec"]["predictor"]["model"]["modelFormat"].pop("name"),
            "spec.predictor.model.modelFormat",
        ),
        ("InferenceService", lambda o: o["spec"].pop("predictor"), "'predictor' is a required property"),
        ("ServingRuntime", lambda o: o["spec"]["containers"][0].pop("name"), "'name' is a required property"),
        ("ServingRuntime", lambda o: o["spec"].pop("containers"), "'containers' is a required property"),
    ],
)
def test_schema_errors_are_caught(kind: str, breakage: object, words: str) -> None:
    s = spec()
    objects = [
        *manifests.render(s, 1, openshift=True, kserve=False, ingress_class=None, delivery=DELIVERY),
        *manifests.render(s, 1, openshift=False, kserve=True, ingress_class=None, delivery=DELIVERY),
    ]
    obj = copy.deepcopy(next(o for o in objects if o["kind"] == kind))
    breakage(obj)  # type: ignore[operator]
    with pytest.raises(DeployError, match=words):
        manifests.validate(obj)


def test_names_follow_rfc1123() -> None:
    assert check_name("iris-2") == "iris-2"
    for bad in ("Iris", "iris_2", "-iris", "iris-", "2iris", "x" * 60, ""):
        with pytest.raises(DeployError) as err:
            check_name(bad)
        assert "RFC 1123" in err.value.one_line()
    assert default_name("Iris_Model v2") == "iris-model-v2"
    assert check_name(default_name("123")) == "m-123"


def test_serve_extra_matches_the_pins() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extra = set(pyproject["project"]["optional-dependencies"]["serve"])
    assert set(serving.BASE_REQUIREMENTS) <= extra
    assert set(serving.RUNTIMES["sklearn"].packages) <= extra


def test_unknown_framework_is_explained() -> None:
    with pytest.raises(DeployError) as err:
        serving.runtime_for("caffe")
    assert "supported: lightgbm, onnx, pytorch, sklearn, xgboost" in err.value.one_line()


@pytest.mark.parametrize(
    ("kind", "path", "value", "where"),
    [
        ("Route", ("spec", "to", "weight"), "heavy", "spec.to.weight"),
        ("Route", ("spec", "port", "targetPort"), 8.5, "spec.port.targetPort"),
        ("Route", ("spec", "tls", "termination"), 443, "spec.tls.termination"),
        ("InferenceService", ("spec", "predictor", "minReplicas"), "two", "spec.predictor.minReplicas"),
        ("InferenceService", ("spec", "predictor", "model", "storageUri"), 7,
         "spec.predictor.model.storageUri"),
        ("InferenceService", ("spec", "predictor", "model", "resources", "limits", "cpu"), "lots",
         "spec.predictor.model.resources.limits.cpu"),
        ("ServingRuntime", ("spec", "multiModel"), "no", "spec.multiModel"),
        ("ServingRuntime", ("spec", "supportedModelFormats", 0, "autoSelect"), "yes",
         "spec.supportedModelFormats.0.autoSelect"),
        ("ServingRuntime", ("spec", "containers", 0, "ports", 0, "containerPort"), "http",
         "spec.containers.0.ports.0.containerPort"),
    ],
)
def test_published_crd_schemas_reject_wrong_types(kind: str, path: tuple[object, ...], value: object,
                                                  where: str) -> None:
    """Each CRD schema kept in crds/ (published by OpenShift / KServe) refuses a field of the wrong type."""
    s = spec()
    objects = [
        *manifests.render(s, 1, openshift=True, kserve=False, ingress_class=None, delivery=DELIVERY),
        *manifests.render(s, 1, openshift=False, kserve=True, ingress_class=None, delivery=DELIVERY),
    ]
    obj = copy.deepcopy(next(o for o in objects if o["kind"] == kind))
    manifests.validate(obj)
    node: Any = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(DeployError) as err:
        manifests.validate(obj)
    assert f"{kind} " in err.value.one_line() and f"invalid at {where}:" in err.value.one_line()


def test_official_schemas_reject_wrong_types_with_the_same_one_line_error() -> None:
    """Built-in kinds go through kubernetes-validate (test extra): a wrong type is the same one-line
    error."""
    s = spec("sklearn", "model.joblib")
    objects = manifests.render(s, 1, openshift=False, kserve=False, ingress_class=None, delivery=DELIVERY)
    dep = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    dep["spec"]["replicas"] = "two"
    with pytest.raises(DeployError) as err:
        manifests.validate(dep)
    line = err.value.one_line()
    assert line.startswith(f"Deployment {dep['metadata']['name']} is invalid at spec.replicas: ")
    assert "bug in Workbench's manifests" in line


def test_crd_files_say_where_they_come_from() -> None:
    for filename in manifests.CRD_FILES.values():
        data = json.loads((Path(manifests.__file__).parent / "crds" / filename).read_text())
        assert data["_source"].startswith(("openshift/api ", "kserve/kserve "))
        assert "commit" in data["_source"]
        schema = manifests.crd_schema(filename)
        assert schema["type"] == "object"
        assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"])
        jsonschema.Draft202012Validator.check_schema(schema)


def test_replicas_spread_survive_drains_autoscale_and_tolerate_gpu_taints() -> None:
    s = spec("sklearn", "model.joblib")  # 2 replicas, 1 GPU
    objects = manifests.render(s, 1, openshift=False, kserve=False, ingress_class=None, delivery=DELIVERY)
    for o in objects:
        manifests.validate(o)  # the official schemas, PodDisruptionBudget and HPA included
    dep = next(o for o in objects if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    match = dep["spec"]["selector"]["matchLabels"]
    assert spread["kubernetes.io/hostname"]["labelSelector"]["matchLabels"] == match
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pdb = next(o for o in objects if o["kind"] == "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": dep["spec"]["selector"]}
    assert "HorizontalPodAutoscaler" not in [o["kind"] for o in objects]

    auto = DeploySpec(**{**s.__dict__, "cpu": None, "gpus": 0, "min_replicas": 1, "max_replicas": 4})
    objects = manifests.render(auto, 1, openshift=False, kserve=False, ingress_class=None,
                               delivery=DELIVERY)
    for o in objects:
        manifests.validate(o)
    dep = next(o for o in objects if o["kind"] == "Deployment")
    assert "replicas" not in dep["spec"] and "tolerations" not in dep["spec"]["template"]["spec"]
    # Utilisation is measured against a request: one is set when --cpu was not given.
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "250m"
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    target = hpa["spec"]["metrics"][0]["resource"]["target"]
    assert target == {"type": "Utilization", "averageUtilization": 70}
    isvc = next(o for o in manifests.render(auto, 1, openshift=False, kserve=True, ingress_class=None,
                                            delivery=DELIVERY)
                if o["kind"] == "InferenceService")
    assert (isvc["spec"]["predictor"]["minReplicas"], isvc["spec"]["predictor"]["maxReplicas"]) == (1, 4)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--max-replicas", "0", "--min-replicas", "2"), "--max-replicas is needed"),
        (("--min-replicas", "5", "--max-replicas", "3"), "between 1 and --max-replicas (3)"),
        (("--max-replicas", "3", "--target-cpu", "150"), "percentage"),
    ],
)
def test_bad_autoscaling_is_one_line(argv: tuple[str, ...], words: str) -> None:
    from workbench.deploy import scaling
    from workbench.errors import UsageError

    values = dict(zip(argv[::2], (int(v) for v in argv[1::2]), strict=True))
    with pytest.raises(UsageError) as err:
        scaling.check_autoscale(values.get("--min-replicas", 0), values.get("--max-replicas", 0),
                                values.get("--target-cpu", 0))
    assert words in err.value.one_line()
