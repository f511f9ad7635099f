"""Opt-in: the cluster path against a real Kubernetes or OpenShift cluster (``pytest -m cluster``).

Runs only with ``-m cluster`` (the default ``addopts`` deselects the marker) and only when
``KUBECONFIG`` is set; it skips, saying so, otherwise. Settings, all from the environment:

- ``KUBECONFIG``: the cluster and credentials (the current context is used).
- ``WORKBENCH_TEST_NAMESPACE``: the namespace to deploy into (default: the context's namespace). The
  user needs create/patch/delete on deployments, services, persistentvolumeclaims, configmaps,
  jobs (and routes / ingresses / KServe objects where the cluster has them), get on pods, and the
  ``services/proxy`` and ``pods/proxy`` subresources (predictions and metrics go through the API
  server, so no Route certificate or ingress address has to be reachable from here).
- ``WORKBENCH_TEST_TARGET``: ``kubernetes`` (default; OpenShift is recognised by its Route API) or
  ``openshift``.
- ``WORKBENCH_TEST_IMAGE``: the serving image (default MLServer's ``1.7.1-sklearn``). A pickled
  scikit-learn model loads only under the version it was saved with: use an image whose
  scikit-learn matches this machine's, or the first rollout fails with the server's load error.
- ``WORKBENCH_TEST_TIMEOUT``: seconds to wait for each rollout (default 600: image pulls are slow).

- ``WORKBENCH_TEST_REMOTE`` (``s3://BUCKET/PREFIX``, with ``WORKBENCH_TEST_REMOTE_ENDPOINT`` and the
  standard AWS variables; ``WORKBENCH_TEST_POD_ENDPOINT`` when pods reach the store at another
  address): each pod fetches the model from it in an init container (no shared volume).
- Without a remote: ``WORKBENCH_TEST_STORAGE_CLASS`` / ``WORKBENCH_TEST_STORAGE_ACCESS`` for the model
  volume (default: the cluster's default class, ReadWriteOnce, on which scaling to 2 is refused: the
  test checks the refusal and stops there).

What it checks:
deploy -> rollout complete -> predict -> metrics -> scale to 2 -> a second model version -> rollback
(the answers change back) -> undeploy (every object gone).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.deploy.conftest import REQUEST, answers
from workbench.core.workspace import Workspace
from workbench.deploy.types import ModelRef

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"),
        reason="needs a real cluster: set KUBECONFIG (and WORKBENCH_TEST_NAMESPACE) and run with -m cluster",
    ),
]
NAME = "wb-e2e-iris"
TARGET = os.environ.get("WORKBENCH_TEST_TARGET", "kubernetes")
NAMESPACE = os.environ.get("WORKBENCH_TEST_NAMESPACE") or None
TIMEOUT = float(os.environ.get("WORKBENCH_TEST_TIMEOUT", "600"))


@pytest.fixture
def cluster_ws(ws: Workspace) -> Iterator[Workspace]:
    image = os.environ.get("WORKBENCH_TEST_IMAGE")
    if image:
        ws.config.deploy.image = image
    if os.environ.get("WORKBENCH_TEST_REMOTE"):
        ws.remote.add("test", os.environ["WORKBENCH_TEST_REMOTE"],
                      endpoint_url=os.environ.get("WORKBENCH_TEST_REMOTE_ENDPOINT", ""))
        ws.config.deploy.remote_endpoint = os.environ.get("WORKBENCH_TEST_POD_ENDPOINT", "")
    ws.config.deploy.storage_class = os.environ.get("WORKBENCH_TEST_STORAGE_CLASS", "")
    ws.config.deploy.storage_access = os.environ.get("WORKBENCH_TEST_STORAGE_ACCESS", "ReadWriteOnce")
    yield ws
    # Leave nothing behind in the user's namespace, whatever happened above.
    try:
        if any(d.name == NAME for d in ws.deployments.list()):
            ws.deployments.undeploy(NAME)
    except Exception as exc:  # report, but do not hide the test's own failure
        print(f"cleanup of {NAME} failed: {exc}")


def test_deploy_scale_rollback_undeploy_on_a_real_cluster(
    cluster_ws: Workspace, iris_models: tuple[ModelRef, ModelRef]
) -> None:
    from workbench.deploy.cluster import ClusterTarget

    ws = cluster_ws
    dep = ws.deployments
    v1, v2 = iris_models
    info = dep.deploy(v1, name=NAME, target=TARGET, namespace=NAMESPACE, replicas=1, timeout=TIMEOUT)
    assert (info.state, info.ready, info.replicas, info.revision) == ("available", 1, 1, 1)
    cluster = ClusterTarget.connect(TARGET, info.namespace)
    deployment = cluster.get("apps/v1", "Deployment", NAME)
    kserve = deployment is None
    if not kserve:  # the objects carry their lineage
        annotations = deployment["metadata"]["annotations"]
        assert annotations["workbench.dev/artifact-hash"] == v1.hash
        assert annotations["workbench.dev/version"] == "1"
    assert answers(dep.predict(NAME, REQUEST)) == [0, 0]
    if not kserve:
        snap = dep.metrics(NAME)
        assert snap.replicas_scraped == 1 and snap.requests_total >= 1

    if not os.environ.get("WORKBENCH_TEST_REMOTE") and ws.config.deploy.storage_access == "ReadWriteOnce":
        from workbench.errors import DeployError

        with pytest.raises(DeployError, match="cannot share one ReadWriteOnce model volume"):
            dep.scale(NAME, 2, timeout=TIMEOUT)
        pytest.skip("scaling to 2 needs WORKBENCH_TEST_REMOTE or WORKBENCH_TEST_STORAGE_ACCESS=ReadWriteMany")
    info = dep.scale(NAME, 2, timeout=TIMEOUT)
    assert (info.replicas, info.state) == (2, "available")
    if not kserve:
        status = cluster.status(NAME)
        assert (status.state, status.available) == ("complete", 2)

    info = dep.deploy(v2, name=NAME, target=TARGET, namespace=NAMESPACE, replicas=2, timeout=TIMEOUT)
    assert (info.version, info.revision, info.state) == ("2", 3, "available")
    assert answers(dep.predict(NAME, REQUEST)) == [0, 2]

    info = dep.rollback(NAME, timeout=TIMEOUT)
    assert (info.version, info.replicas, info.state) == ("1", 2, "available")
    assert answers(dep.predict(NAME, REQUEST)) == [0, 0]
    assert [(r.action, r.version, r.result) for r in dep.history(NAME)] == [
        ("deploy", "1", "available"),
        ("scale", "1", "available"),
        ("deploy", "2", "available"),
        ("rollback", "1", "available"),
    ]

    dep.undeploy(NAME)
    assert dep.list() == []
    for api_version, kind, name in (
        ("apps/v1", "Deployment", NAME),
        ("v1", "Service", NAME),
        ("serving.kserve.io/v1beta1", "InferenceService", NAME),
    ):
        if api_version.split("/")[0] in ("apps", "v1") or api_version.split("/")[0] in cluster.groups():
            found = cluster.get(api_version, kind, name)
            assert found is None or found["metadata"].get("deletionTimestamp"), f"{kind} {name} left behind"
