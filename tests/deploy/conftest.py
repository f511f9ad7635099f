"""Fixtures for the deploy tests: small scikit-learn models and the serving venv (built once, cached)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import kmock
import pytest

from workbench.core.workspace import Workspace
from workbench.deploy import serving
from workbench.deploy.types import ModelRef


@pytest.fixture(scope="session")
def serve_venv() -> Path:
    """The real serving venv for scikit-learn at this interpreter's version (about 40 s the first time)."""
    import sklearn

    return serving.ensure_serve_venv(serving.runtime_for("sklearn"), sklearn.__version__)


def register_file(ws: Workspace, path: Path, name: str, version: str) -> ModelRef:
    """A model version for ``path``: through the blob cache when versioning is there, else by path."""
    import sklearn

    try:
        digest = ws.versions.put_file(path)
    except (ImportError, AttributeError):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rel = path.relative_to(ws.root).as_posix() if path.is_relative_to(ws.root) else str(path)
    return ModelRef(
        name=name,
        version=version,
        hash=digest,
        framework="sklearn",
        framework_version=sklearn.__version__,
        run_id=None,
        path=rel,
    )


@pytest.fixture
def iris_models(ws: Workspace) -> tuple[ModelRef, ModelRef]:
    """Version 1 always answers class 0; version 2 is a real classifier (answers 0 and 2 below)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    (ws.root / "v1").mkdir()
    (ws.root / "v2").mkdir()
    joblib.dump(DummyClassifier(strategy="constant", constant=0).fit(x, y), ws.root / "v1" / "model.joblib")
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), ws.root / "v2" / "model.joblib")
    return (
        register_file(ws, ws.root / "v1" / "model.joblib", "iris", "1"),
        register_file(ws, ws.root / "v2" / "model.joblib", "iris", "2"),
    )


REQUEST = {
    "inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}
    ]
}


def answers(body: dict[str, object]) -> list[int]:
    outputs = body["outputs"]
    assert isinstance(outputs, list)
    return [int(v) for v in outputs[0]["data"]]


@pytest.fixture
def cluster_ws(kmock: kmock.KubernetesEmulator, ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A project whose cluster is kmock (through a kubeconfig, as a user's would be). Its image is
    declared to hold this scikit-learn (kmock runs no image; tests/deploy/test_images.py checks that)."""
    import sklearn
    from kubernetes.config import kube_config

    from tests.deploy.test_cluster import target
    from tests.security.test_expose import _kubeconfig

    target(kmock)  # declares the built-in kinds
    kmock.resources["v1/secrets"] = kmock.ResourceInfo(kind="Secret", namespaced=True)
    path = str(_kubeconfig(ws.root.parent / "kubeconfig", str(kmock.url).rstrip("/")))
    monkeypatch.setenv("KUBECONFIG", path)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", path)
    ws.config.deploy.image_frameworks = [f"scikit-learn=={sklearn.__version__}"]
    return ws
