"""A kubelet that runs the cluster double's pods as real Docker containers (the offline test image).

For each pod bound to its node, a worker thread does what a kubelet does, in order:

* volumes: an ``emptyDir`` is a fresh folder; a ``configMap`` or ``secret`` volume is a folder of
  its keys' files, read from the API server; a ``persistentVolumeClaim`` is the claim's folder under
  ``<root>/volumes/<namespace>/<claim>`` (the one the double's other parts use), ``subPath`` a
  folder inside it, ``readOnly`` a read-only bind;
* env: ``value``, ``secretKeyRef`` and ``configMapKeyRef`` (a missing key is the kubelet's
  ``CreateContainerConfigError``);
* init containers one after another, each to completion (a failure ends a ``Never`` pod ``Failed``
  and leaves any other pod ``Init:Error``), then the containers; ``command``/``args`` become the
  entrypoint and command, ``workingDir``, the memory limit, and the security context: the user is
  OpenShift restricted-v2's arbitrary uid in group 0 unless ``runAsUser`` says otherwise,
  ``readOnlyRootFilesystem``, dropped capabilities, no privilege escalation;
* status through ``pods/{name}/status`` (init container and container states, readiness from an
  ``httpGet`` readiness probe, the exit code and ``OOMKilled``), and the first container's log fed
  to the double's pod-log API (what the executor reads, with resume by ``sinceTime``);
* ``pods/exec`` runs the command in the pod's first container (``docker exec``), stdin, stdout,
  stderr and the exit status carried over the ``v5.channel.k8s.io`` WebSocket protocol.

With ``network`` (a Docker bridge network), each pod has its own network namespace and IP, held by
a sandbox container that its containers join (Kubernetes' pause container); the pod IP is reported
in ``status.podIP``, where the double's service proxy sends requests. Without it every container
has the host's network (dockerd runs with ``--bridge=none`` here), so two pods' servers clash.

Restarts (``restartPolicy: Always`` after an exit) are not done: such a container is reported
terminated and not ready.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp.web

from tests.executors.kube_double import stamp
from tests.kube import kubelet as k
from tests.kube.scheduler import quantity

if TYPE_CHECKING:
    from tests.kube.controllers import ClusterDouble

Obj = dict[str, Any]
RESTRICTED_USER = "1000770000:0"
LABEL = "workbench.test/cluster"


def close_cluster(cluster: ClusterDouble, client: Any) -> None:
    """Close the double, then fail the test if a container of its pods outlived it (removed anyway)."""
    cluster.close()
    left = client.containers.list(all=True, filters={"label": f"{LABEL}={cluster.root}"})
    for container in left:
        container.remove(force=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"
    assert not cluster.errors, cluster.errors


class ConfigError(Exception):
    """What the kubelet reports as CreateContainerConfigError."""


class ImageMissing(Exception):
    """What the kubelet reports as ErrImagePull."""


class DockerKubelet:
    runs_exec = True

    def __init__(self, cluster: ClusterDouble, node: str, *, client: Any,
                 images: dict[str, str] | None = None, tag: str = "", network: str = "",
                 sandbox_image: str = "") -> None:
        self.cluster = cluster
        self.node = node
        self.client = client
        self.images = dict(images or {})
        """Image names pods ask for -> local images standing for them (nothing can be pulled here)."""
        self.tag = tag or str(cluster.root)
        self.network = network
        """A Docker network for pod IPs (each pod then has its own network namespace, held by a
        sandbox container its containers join); "" runs every container on the host's network."""
        self.sandbox_image = sandbox_image
        self.workers: dict[str, PodWorker] = {}
        self.dead = False

    def start(self, pod: Obj) -> None:
        worker = PodWorker(self, pod)
        self.workers[worker.uid] = worker
        worker.thread.start()

    def stop(self, pod: Obj) -> None:
        worker = self.workers.pop(pod["metadata"].get("uid", pod["metadata"]["name"]), None)
        if worker is not None:
            worker.stop()

    def fail(self) -> None:
        self.dead = True
        self.close()

    def close(self) -> None:
        for uid in list(self.workers):
            self.workers.pop(uid).stop()

    async def serve_exec(self, request: aiohttp.web.BaseRequest, pod: Obj) -> aiohttp.web.StreamResponse:
        worker = self.workers.get(pod["metadata"].get("uid", pod["metadata"]["name"]))
        ws = aiohttp.web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(request)
        command = request.query.getall("command")
        stdin = bytearray()
        if request.query.get("stdin") in ("true", "1"):
            async for message in ws:
                data = message.data if isinstance(message.data, bytes) else str(message.data).encode()
                if data[:1] == b"\x00":
                    stdin += data[1:]
                elif data[:2] == b"\xff\x00":
                    break
        if worker is None or worker.main is None:
            status = {"metadata": {}, "status": "Failure", "reason": "BadRequest",
                      "message": "container not found (the pod is not running)"}
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await ws.close()
            return ws
        frames, code = await asyncio.to_thread(worker.exec, command, bytes(stdin) if stdin else None)
        for stream, data in frames:
            await ws.send_bytes(bytes([stream]) + data)
        status = {"metadata": {}, "status": "Success"} if code == 0 else {
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await ws.send_bytes(b"\x03" + json.dumps(status).encode())
        await ws.close()
        return ws


class PodWorker:
    """One pod's life on the node, in its own thread."""

    def __init__(self, kubelet: DockerKubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"].get("uid", self.name)
        self.root = kubelet.cluster.root / "nodes" / kubelet.node / "pods" / f"{self.name}-{self.uid}"
        self.suffix = secrets.token_hex(4)
        """Container names carry it: the daemon is shared, and pods of two sessions may share names."""
        self.containers: list[Any] = []
        self.main: Any = None
        self.ip = "127.0.0.1"
        self.network_mode = "host"
        """The first container, once started: where exec runs."""
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.name}", daemon=True)

    # -- reporting ------------------------------------------------------------------------------
    def report(self, status: Obj) -> None:
        if self.stopped.is_set() or self.kubelet.dead:
            return
        self.kubelet.cluster.timeline.append((time.monotonic(), self.name, json.dumps(status)[:160]))
        cluster = self.kubelet.cluster
        status = {"hostIP": "127.0.0.1", "podIP": self.ip, **status}
        try:
            cluster.patch(f"/api/v1/namespaces/{cluster.ns}/pods/{self.name}/status", {"status": status})
        except urllib.error.HTTPError:
            pass  # deleted meanwhile

    def stop(self) -> None:
        self.stopped.set()
        for container in self.containers:
            try:
                container.remove(force=True)
            except Exception:  # already gone
                pass

    # -- the pod's life -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._live()
        except ImageMissing as exc:
            self.report({"phase": "Pending", "containerStatuses": [
                k.waiting(c["name"], c.get("image", ""), "ErrImagePull", str(exc))
                for c in self.pod["spec"]["containers"]]})
        except Exception as exc:  # a kubelet bug: wait_for fails the test with it
            if not self.stopped.is_set():
                self.kubelet.cluster.errors.append(f"kubelet {self.kubelet.node}, pod {self.name}: {exc!r}")

    def _live(self) -> None:
        spec = self.pod["spec"]
        inits, mains = spec.get("initContainers") or [], spec["containers"]
        never = spec.get("restartPolicy", "Always") == "Never"

        def mains_waiting(reason: str, message: str = "") -> list[Obj]:
            return [k.waiting(m["name"], m.get("image", ""), reason, message) for m in mains]

        def mains_running(ready: bool) -> list[Obj]:
            return [k.running(m["name"], m.get("image", ""), ready) for m in mains]

        try:
            self._sandbox()
            volumes = self._volumes()
            for c in inits + mains:
                self._env(c)  # every reference resolves before anything starts
        except ConfigError as exc:
            self.report({"phase": "Pending",
                         "containerStatuses": mains_waiting("CreateContainerConfigError", str(exc))})
            return
        done: list[Obj] = []
        for i, c in enumerate(inits):
            self.report({"phase": "Pending", "conditions": k.conditions(False, False),
                         "initContainerStatuses": [*done, k.running(c["name"], c.get("image", ""), False)],
                         "containerStatuses": mains_waiting("PodInitializing")})
            container = self._create(c, volumes, f"init-{i}")
            if container is None:
                return
            code, reason, message = self._wait(container)
            done.append(k.terminated(c["name"], c.get("image", ""), code, reason, message))
            if code != 0:
                self.report({"phase": "Failed" if never else "Pending",
                             "conditions": k.conditions(False, False), "initContainerStatuses": done,
                             "containerStatuses": mains_waiting("PodInitializing")})
                return
        started = [self._create(c, volumes, f"main-{i}") for i, c in enumerate(mains)]
        if any(s is None for s in started):
            return
        self.main = started[0]
        follower = threading.Thread(target=self._follow, args=(started[0],), daemon=True)
        follower.start()
        probe = (mains[0].get("readinessProbe") or {}).get("httpGet")
        self.report({"phase": "Running", "startTime": k.now(),
                     "conditions": k.conditions(True, probe is None),
                     "containerStatuses": mains_running(probe is None),
                     **({"initContainerStatuses": done} if done else {})})
        if probe is not None and self._probe(mains[0], probe, started[0]):
            self.report({"phase": "Running", "conditions": k.conditions(True, True),
                         "containerStatuses": mains_running(True)})
        code, reason, message = self._wait(started[0])
        follower.join(30)
        self.kubelet.cluster.end_log(self.name)
        state = k.terminated(mains[0]["name"], mains[0].get("image", ""), code, reason, message)
        phase = "Running"  # restartPolicy Always: not restarted here (see the module's docstring)
        if spec.get("restartPolicy") in ("Never", "OnFailure"):
            phase = "Succeeded" if code == 0 else "Failed"
        self.report({"phase": phase, "conditions": k.conditions(True, False), "containerStatuses": [state]})

    def _sandbox(self) -> None:
        kubelet = self.kubelet
        if not kubelet.network:
            return
        sandbox = kubelet.client.containers.create(
            kubelet.sandbox_image, entrypoint=["sleep", "infinity"], network=kubelet.network,
            user=RESTRICTED_USER, read_only=True, cap_drop=["ALL"],
            name=f"wbk-{kubelet.node}-{self.name}-sandbox-{self.suffix}",
            labels={LABEL: kubelet.tag, "workbench.test/pod": self.name})
        self.containers.append(sandbox)
        sandbox.start()
        sandbox.reload()
        self.ip = sandbox.attrs["NetworkSettings"]["Networks"][kubelet.network]["IPAddress"]
        self.network_mode = f"container:{sandbox.id}"

    def _volumes(self) -> dict[str, Path]:
        cluster = self.kubelet.cluster
        out: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            folder = self.root / "volumes" / name
            if "persistentVolumeClaim" in volume:
                folder = cluster.volumes / cluster.ns / volume["persistentVolumeClaim"]["claimName"]
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)  # any uid may write an emptyDir; a provisioned volume is group-writable
            source = volume.get("configMap") or volume.get("secret")
            if source is not None:
                source_name = source.get("name") or source.get("secretName")
                data = self._source_data("configMap" in volume, source_name)
                for key, value in data.items():
                    (folder / key).write_bytes(value)
                    (folder / key).chmod(0o644)
            out[name] = folder
        return out

    def _source_data(self, config_map: bool, name: str) -> dict[str, bytes]:
        cluster = self.kubelet.cluster
        kind = "configmaps" if config_map else "secrets"
        try:
            obj = cluster.http("GET", f"/api/v1/namespaces/{cluster.ns}/{kind}/{name}")
        except urllib.error.HTTPError:
            raise ConfigError(f'{kind[:-1]} "{name}" not found') from None
        data = {key: str(v).encode() for key, v in (obj.get("stringData") or {}).items()}
        if config_map:
            data.update({key: str(v).encode() for key, v in (obj.get("data") or {}).items()})
        else:
            data.update({key: base64.b64decode(v) for key, v in (obj.get("data") or {}).items()})
        return data

    def _env(self, c: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in c.get("env") or []:
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
                continue
            ref = entry.get("valueFrom") or {}
            source = ref.get("secretKeyRef") or ref.get("configMapKeyRef")
            if source is None:
                continue
            try:
                data = self._source_data("configMapKeyRef" in ref, source["name"])
            except ConfigError:
                if source.get("optional"):
                    continue
                raise
            if source["key"] not in data:
                if source.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {source['key']} in {source['name']}")
            env[entry["name"]] = data[source["key"]].decode()
        return env

    def _create(self, c: Obj, volumes: dict[str, Path], role: str) -> Any:
        if self.stopped.is_set() or self.kubelet.dead:
            return None
        security = {**(self.pod["spec"].get("securityContext") or {}), **(c.get("securityContext") or {})}
        user = RESTRICTED_USER
        if "runAsUser" in security:
            user = f"{security['runAsUser']}:{security.get('runAsGroup', 0)}"
        binds = []
        for mount in c.get("volumeMounts") or []:
            host = volumes[mount["name"]]
            if mount.get("subPath"):
                host = host / mount["subPath"]
                host.mkdir(parents=True, exist_ok=True)
                host.chmod(0o777)
            binds.append(f"{host}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}")
        memory = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        kubelet = self.kubelet
        image = kubelet.images.get(c.get("image", ""), c.get("image", ""))
        try:
            kubelet.client.images.get(image)
        except Exception:
            raise ImageMissing(f'failed to pull image "{c.get("image", "")}": nothing can be pulled here '
                               "(map it to a local image with DockerKubelet(images=...))") from None
        container = kubelet.client.containers.create(
            image,
            entrypoint=c.get("command"), command=c.get("args"), environment=self._env(c), user=user,
            working_dir=c.get("workingDir"), volumes=binds, network_mode=self.network_mode,
            read_only=bool(security.get("readOnlyRootFilesystem")),
            cap_drop=["ALL"] if "ALL" in ((security.get("capabilities") or {}).get("drop") or []) else None,
            security_opt=["no-new-privileges"] if security.get("allowPrivilegeEscalation") is False else None,
            mem_limit=quantity(memory) if memory else None,
            name=f"wbk-{kubelet.node}-{self.name}-{role}-{self.suffix}",
            labels={LABEL: kubelet.tag, "workbench.test/pod": self.name})
        self.containers.append(container)
        if self.stopped.is_set():
            self.stop()
            return None
        container.start()
        return container

    def _wait(self, container: Any) -> tuple[int, str, str]:
        while not self.stopped.is_set():
            try:
                code = int(container.wait(timeout=1)["StatusCode"])
                break
            except Exception:  # the wait timed out (or the container went with the pod)
                continue
        else:
            return 137, "Error", ""
        state = self.kubelet.client.api.inspect_container(container.id)["State"]
        reason = "OOMKilled" if state.get("OOMKilled") else ""
        message = ""
        return code, reason, message

    def _follow(self, container: Any) -> None:
        """The first container's output, line by line, into the double's pod log."""
        buffer = b""
        for chunk in container.logs(stream=True, follow=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self.kubelet.cluster.log(self.name, line, at=stamp())
        if buffer:
            self.kubelet.cluster.log(self.name, buffer, at=stamp())

    def _probe(self, c: Obj, probe: Obj, container: Any) -> bool:
        port = probe["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in c.get("ports") or [] if p.get("name") == port)
        url = f"http://{self.ip}:{port}{probe.get('path', '/')}"
        while not self.stopped.is_set():
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if 200 <= answer.status < 400:
                        return True
            except OSError:
                pass
            container.reload()
            if container.status in ("exited", "dead"):
                return False
            time.sleep(0.2)
        return False

    def exec(self, command: list[str], stdin: bytes | None) -> tuple[list[tuple[int, bytes]], int]:
        from docker.utils.socket import frames_iter

        api = self.kubelet.client.api
        exec_id = api.exec_create(self.main.id, command, stdin=stdin is not None, stdout=True,
                                  stderr=True)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)

        def write() -> None:
            try:
                raw.sendall(stdin or b"")
            finally:
                raw.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=write, daemon=True) if stdin is not None else None
        if writer is not None:
            writer.start()
        frames = [(stream, bytes(data)) for stream, data in frames_iter(sock, tty=False)]
        if writer is not None:
            writer.join(60)
        sock.close()
        return frames, int(api.exec_inspect(exec_id)["ExitCode"])
