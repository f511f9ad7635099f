"""A Kubernetes API-server test double: kmock's emulator plus what a run needs from a cluster.

kmock keeps objects, lists, watches and discovery; this double adds, in the test process only:

* pod logs (``/log`` with ``follow``, ``timestamps`` and ``sinceTime``), fed by the test, with
  scripted connection drops;
* ``pods/exec`` over WebSocket (``v5.channel.k8s.io``): the staging ``tar -x`` unpacks into a host
  folder standing for the PersistentVolumeClaim, the collection ``find -newer | tar -c`` packs the
  files written after the staging marker;
* fault injection (answer a request with a Status of any code);
* a scripted controller thread: helper pods become Running, each Job gets a pod whose story the
  test writes (pending reasons, running, log lines, files written, exit code, Job conditions).

The server runs on its own asyncio loop in a thread; the product's synchronous client talks to it
over HTTP like to any API server, through a kubeconfig file the double writes.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock

LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
EXEC = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec$")


def stamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    base = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 10**9:09d}Z"


@attrs.define(kw_only=True)
class _Emulator(kmock.KubernetesEmulator):
    double: Any = None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        fault = self.double.fault_for(raw_request.method, raw_request.path, body)
        if fault is not None:
            status, doc = fault
            return aiohttp.web.json_response(doc, status=status)
        proxied = await self.double.serve_proxy(raw_request, body)
        if proxied is not None:
            return proxied
        if raw_request.method == "GET" and "labelSelector" in raw_request.query:
            listed = await self.double.serve_selected(raw_request)
            if listed is not None:
                return listed
        match = LOG.match(raw_request.path)
        if match:
            return await self.double.serve_log(raw_request, match.group(1), match.group(2))
        match = EXEC.match(raw_request.path)
        if match:
            return await self.double.serve_exec(raw_request, match.group(1), match.group(2))
        response = await super().__call__(raw_request)
        if raw_request.method in ("PUT", "PATCH", "POST") and response.status < 300:
            self.double.after_write(raw_request.path)
        return response


def status_doc(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": {},
    }


@dataclass
class PodLog:
    lines: list[tuple[str, bytes]] = field(default_factory=list)
    ended: bool = False
    drop_after: list[int] = field(default_factory=list)
    """Close the next follow connections abruptly after this many lines each (one entry per drop)."""


LIST = re.compile(r"^/(?:api|apis/[^/]+)/([^/]+)/(?:namespaces/([^/]+)/)?([^/]+)$")


class KubeDouble:
    RESOURCES: tuple[str, ...] = (
        "v1/pods",
        "v1/persistentvolumeclaims",
        "v1/nodes",
        "batch/v1/jobs",
        "authorization.k8s.io/v1/selfsubjectaccessreviews",
        "v1/namespaces",
    )
    """What the server knows (a real API server knows every built-in kind; kmock those declared)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.volumes = root / "volumes"
        self.volumes.mkdir(parents=True, exist_ok=True)
        self.logs: dict[str, PodLog] = {}
        self.faults: list[Callable[[str, str, bytes], tuple[int, dict[str, Any]] | None]] = []
        self.requests: list[tuple[str, str]] = []
        self.exec_count = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="kube-double", daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("kube double did not start")

    # -- server lifecycle ----------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with _Emulator(double=self) as emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            for resource in self.RESOURCES:
                emulator.resources[resource] = {}
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path: Path, namespace: str = "ml", token: str = "t0ken") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "double",
                    "clusters": [{"name": "double", "cluster": {"server": self.url}}],
                    "users": [{"name": "me", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "double",
                            "context": {"cluster": "double", "user": "me", "namespace": namespace},
                        }
                    ],
                }
            )
        )
        return path

    # -- plain HTTP for the controller and assertions -------------------------------------------
    def http(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def objects(self, plural_path: str) -> list[dict[str, Any]]:
        try:
            return list(self.http("GET", plural_path).get("items") or [])
        except urllib.error.HTTPError:
            return []

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self.http("PATCH", path, body, "application/merge-patch+json")

    async def serve_selected(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        """A list filtered by ``labelSelector`` (kmock ignores it): ``k=v`` terms joined by commas."""
        match = LIST.match(request.path)
        if not match or request.query.get("watch") in ("true", "1"):
            return None
        version, namespace, plural = match.groups()
        terms = [t.split("=", 1) for t in request.query["labelSelector"].split(",") if "=" in t]
        items = []
        for (resource, ns, _), obj in list(self.emulator.objects.items()):
            if obj.deleted or resource.plural != plural or resource.version != version:
                continue
            if namespace is not None and ns != namespace:
                continue
            labels = (obj.raw.get("metadata") or {}).get("labels") or {}
            if all(labels.get(k.strip().rstrip("=")) == v.strip() for k, v in terms):
                items.append(obj.raw)
        return aiohttp.web.json_response({"metadata": {"resourceVersion": "..."}, "items": items})

    async def serve_proxy(self, request: aiohttp.web.BaseRequest,
                          body: bytes) -> aiohttp.web.StreamResponse | None:
        """The service and pod proxy subresources (None: not served here, kmock answers)."""
        return None

    def after_write(self, path: str) -> None:
        """Called on the server's loop after each successful write (the cluster double bumps
        ``metadata.generation`` there, as the API server does on a spec change)."""

    # -- faults --------------------------------------------------------------------------------
    def fault_for(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]] | None:
        self.requests.append((method, path))
        for fault in self.faults:
            answer = fault(method, path, body)
            if answer is not None:
                return answer
        return None

    # -- logs ----------------------------------------------------------------------------------
    def log(self, pod: str, text: str | bytes, at: str | None = None) -> None:
        data = text.encode() if isinstance(text, str) else text
        entry = self.logs.setdefault(pod, PodLog())
        self.loop.call_soon_threadsafe(entry.lines.append, (at or stamp(), data))

    def end_log(self, pod: str) -> None:
        entry = self.logs.setdefault(pod, PodLog())
        self.loop.call_soon_threadsafe(setattr, entry, "ended", True)

    async def serve_log(
        self, request: aiohttp.web.BaseRequest, namespace: str, pod: str
    ) -> aiohttp.web.StreamResponse:
        entry = self.logs.setdefault(pod, PodLog())
        follow = request.query.get("follow") == "true"
        timestamps = request.query.get("timestamps") == "true"
        since = request.query.get("sinceTime")
        since_key = since.replace("Z", ".000000000Z") if since else None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        index = 0
        sent = 0
        drop = entry.drop_after.pop(0) if (follow and entry.drop_after) else None
        while True:
            while index < len(entry.lines):
                at, text = entry.lines[index]
                index += 1
                if since_key is not None and at < since_key:
                    continue
                await response.write((f"{at} ".encode() if timestamps else b"") + text + b"\n")
                sent += 1
                if drop is not None and sent >= drop:
                    await asyncio.sleep(0.05)
                    assert request.transport is not None
                    request.transport.close()  # the connection drops mid-stream
                    return response
            if not follow or entry.ended:
                break
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    # -- exec ----------------------------------------------------------------------------------
    def volume_of(self, namespace: str, pod_name: str) -> Path:
        pod = self.http("GET", f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
        for volume in pod["spec"]["volumes"]:
            if "persistentVolumeClaim" in volume:
                folder = self.volumes / namespace / volume["persistentVolumeClaim"]["claimName"]
                folder.mkdir(parents=True, exist_ok=True)
                return folder
        raise AssertionError("pod has no volume")

    async def serve_exec(
        self, request: aiohttp.web.BaseRequest, namespace: str, pod: str
    ) -> aiohttp.web.StreamResponse:
        self.exec_count += 1
        command = request.query.getall("command")
        ws = aiohttp.web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(request)  # type: ignore[arg-type]
        volume = await asyncio.to_thread(self.volume_of, namespace, pod)
        script = command[-1]
        if "tar -xf" in script:
            received = bytearray()
            async for message in ws:
                data = message.data if isinstance(message.data, bytes) else message.data.encode()
                if data[:1] == b"\x00":
                    received += data[1:]
                elif data[:2] == b"\xff\x00":
                    break
            with tarfile.open(fileobj=io.BytesIO(bytes(received)), mode="r|") as tar:
                tar.extractall(volume, filter="data")
            (volume / "run").mkdir(exist_ok=True)
            (volume / "run" / "staged").write_text("")
        elif "tar -cf" in script:
            marker = (volume / "run" / "staged").stat().st_mtime_ns
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for path in sorted((volume / "workspace").rglob("*")):
                    if path.is_file() and path.stat().st_mtime_ns > marker:
                        tar.add(path, arcname="./" + path.relative_to(volume / "workspace").as_posix())
            await ws.send_bytes(b"\x01" + buffer.getvalue())
        await ws.send_bytes(b"\x03" + json.dumps({"metadata": {}, "status": "Success"}).encode())
        await ws.close()
        return ws


@dataclass
class Story:
    """What the scripted controller does with a Job's pod."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    """Pod status documents to show, one per tick, before the pod runs (or forever if ``stuck``)."""
    stuck: bool = False
    lines: list[str] = field(default_factory=list)
    drop_after: list[int] = field(default_factory=list)
    writes: dict[str, bytes] = field(default_factory=dict)
    exit_code: int = 0
    terminated_reason: str = ""
    job_failure: str = "BackoffLimitExceeded"
    hold: threading.Event | None = None
    """If set, the pod keeps running until the event is set."""
    condition_after: float | None = 0.0
    """Seconds between the pod's end and the Job controller's condition (None: never written)."""


class Controller:
    """Plays kubelet and the Job controller for the double, one thread, ticking every 20 ms."""

    def __init__(self, double: KubeDouble, namespace: str, story: Callable[[dict[str, Any]], Story]) -> None:
        self.double = double
        self.ns = namespace
        self.story = story
        self.handled: set[str] = set()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for thread in self.threads:
            thread.join(5)

    def _loop(self) -> None:
        pods = f"/api/v1/namespaces/{self.ns}/pods"
        jobs = f"/apis/batch/v1/namespaces/{self.ns}/jobs"
        while not self.stop.is_set():
            for pod in self.double.objects(pods):
                name = pod["metadata"]["name"]
                role = pod["metadata"].get("labels", {}).get("workbench.dev/role")
                if role in ("stage", "collect") and (pod.get("status") or {}).get("phase") != "Running":
                    self.double.patch(f"{pods}/{name}/status", {"status": {"phase": "Running"}})
            present = {job["metadata"]["name"] for job in self.double.objects(jobs)}
            for pod in self.double.objects(pods):  # the garbage collector: pods of deleted Jobs go
                owner = pod["metadata"].get("labels", {}).get("job-name")
                if owner and owner in self.handled and owner not in present:
                    try:
                        self.double.http("DELETE", f"{pods}/{pod['metadata']['name']}")
                    except urllib.error.HTTPError:
                        pass
            for job in self.double.objects(jobs):
                name = job["metadata"]["name"]
                if name not in self.handled:
                    self.handled.add(name)
                    thread = threading.Thread(target=self._run_job, args=(job,), daemon=True)
                    self.threads.append(thread)
                    thread.start()
            time.sleep(0.02)

    def _run_job(self, job: dict[str, Any]) -> None:
        story = self.story(job)
        pods = f"/api/v1/namespaces/{self.ns}/pods"
        jobs = f"/apis/batch/v1/namespaces/{self.ns}/jobs/{job['metadata']['name']}"
        template = job["spec"]["template"]
        pod_name = f"{job['metadata']['name']}-abcde"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": self.ns,
                "creationTimestamp": stamp(),
                "labels": {**template["metadata"]["labels"], "job-name": job["metadata"]["name"]},
            },
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }
        self.double.http("POST", pods, pod)
        for status in story.pending:
            self.double.patch(f"{pods}/{pod_name}/status", {"status": status})
            time.sleep(0.05)
        if story.stuck:
            return
        if story.drop_after:
            self.double.logs.setdefault(pod_name, PodLog()).drop_after = list(story.drop_after)
        self.double.patch(
            f"{pods}/{pod_name}/status",
            {
                "status": {
                    "phase": "Running",
                    "containerStatuses": [{"name": "run", "state": {"running": {}}}],
                }
            },
        )
        for line in story.lines:
            self.double.log(pod_name, line)
            time.sleep(0.01)
        if story.writes:
            claim = template["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
            workspace = self.double.volumes / self.ns / claim / "workspace"
            time.sleep(0.01)
            for rel, data in story.writes.items():
                (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
                (workspace / rel).write_bytes(data)
        if story.hold is not None:
            while not story.hold.wait(0.05):
                if self.stop.is_set():
                    return
        time.sleep(0.1)
        self.double.end_log(pod_name)
        terminated: dict[str, Any] = {
            "exitCode": story.exit_code,
            "reason": story.terminated_reason or ("Completed" if not story.exit_code else "Error"),
        }
        if story.exit_code == 0:
            condition = {"type": "Complete", "status": "True"}
        else:
            condition = {
                "type": "Failed",
                "status": "True",
                "reason": story.job_failure,
                "message": "Job has reached the specified backoff limit",
            }
        pod_status = {
            "status": {
                "phase": "Succeeded" if story.exit_code == 0 else "Failed",
                "containerStatuses": [{"name": "run", "state": {"running": None, "terminated": terminated}}],
            }
        }
        # The order of the real controllers: a pod that ends by itself ends before the Job
        # controller writes the Job's condition; on DeadlineExceeded the Job controller fails the
        # Job first, then kills its pod (written the other way round, a loaded machine let the
        # executor see the pod end before the Job's reason and report "exited with code 1").
        deadline_first = story.exit_code != 0 and story.job_failure == "DeadlineExceeded"
        try:
            if deadline_first:
                self.double.patch(f"{jobs}/status", {"status": {"conditions": [condition]}})
            self.double.patch(f"{pods}/{pod_name}/status", pod_status)
            if not deadline_first and story.condition_after is not None:
                if story.condition_after and self.stop.wait(story.condition_after):
                    return
                self.double.patch(f"{jobs}/status", {"status": {"conditions": [condition]}})
        except urllib.error.HTTPError:
            pass  # deleted meanwhile (cancel)
