"""The model server behind the V2 Open Inference Protocol: MLServer or KServe, chosen by configuration.

Workbench's contract is the protocol (``/v2/models/NAME/infer``, ``/v2/models/NAME/ready``), not a
server: MLServer's maintainer is in liquidation (its last release is 1.7.1), so every place that
starts, packages or renders a server asks a :class:`ModelServer` here for what differs:

- the packages of its local serving venv (:meth:`ModelServer.requirements`);
- the files written beside the model (settings, runtime modules) (:meth:`ModelServer.folder_files`);
- how a local replica is started (argv and environment) and recognised in ``/proc``;
- its cluster container (image, command, environment, ports) and what its default image holds, so
  that an undeclared image is still checked against the model's framework version before rollout.

Pick one with ``deploy --server mlserver|kserve`` or ``[deploy] server``; the revision records it, so
a rollback or a restarted replica uses the server it was deployed with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import MODEL_SERVERS as SERVERS
from workbench.deploy import kserve_runtime, serving
from workbench.errors import UsageError

DEFAULT = "mlserver"
KSERVE_VERSION = "0.21.0"
KSERVE_REQUIREMENTS: tuple[str, ...] = (f"kserve=={KSERVE_VERSION}", "joblib")
"""Pinned in pyproject's ``serve-kserve`` extra as well (a test keeps the two in step)."""
KSERVE_IMAGE = f"docker.io/kserve/sklearnserver:v{KSERVE_VERSION}"
KSERVE_FRAMEWORKS = ("sklearn",)

DEFAULT_IMAGE_FRAMEWORKS: dict[str, dict[str, str]] = {
    serving.DEFAULT_IMAGE + "-sklearn": {"scikit-learn": "1.6.1"},
    KSERVE_IMAGE: {"scikit-learn": "1.5.2"},
}
"""What the default images hold, for the check before rollout when ``[deploy] image_frameworks``
declares nothing; nothing can be pulled here to read them from the images themselves, so a declared
``image_frameworks`` always wins (``docs/deploy.md``). KServe: ``python/sklearnserver`` of
kserve/kserve requires ``scikit-learn~=1.5.1`` and its ``uv.lock`` locks 1.5.2 (read at the 0.20
line). MLServer 1.7.1: the sklearn runtime leaves scikit-learn unpinned, so the image holds what
resolved at its build (June 2025); 1.6.1 is an assumption, not a reading. Either way both are older
than the scikit-learn that trains today's models, which is what the check must catch."""


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int


class ModelServer:
    """What Workbench needs to know about one model server (see the module docstring)."""

    name = ""
    marker = b""
    """A byte string in the command line of a running local replica (``/proc/PID/cmdline``)."""

    def check(self, runtime: serving.Runtime) -> None:
        """Refuse, in one line, a framework this server cannot serve."""

    def requirements(self, runtime: serving.Runtime, framework_version: str | None) -> list[str]:
        raise NotImplementedError

    def folder_files(self, name: str, version: str, filename: str, runtime: serving.Runtime, *,
                     revision: int, log_rate: float, model: str | None,
                     signature: dict[str, Any] | None) -> dict[str, str]:
        raise NotImplementedError

    def argv(self, python: str, model_dir: str, name: str, ports: Ports, *, local: bool) -> list[str]:
        raise NotImplementedError

    def env(self, ports: Ports, scratch: str, host: str) -> dict[str, str]:
        raise NotImplementedError

    def metrics_url(self, ports: Ports) -> str:
        return f"http://127.0.0.1:{ports.metrics}/metrics"

    def default_image(self, runtime: serving.Runtime) -> str:
        raise NotImplementedError

    def container_ports(self) -> list[tuple[str, int]]:
        """``(name, port)`` of the cluster container."""
        raise NotImplementedError


class MLServer(ModelServer):
    """Seldon's MLServer 1.7.1 with its per-framework runtimes (:mod:`workbench.deploy.serving`)."""

    name = "mlserver"
    marker = b"mlserver"

    def requirements(self, runtime: serving.Runtime, framework_version: str | None) -> list[str]:
        return serving.requirements(runtime, framework_version)

    def folder_files(self, name: str, version: str, filename: str, runtime: serving.Runtime, *,
                     revision: int, log_rate: float, model: str | None,
                     signature: dict[str, Any] | None) -> dict[str, str]:
        return serving.folder_files(name, version, filename, runtime, revision=revision, log_rate=log_rate,
                                    model=model, signature=signature)

    def argv(self, python: str, model_dir: str, name: str, ports: Ports, *, local: bool) -> list[str]:
        if local:
            return [python, "-m", "mlserver.cli.main", "start", model_dir]
        return ["mlserver", "start", model_dir]

    def env(self, ports: Ports, scratch: str, host: str) -> dict[str, str]:
        return serving.server_env(ports.http, ports.grpc, ports.metrics, scratch=scratch, host=host)

    def default_image(self, runtime: serving.Runtime) -> str:
        return serving.DEFAULT_IMAGE + runtime.image_suffix

    def container_ports(self) -> list[tuple[str, int]]:
        return [("http", serving.HTTP_PORT), ("grpc", serving.GRPC_PORT), ("metrics", serving.METRICS_PORT)]


class KServe(ModelServer):
    """KServe's ``kserve.ModelServer`` running :mod:`workbench.deploy.kserve_runtime` (scikit-learn)."""

    name = "kserve"
    marker = kserve_runtime.MODULE.encode()

    def check(self, runtime: serving.Runtime) -> None:
        if runtime.framework not in KSERVE_FRAMEWORKS:
            raise UsageError(
                f"the kserve server serves scikit-learn models here, not {runtime.framework}",
                "deploy it with --server mlserver (or set [deploy] server = \"mlserver\")",
            )

    def requirements(self, runtime: serving.Runtime, framework_version: str | None) -> list[str]:
        package = runtime.framework_package
        pin = f"{package}=={framework_version}" if framework_version else package
        return [*KSERVE_REQUIREMENTS, pin]

    def folder_files(self, name: str, version: str, filename: str, runtime: serving.Runtime, *,
                     revision: int, log_rate: float, model: str | None,
                     signature: dict[str, Any] | None) -> dict[str, str]:
        return {
            kserve_runtime.SETTINGS_FILE: kserve_runtime.settings(
                name, version, filename, revision=revision, log_rate=log_rate, model=model,
                signature=signature),
            f"{kserve_runtime.MODULE}.py": kserve_runtime.SOURCE,
        }

    def argv(self, python: str, model_dir: str, name: str, ports: Ports, *, local: bool) -> list[str]:
        script = str(Path(model_dir) / f"{kserve_runtime.MODULE}.py")
        # Locally only HTTP (the front door speaks HTTP; KServe's gRPC server listens on every
        # interface and cannot be told otherwise); on a cluster gRPC too, on its usual port.
        grpc = ["--enable_grpc", "false"] if local else ["--grpc_port", str(ports.grpc)]
        return [python, script, "--model_name", name, "--http_port", str(ports.http), *grpc,
                "--enable_latency_logging", "false"]

    def env(self, ports: Ports, scratch: str, host: str) -> dict[str, str]:
        return {kserve_runtime.HOST_ENV: host, "HOME": scratch}

    def metrics_url(self, ports: Ports) -> str:
        return f"http://127.0.0.1:{ports.http}/metrics"

    def default_image(self, runtime: serving.Runtime) -> str:
        return KSERVE_IMAGE

    def container_ports(self) -> list[tuple[str, int]]:
        return [("http", serving.HTTP_PORT), ("grpc", serving.GRPC_PORT)]


_SERVERS: dict[str, ModelServer] = {"mlserver": MLServer(), "kserve": KServe()}


def get(name: str | None) -> ModelServer:
    """The server called ``name`` ("" or None: MLServer, what revisions recorded before the choice)."""
    key = (name or DEFAULT).strip().lower()
    if key not in _SERVERS:
        raise UsageError(f"unknown model server '{name}'", f"use one of {', '.join(SERVERS)}")
    return _SERVERS[key]


def venv_env(server: ModelServer) -> str:
    """The variable that points a server at a ready venv instead of building one."""
    base = "WORKBENCH_SERVE_VENV"
    return base if server.name == "mlserver" else f"{base}_{server.name.upper()}"


def venv_ready(server: ModelServer, runtime: serving.Runtime, framework_version: str | None) -> bool:
    """Whether :func:`ensure_venv` would return at once (no build needed)."""
    reqs = server.requirements(runtime, framework_version)
    return serving.serve_venv_ready(runtime, framework_version, reqs=reqs, env=venv_env(server))


def ensure_venv(server: ModelServer, runtime: serving.Runtime, framework_version: str | None,
                progress: Any = None) -> Path:
    """The local venv that runs ``server`` for this framework version (built on first use)."""
    server.check(runtime)
    reqs = server.requirements(runtime, framework_version)
    return serving.ensure_serve_venv(runtime, framework_version, progress, reqs=reqs, env=venv_env(server))


def image_frameworks(image: str) -> dict[str, str]:
    """What a default image is known to hold (empty for any other image)."""
    return dict(DEFAULT_IMAGE_FRAMEWORKS.get(image, {}))
