"""Check rendered objects against their schemas before they are sent to a cluster.

Built-in kinds: the official Kubernetes schemas through kubernetes-validate (when installed; it ships
with the test extra). OpenShift's Route and KServe's objects: their published CRD ``openAPIV3Schema``
kept in ``crds/``, read with ``jsonschema``. A mismatch is a one-line DeployError (a Workbench bug).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from workbench.errors import DeployError

Obj = dict[str, Any]

CRD_FILES = {
    ("route.openshift.io/v1", "Route"): "route.openshift.io_routes.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "serving.kserve.io_inferenceservices.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "serving.kserve.io_servingruntimes.json",
}
K8S_VERSION = "1.30"


@cache
def crd_schema(filename: str) -> dict[str, Any]:
    """A CRD's published ``openAPIV3Schema`` (kept in ``crds/``), ready for ``jsonschema``."""
    text = resources.files("workbench.deploy").joinpath("crds", filename).read_text(encoding="utf-8")
    data: dict[str, Any] = _structural(json.loads(text)["openAPIV3Schema"])
    return data


def _structural(node: Any) -> Any:
    """Read Kubernetes' structural-schema idioms the way the API server does.

    ``anyOf: null`` (controller-gen's way of writing "no anyOf") is dropped, since JSON Schema wants a
    list there; ``x-kubernetes-int-or-string: true`` without an ``anyOf`` becomes
    ``anyOf: [integer, string]``. Every other keyword is passed through (``x-kubernetes-*`` ones are
    ignored by ``jsonschema``).
    """
    if isinstance(node, list):
        return [_structural(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _structural(v) for k, v in node.items() if not (k == "anyOf" and v is None)}
    if out.get("x-kubernetes-int-or-string") is True and "anyOf" not in out and "type" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


_BUG = "this is a bug in Workbench's manifests; please report it"


def validate(obj: Obj) -> None:
    """Check one object against its schema: the published CRD schema kept in ``crds/`` for Route and
    KServe objects; for built-in kinds, the official schemas through kubernetes-validate when it is
    installed (it ships with the test extra)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    where = f"{key[1]} {obj.get('metadata', {}).get('name', '?')}"
    if key in CRD_FILES:
        import jsonschema

        try:
            jsonschema.validate(obj, crd_schema(CRD_FILES[key]))
        except jsonschema.ValidationError as exc:
            raise _invalid(where, exc) from None
        return
    try:
        import jsonschema
        import kubernetes_validate
    except ImportError:
        return
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except jsonschema.ValidationError as exc:
        raise _invalid(where, exc) from None
    except kubernetes_validate.ValidationError as exc:
        raise DeployError(f"{where} is invalid: {exc}", _BUG) from None


def _invalid(where: str, exc: Any) -> DeployError:
    """The one-line error for a ``jsonschema.ValidationError``: the object, the field path, why."""
    path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
    return DeployError(f"{where} is invalid at {path}: {exc.message}", _BUG)
