"""``workbench deploy --expose route|ingress|none``: rendered objects (schema-validated), the cluster
path on kmock (stale Route dropped, errors in one line), and the choice kept by scale, rollback and a
redeploy through the real DeployService."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import kmock
import pytest

from tests.conftest import run_workbench
from tests.deploy.conftest import register_file
from tests.deploy.test_cluster import NS, SHARED, fetch, healthy, run_with, spec, target
from workbench.core.workspace import Workspace
from workbench.deploy import manifests
from workbench.errors import DeployError

ROUTES = "route.openshift.io/v1/routes"


def _kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


def _live(emulator: kmock.KubernetesEmulator, plural: str) -> list[str]:
    return [name for (res, _, name), item in emulator.objects.items()
            if res.plural == plural and not item.deleted]


def test_rendered_objects_for_each_choice_validate() -> None:
    s = spec()
    s.expose = "none"
    s.replicas = 1  # one replica may mount the ReadWriteOnce model volume
    plain = manifests.render(s, 1, openshift=True, kserve=False, ingress_class="nginx")
    assert _kinds(plain) == ["PersistentVolumeClaim", "Deployment", "Service"]
    assert plain[2]["spec"].get("type", "ClusterIP") == "ClusterIP"
    isvc = manifests.render(s, 1, openshift=False, kserve=True, ingress_class=None)[-1]
    assert isvc["metadata"]["labels"][manifests.KSERVE_VISIBILITY] == "cluster-local"
    s.expose = "ingress"
    on_openshift = manifests.render(s, 1, openshift=True, kserve=False, ingress_class="nginx")
    assert _kinds(on_openshift)[-1] == "Ingress"
    s.expose = ""
    assert _kinds(manifests.render(s, 1, openshift=True, kserve=False, ingress_class=None))[-1] == "Route"
    plain_k8s = manifests.render(s, 1, openshift=False, kserve=False, ingress_class="nginx")
    assert _kinds(plain_k8s)[-1] == "Ingress"
    default_isvc = manifests.render(s, 1, openshift=False, kserve=True, ingress_class=None)[-1]
    assert manifests.KSERVE_VISIBILITY not in default_isvc["metadata"]["labels"]
    for obj in [*plain, isvc, *on_openshift]:
        manifests.validate(obj)


async def test_none_on_openshift_drops_the_route_an_earlier_revision_made(
        kmock: kmock.KubernetesEmulator) -> None:
    kmock.resources[ROUTES] = kmock.ResourceInfo(kind="Route", namespaced=True)
    t = target(kmock, "openshift")
    first = spec()
    objects = await asyncio.to_thread(t.render, first, 1, **SHARED)
    await run_with(kmock, healthy, None, lambda: t.apply(first, 1, objects, fetch, 30))
    assert _live(kmock, "routes") == ["iris"]
    closed = spec()
    closed.expose = "none"
    objects = await asyncio.to_thread(t.render, closed, 2, **SHARED)
    assert "Route" not in _kinds(objects) and "Ingress" not in _kinds(objects)
    _, endpoint = await run_with(kmock, healthy, None, lambda: t.apply(closed, 2, objects, fetch, 30))
    assert _live(kmock, "routes") == []
    assert endpoint == f"http://iris.{NS}.svc:8080"


async def test_a_route_made_by_someone_else_is_left_alone(kmock: kmock.KubernetesEmulator) -> None:
    kmock.resources[ROUTES] = kmock.ResourceInfo(kind="Route", namespaced=True)
    kmock.objects[ROUTES, NS, "iris"] = {"apiVersion": "route.openshift.io/v1", "kind": "Route",
                                         "metadata": {"name": "iris", "namespace": NS}}
    t = target(kmock, "openshift")
    closed = spec()
    closed.expose = "none"
    objects = await asyncio.to_thread(t.render, closed, 1, **SHARED)
    await run_with(kmock, healthy, None, lambda: t.apply(closed, 1, objects, fetch, 30))
    assert _live(kmock, "routes") == ["iris"]


async def test_impossible_choices_are_refused_in_one_line(kmock: kmock.KubernetesEmulator) -> None:
    t = target(kmock, "kubernetes")
    s = spec()
    s.expose = "route"
    with pytest.raises(DeployError) as err:
        await asyncio.to_thread(t.render, s, 1, **SHARED)
    assert "no route.openshift.io API" in err.value.one_line() and "--expose none" in err.value.one_line()
    s.expose = "ingress"
    with pytest.raises(DeployError) as err:
        await asyncio.to_thread(t.render, s, 1, **SHARED)
    assert "needs an IngressClass" in err.value.one_line()


def _kubeconfig(path: Path, url: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "double",
        "clusters": [{"name": "double", "cluster": {"server": url}}],
        "users": [{"name": "me", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "me", "namespace": NS}}],
    }))
    return path


async def test_scale_rollback_and_redeploy_keep_the_choice(
        kmock: kmock.KubernetesEmulator, ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    kmock.resources[ROUTES] = kmock.ResourceInfo(kind="Route", namespaced=True)
    target(kmock, "openshift")  # declares the built-in kinds
    from kubernetes.config import kube_config

    path = str(_kubeconfig(ws.root.parent / "kubeconfig", str(kmock.url).rstrip("/")))
    monkeypatch.setenv("KUBECONFIG", path)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", path)  # read once, at import
    model = ws.root / "model.joblib"
    model.write_bytes(b"model v1")
    v1 = register_file(ws, model, "iris", "1")
    model.write_bytes(b"model v2")
    v2 = register_file(ws, model, "iris", "2")
    ws.config.deploy.storage_access = "ReadWriteMany"  # 'scale 3' shares the model volume
    ws.config.deploy.image_frameworks = [f"scikit-learn=={v1.framework_version}"]  # kmock runs no image
    deploys = ws.deployments

    def steps() -> list[str]:
        seen = []
        deploys.deploy(v1, name="iris", target="openshift", namespace=NS, expose="none", timeout=30)
        seen.append(",".join(_live(kmock, "routes")))
        deploys.scale("iris", 3, timeout=30)
        deploys.deploy(v2, name="iris", target="openshift", namespace=NS, timeout=30)
        seen.append(",".join(_live(kmock, "routes")))
        deploys.rollback("iris", to=1, timeout=30)
        seen.append(",".join(_live(kmock, "routes")))
        deploys.deploy(v2, name="iris", target="openshift", namespace=NS, expose="route", timeout=30)
        seen.append(",".join(_live(kmock, "routes")))
        return seen

    seen = await run_with(kmock, healthy, None, steps)
    assert seen == ["", "", "", "iris"]
    exposes = [deploys.records.spec_of("iris", r.revision).expose for r in deploys.history("iris")]
    assert sorted(exposes) == ["none", "none", "none", "none", "route"]


def test_cli_refuses_bad_expose_values(ws: Workspace) -> None:
    bad = run_workbench(ws.root, "deploy", "iris:1", "--expose", "public")
    assert bad.returncode == 2 and "invalid choice: 'public'" in bad.stderr
    local = run_workbench(ws.root, "deploy", "iris:1", "--target", "local", "--expose", "none")
    assert local.returncode == 2 and "Traceback" not in local.stderr
    assert local.stderr.strip().splitlines() == [
        "error: --expose applies to cluster targets (a local deployment listens on this machine only; "
        "drop --expose)"]
