"""The local target: serve a model on this machine, in Docker when it can, else as plain processes.

A replica is one model server process (MLServer or KServe, :mod:`workbench.deploy.servers`) with its
own HTTP, gRPC and metrics ports on 127.0.0.1. There is
no load balancer: ``N`` replicas are ``N`` servers on ``N`` ports, recorded in the store, and
:meth:`DeployService.predict` spreads requests over the ready ones round-robin (a client such as the
benchmark can do the same with :attr:`Replica.url`). That is honest about what runs here, and keeps
nothing running but the servers themselves.

In Docker a replica runs the way OpenShift's restricted rules would run it: an arbitrary user id in
group 0 (``1000770000:0``), a read-only root file system with a writable ``/tmp``, all capabilities
dropped, no privilege escalation, the model folder mounted read-only, and the serving venv's
site-packages mounted read-only on top of the base image's Python (no image build, no registry).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench.deploy import servers, serving
from workbench.deploy.capture import REPLICA_ENV, ROTATE_ENV, SPOOL_ENV
from workbench.errors import DeployError

DOCKER_USER = "1000770000:0"
SPOOL_MOUNT = "/var/run/workbench-spool"
DEFAULT_LOCAL_IMAGE = "workbench-python:bookworm"
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class Replica:
    """One running server of a local deployment (stored as JSON in ``deployments.runtime``)."""

    index: int
    revision: int
    kind: str  # process | docker
    http_port: int
    grpc_port: int
    metrics_port: int
    model_dir: str
    log: str
    pid: int = 0
    container: str = ""
    server: str = "mlserver"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ports(self) -> servers.Ports:
        return servers.Ports(self.http_port, self.grpc_port, self.metrics_port)

    @property
    def metrics_url(self) -> str:
        return servers.get(self.server).metrics_url(self.ports)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Replica:
        return cls(**data)


_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=512)


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct ports that were free a moment ago and that this process has not handed out lately.

    The sockets are held open together while the ports are chosen, so one call never returns the same
    port twice (the kernel may hand a just-closed port out again: a replica whose gRPC and metrics
    servers got the same port died at start-up, seen on a loaded CI machine)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            if port not in _HANDED_OUT:
                ports.append(port)
        _HANDED_OUT.extend(ports)
        return tuple(ports)
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def local_mode() -> str:
    """``docker`` when a daemon answers and the serving base image is present, else ``process``.

    ``WORKBENCH_LOCAL_RUNTIME=docker|process`` forces one.
    """
    forced = os.environ.get("WORKBENCH_LOCAL_RUNTIME", "auto")
    if forced in ("docker", "process"):
        return forced
    if sys.version_info[:2] != (3, 11):  # the venv is mounted onto the image's Python 3.11
        return "process"
    try:
        with docker_client(timeout=5) as client:
            client.images.get(local_image())
    except Exception:
        return "process"
    return "docker"


@contextlib.contextmanager
def docker_client(timeout: int = 60) -> Iterator[Any]:
    """A Docker client for one operation, closed afterwards (the SDK is imported on first use)."""
    import docker

    client = docker.from_env(timeout=timeout)
    try:
        yield client
    finally:
        client.close()


def local_image() -> str:
    return os.environ.get("WORKBENCH_SERVE_IMAGE", DEFAULT_LOCAL_IMAGE)


def start_replica(
    *,
    name: str,
    index: int,
    revision: int,
    model_dir: Path,
    venv: Path,
    state_dir: Path,
    mode: str,
    labels: dict[str, str],
    ports: tuple[int, int, int] | None = None,
    spool_dir: Path | None = None,
    server: str = "mlserver",
) -> Replica:
    """Start one server for the model folder ``model_dir``; returns at once (see :func:`wait_ready`).

    ``ports`` (http, grpc, metrics): a restarted replica keeps its own; else three free ones.
    ``spool_dir``: where the capturing runtime (if the folder has one) appends this replica's
    predictions, ``r<revision>-<index>.jsonl``."""
    if ports is None:
        http, grpc, metrics = free_ports(3)
        ports = (http, grpc, metrics)
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"r{revision}-{index}.log"
    replica = Replica(
        index=index,
        revision=revision,
        kind=mode,
        http_port=ports[0],
        grpc_port=ports[1],
        metrics_port=ports[2],
        model_dir=str(model_dir),
        log=str(log),
        server=servers.get(server).name,
    )
    spool_env: dict[str, str] = {}
    if spool_dir is not None:
        spool_dir.mkdir(parents=True, exist_ok=True)
        spool_env = {SPOOL_ENV: str(spool_dir), REPLICA_ENV: str(index)}
        if os.environ.get(ROTATE_ENV):
            spool_env[ROTATE_ENV] = os.environ[ROTATE_ENV]
    if mode == "docker":
        replica.container = _start_container(replica, name, venv, labels, spool_dir)
    else:
        scratch = state_dir / f"scratch-r{revision}-{index}"
        scratch.mkdir(parents=True, exist_ok=True)
        impl = servers.get(replica.server)
        env = {**_base_env(), **impl.env(replica.ports, str(scratch), "127.0.0.1"), **spool_env}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                impl.argv(str(venv / "bin" / "python"), str(model_dir), name, replica.ports, local=True),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=scratch,
                env=env,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        replica.pid = proc.pid
    return replica


def _base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
    return {k: v for k, v in os.environ.items() if k in keep}


def _start_container(
    replica: Replica, name: str, venv: Path, labels: dict[str, str], spool_dir: Path | None = None
) -> str:
    site = "/opt/workbench-serve/site-packages"
    impl = servers.get(replica.server)
    env = impl.env(replica.ports, "/tmp", "127.0.0.1")
    env.update({"PYTHONPATH": site, "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"})
    volumes = {
        replica.model_dir: {"bind": serving.MODEL_MOUNT, "mode": "ro"},
        str(serving.venv_site_packages(venv)): {"bind": site, "mode": "ro"},
    }
    if spool_dir is not None:  # group 0 may write it: the container runs as an arbitrary uid in group 0
        spool_dir.chmod(0o2775)
        with contextlib.suppress(PermissionError):
            os.chown(spool_dir, -1, 0)
        volumes[str(spool_dir)] = {"bind": SPOOL_MOUNT, "mode": "rw"}
        env.update({SPOOL_ENV: SPOOL_MOUNT, REPLICA_ENV: str(replica.index)})
        if os.environ.get(ROTATE_ENV):
            env[ROTATE_ENV] = os.environ[ROTATE_ENV]
    try:
        with docker_client() as client:
            container = client.containers.run(
                local_image(),
                impl.argv("python3", serving.MODEL_MOUNT, name, replica.ports, local=True),
                detach=True,
                user=DOCKER_USER,
                read_only=True,
                tmpfs={"/tmp": "rw,mode=1777"},
                network_mode="host",
                environment=env,
                working_dir="/",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                labels=labels,
                volumes=volumes,
            )
    except Exception as exc:
        raise DeployError(
            f"cannot start a container for '{name}': {exc}",
            "set WORKBENCH_LOCAL_RUNTIME=process to serve without Docker",
        ) from None
    return str(container.id)


def alive(replica: Replica) -> bool:
    """Whether the replica's process or container is still running."""
    if replica.kind == "docker":
        return _container_state(replica.container) == "running"
    proc = _CHILDREN.get(replica.pid)
    if proc is not None:
        return proc.poll() is None
    try:
        cmdline = Path(f"/proc/{replica.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return servers.get(replica.server).marker in cmdline


def _container_state(container_id: str) -> str:
    try:
        with docker_client(timeout=10) as client:
            state: str = client.containers.get(container_id).status
        return state
    except Exception:
        return "missing"


def stop_replica(replica: Replica, timeout: float = 10.0) -> None:
    """Stop a replica and reap it; quiet if it is already gone."""
    if replica.kind == "docker":
        with contextlib.suppress(Exception), docker_client(timeout=30) as client:
            container = client.containers.get(replica.container)
            container.stop(timeout=int(timeout))
            container.remove(force=True)
        return
    if not alive(replica):
        _CHILDREN.pop(replica.pid, None)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(replica.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(replica) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(replica):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(replica.pid, signal.SIGKILL)
    proc = _CHILDREN.pop(replica.pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)


def log_tail(replica: Replica, lines: int = 40) -> list[str]:
    if replica.kind == "docker":
        with contextlib.suppress(Exception), docker_client(timeout=10) as client:
            raw = client.containers.get(replica.container).logs(tail=lines)
            return bytes(raw).decode("utf-8", "replace").splitlines()
        return []
    try:
        text = Path(replica.log).read_bytes()[-20000:].decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def http_json(url: str, payload: Any | None = None, timeout: float = 30.0) -> tuple[int, Any]:
    """GET (or POST ``payload`` as JSON) and decode the JSON answer: ``(status, body)``."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            status: int = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    text = body.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def is_ready(name: str, replica: Replica) -> bool:
    """The model-level readiness check (``/v2/models/{name}/ready``), not just the server's."""
    try:
        status, _ = http_json(f"{replica.url}/v2/models/{name}/ready", timeout=2.0)
    except (OSError, urllib.error.URLError):
        return False
    return status == 200


def wait_ready(
    name: str, replicas: list[Replica], timeout: float, framework: str, framework_version: str | None
) -> None:
    """Wait until every replica answers the model-level readiness check, or explain why not."""
    deadline = time.monotonic() + timeout
    pending = list(replicas)
    while pending:
        for replica in list(pending):
            if is_ready(name, replica):
                pending.remove(replica)
            elif not alive(replica):
                raise DeployError(
                    load_failure(replica, framework, framework_version),
                    "the previous revision (if any) keeps serving; see 'workbench deployments'",
                )
        if pending and time.monotonic() > deadline:
            tail = [ln for ln in log_tail(pending[0], 5) if ln.strip()]
            raise DeployError(
                f"'{name}' replica {pending[0].index} not ready after {timeout:.0f}s"
                + (f": {tail[-1].strip()}" if tail else ""),
                "the previous revision (if any) keeps serving; 'workbench rollback' returns to it",
            )
        if pending:
            time.sleep(0.1)


def load_failure(replica: Replica, framework: str, framework_version: str | None) -> str:
    """Say why a server died before it became ready, in one line, from the end of its log."""
    lines = [ln.strip() for ln in log_tail(replica, 60) if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln or "Exception" in ln]
    reason = errors[-1] if errors else (lines[-1] if lines else "no output")
    saved = f" (the model was saved with {framework} {framework_version})" if framework_version else ""
    return f"the server could not load the model{saved}: {reason[:300]}"


class LocalTarget:
    """Deploy, scale, observe and remove replicas on this machine.

    ``runtime`` (what the store keeps per deployment) is ``{"mode": ..., "replicas": [Replica...]}``.
    A new revision is rolled out the way a Deployment with ``maxUnavailable: 0`` does it: the new
    replicas start and must pass the model-level readiness check before the old ones are stopped;
    if they never get ready they are stopped and the old ones keep serving.
    """

    def __init__(self, state_root: Path, spool_root: Path | None = None) -> None:
        self.state_root = state_root
        self.spool_root = spool_root

    def spool_dir(self, name: str) -> Path | None:
        """Where this deployment's replicas spool their predictions (None: no capture)."""
        return self.spool_root / name if self.spool_root is not None else None

    def model_folder(self, spec_name: str, revision: int) -> Path:
        return self.state_root / spec_name / f"r{revision}"

    def prepare_folder(
        self, name: str, revision: int, version: str, filename: str, runtime: serving.Runtime, fetch: Any,
        log_rate: float = 0.0, model: str | None = None, signature: dict[str, Any] | None = None,
        server: servers.ModelServer | None = None,
    ) -> Path:
        """Fill ``.workbench/deploy/NAME/rREV`` with the model and its settings; make it read-only."""
        folder = self.model_folder(name, revision)
        if folder.exists():
            _make_writable(folder)
            import shutil

            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        fetch(folder / filename)
        impl = server or servers.get(None)
        files = impl.folder_files(name, version, filename, runtime, revision=revision, log_rate=log_rate,
                                  model=model, signature=signature)
        for file, text in files.items():
            (folder / file).write_text(text, encoding="utf-8")
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        return folder

    def roll_out(
        self,
        *,
        name: str,
        revision: int,
        replicas: int,
        folder: Path,
        venv: Path,
        old: list[Replica],
        labels: dict[str, str],
        timeout: float,
        framework: str,
        framework_version: str | None,
        switch: Any = None,
        server: str = "mlserver",
    ) -> tuple[str, list[Replica]]:
        """Start the new replicas; once all are ready, ``switch(mode, started)`` points the record and
        the front door at them, and only then are the old ones stopped (no request meets a closed
        port)."""
        mode = local_mode()
        started: list[Replica] = []
        try:
            for index in range(replicas):
                started.append(
                    start_replica(
                        name=name,
                        index=index,
                        revision=revision,
                        model_dir=folder,
                        venv=venv,
                        state_dir=self.state_root / name / "logs",
                        mode=mode,
                        labels=labels,
                        spool_dir=self.spool_dir(name),
                        server=server,
                    )
                )
            wait_ready(name, started, timeout, framework, framework_version)
            if switch is not None:
                switch(mode, started)
        except BaseException:
            for replica in started:
                stop_replica(replica)
            raise
        for replica in old:
            stop_replica(replica)
        return mode, started

    def scale(
        self,
        *,
        name: str,
        replicas: list[Replica],
        want: int,
        venv: Path,
        labels: dict[str, str],
        timeout: float,
        framework: str,
        framework_version: str | None,
    ) -> list[Replica]:
        live = [r for r in replicas if alive(r)]
        for dead in (r for r in replicas if r not in live):
            stop_replica(dead)
        if want < len(live):
            for replica in live[want:]:
                stop_replica(replica)
            return live[:want]
        if not live and want and not replicas:
            raise DeployError(f"'{name}' has no replica to copy", "deploy it again")
        template = live[0] if live else replicas[0]
        used = {r.index for r in live}
        started: list[Replica] = []
        try:
            index = 0
            while len(live) + len(started) < want:
                if index not in used:
                    started.append(
                        start_replica(
                            name=name,
                            index=index,
                            revision=template.revision,
                            model_dir=Path(template.model_dir),
                            venv=venv,
                            state_dir=self.state_root / name / "logs",
                            mode=template.kind,
                            labels=labels,
                            spool_dir=self.spool_dir(name),
                            server=template.server,
                        )
                    )
                index += 1
            wait_ready(name, started, timeout, framework, framework_version)
        except BaseException:
            for replica in started:
                stop_replica(replica)
            raise
        return sorted(live + started, key=lambda r: r.index)

    def remove(self, replicas: list[Replica]) -> None:
        for replica in replicas:
            stop_replica(replica)


def _make_writable(folder: Path) -> None:
    folder.chmod(0o755)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o644)
