"""The model server: MLServer 1.7.1, one runtime per framework, and the venv it runs from locally.

Why MLServer (see docs/deploy.md for the comparison with KServe's Python model server): it ships
ready runtimes for scikit-learn, XGBoost and LightGBM that load a model file from a folder with a
``model-settings.json`` beside it, speaks the V2 Open Inference Protocol over REST and gRPC, exposes
Prometheus metrics on its own port, has a model-level readiness check, and is the server KServe itself
uses for those formats (its ``kserve-mlserver`` runtime), so one image serves the local target, a plain
Deployment and an InferenceService alike. ONNX and TorchScript have no MLServer runtime of their
own; :data:`CUSTOM_RUNTIME_SOURCE` is a small one, written next to the model file.

Locally the server runs from a dedicated virtual environment built on first use under
``~/.cache/workbench/serve/<key>`` (``WORKBENCH_SERVE_VENV`` overrides it): MLServer and its
runtimes are heavy and never enter the main install. The key covers the pinned requirements, the
framework's own version (a pickled model loads only under the version it was saved with) and the
Python version.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import DeployError
from workbench.paths import user_cache_dir

MLSERVER_VERSION = "1.7.1"
BASE_REQUIREMENTS: tuple[str, ...] = (f"mlserver=={MLSERVER_VERSION}", "uvloop<0.22")
"""Pinned in pyproject's ``serve`` extra as well (a test keeps the two in step). uvloop 0.22+ kills
MLServer's inference worker while ``/v2/health/ready`` keeps answering 200."""

DEFAULT_IMAGE = f"docker.io/seldonio/mlserver:{MLSERVER_VERSION}"
"""The cluster image: MLServer's own, which runs as a non-root user with group-0 writable folders."""

MODEL_MOUNT = "/mnt/models"
HTTP_PORT = 8080
GRPC_PORT = 8081
METRICS_PORT = 8082


@dataclass(frozen=True)
class Runtime:
    """How one framework's models are served."""

    framework: str
    implementation: str
    """The MLServer runtime class (``module.Class``)."""
    packages: tuple[str, ...]
    """pip requirements on top of MLServer (the framework itself is pinned to the model's version)."""
    framework_package: str
    """The framework's package on PyPI, pinned to the version the model was saved with."""
    kserve_format: str
    """``modelFormat.name`` in a KServe InferenceService."""
    suffixes: tuple[str, ...]
    image_suffix: str
    """Tag suffix of MLServer's per-runtime image (``1.7.1-sklearn``); empty for the full image."""


CUSTOM_MODULE = "workbench_runtime"

RUNTIMES: dict[str, Runtime] = {
    "sklearn": Runtime(
        "sklearn",
        "mlserver_sklearn.SKLearnModel",
        (f"mlserver-sklearn=={MLSERVER_VERSION}",),
        "scikit-learn",
        "sklearn",
        (".joblib", ".pkl", ".pickle"),
        "-sklearn",
    ),
    "xgboost": Runtime(
        "xgboost",
        "mlserver_xgboost.XGBoostModel",
        (f"mlserver-xgboost=={MLSERVER_VERSION}",),
        "xgboost",
        "xgboost",
        (".json", ".ubj", ".bst", ".model"),
        "-xgboost",
    ),
    "lightgbm": Runtime(
        "lightgbm",
        "mlserver_lightgbm.LightGBMModel",
        (f"mlserver-lightgbm=={MLSERVER_VERSION}",),
        "lightgbm",
        "lightgbm",
        (".txt", ".bst", ".model"),
        "-lightgbm",
    ),
    "onnx": Runtime("onnx", f"{CUSTOM_MODULE}.OnnxModel", (), "onnxruntime", "onnx", (".onnx",), ""),
    "pytorch": Runtime(
        "pytorch",
        f"{CUSTOM_MODULE}.TorchScriptModel",
        (),
        "torch",
        "pytorch",
        (".pt", ".pth", ".torchscript"),
        "",
    ),
}
ALIASES = {
    "scikit-learn": "sklearn",
    "sk-learn": "sklearn",
    "torch": "pytorch",
    "lgbm": "lightgbm",
    "xgb": "xgboost",
    "onnxruntime": "onnx",
}

CUSTOM_RUNTIME_SOURCE = '''"""MLServer runtimes for ONNX and TorchScript models (written by Workbench)."""
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        import onnxruntime
        self._session = onnxruntime.InferenceSession(await get_model_uri(self._settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {}
        for given, wanted in zip(payload.inputs, self._session.get_inputs()):
            feeds[wanted.name] = NumpyCodec.decode_input(given).astype(np.float32)
        outputs = self._session.run(None, feeds)
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output(meta.name, value)
            for meta, value in zip(self._session.get_outputs(), outputs)])


class TorchScriptModel(MLModel):
    async def load(self) -> bool:
        import torch
        self._module = torch.jit.load(await get_model_uri(self._settings), map_location="cpu").eval()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        import torch
        tensors = [torch.from_numpy(NumpyCodec.decode_input(i).astype(np.float32)) for i in payload.inputs]
        with torch.no_grad():
            result = self._module(*tensors)
        return InferenceResponse(model_name=self.name,
                                 outputs=[NumpyCodec.encode_output("output", result.numpy())])
'''


def runtime_for(framework: str) -> Runtime:
    """The runtime for a framework name as the registry records it (``sklearn``, ``scikit-learn`` ...)."""
    key = ALIASES.get(framework.lower(), framework.lower())
    if key not in RUNTIMES:
        raise DeployError(
            f"no model server runtime for framework '{framework}'",
            f"supported: {', '.join(sorted(RUNTIMES))}; pass framework=... to log_model",
        )
    return RUNTIMES[key]


def guess_framework(filename: str) -> str:
    """A framework from a model file's suffix, for files logged without one."""
    lower = filename.lower()
    for runtime in RUNTIMES.values():
        if lower.endswith(runtime.suffixes):
            return runtime.framework
    raise DeployError(
        f"cannot tell which framework saved '{filename}'",
        "log the model with framework=sklearn|xgboost|lightgbm|onnx|pytorch",
    )


def model_settings(name: str, version: str, filename: str, runtime: Runtime) -> dict[str, object]:
    """``model-settings.json`` for one model folder."""
    return {
        "name": name,
        "implementation": runtime.implementation,
        "parameters": {"uri": f"./{filename}", "version": str(version)},
    }


def folder_files(
    name: str, version: str, filename: str, runtime: Runtime, *, revision: int = 0, log_rate: float = 0.0,
    model: str | None = None, signature: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The text files of a model folder beside the model: ``model-settings.json``, the custom runtime
    module where needed, and (``log_rate`` > 0, or a ``signature`` to check requests against) the
    capturing runtime that checks each request and records every answer."""
    from workbench.deploy import capture

    settings = model_settings(name, version, filename, runtime)
    files: dict[str, str] = {}
    if log_rate > 0 or signature:
        settings = capture.capture_settings(settings, deployment=name, revision=revision, rate=log_rate,
                                            model=model, signature=signature)
        files[f"{capture.CAPTURE_MODULE}.py"] = capture.RUNTIME_SOURCE
    files["model-settings.json"] = json.dumps(settings, indent=2)
    if runtime.implementation.startswith(CUSTOM_MODULE):
        files[f"{CUSTOM_MODULE}.py"] = CUSTOM_RUNTIME_SOURCE
    return files


def write_model_folder(
    folder: Path, name: str, version: str, filename: str, runtime: Runtime, *, revision: int = 0,
    log_rate: float = 0.0, model: str | None = None, signature: dict[str, Any] | None = None,
) -> None:
    """Write ``model-settings.json`` (and the runtime modules where needed) into ``folder``."""
    for file, text in folder_files(name, version, filename, runtime, revision=revision,
                                   log_rate=log_rate, model=model, signature=signature).items():
        (folder / file).write_text(text, encoding="utf-8")


def server_env(
    http_port: int, grpc_port: int, metrics_port: int, scratch: str, host: str = "127.0.0.1"
) -> dict[str, str]:
    """The MLServer settings every replica gets, as environment variables.

    ``parallel_workers=0`` keeps inference in the server process (one process per replica; scale
    with replicas), and metrics/environments go to a writable scratch folder so that the server runs
    under any user id with a read-only working directory (OpenShift's rule).
    """
    return {
        "MLSERVER_HOST": host,
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_PORT": str(metrics_port),
        "MLSERVER_PARALLEL_WORKERS": "0",
        "MLSERVER_METRICS_DIR": scratch,
        "MLSERVER_ENVIRONMENTS_DIR": scratch,
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "true",
        "HOME": scratch,
    }


def requirements(runtime: Runtime, framework_version: str | None) -> list[str]:
    """What the serving venv needs for this runtime and framework version."""
    package = runtime.framework_package
    pin = f"{package}=={framework_version}" if framework_version else package
    return [*BASE_REQUIREMENTS, *runtime.packages, pin]


def venv_key(reqs: list[str]) -> str:
    text = "\n".join(sorted(reqs)) + f"\npy{sys.version_info.major}.{sys.version_info.minor}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def serve_root() -> Path:
    return user_cache_dir() / "serve"


def venv_site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def serve_venv_path(runtime: Runtime, framework_version: str | None, *, reqs: list[str] | None = None,
                    env: str = "WORKBENCH_SERVE_VENV") -> Path:
    """Where the venv for this runtime and framework version lives (built or not); ``reqs``: another
    server's requirements (:mod:`workbench.deploy.servers`), ``env`` the variable that overrides it."""
    override = os.environ.get(env)
    if override:
        return Path(override)
    return serve_root() / venv_key(reqs if reqs is not None else requirements(runtime, framework_version))


def serve_venv_ready(runtime: Runtime, framework_version: str | None, *, reqs: list[str] | None = None,
                     env: str = "WORKBENCH_SERVE_VENV") -> bool:
    """Whether :func:`ensure_serve_venv` would return at once (no build needed)."""
    if os.environ.get(env):
        return True
    return (serve_venv_path(runtime, framework_version, reqs=reqs, env=env) / READY_MARKER).exists()


READY_MARKER = ".workbench-ready"
_COUNT_FILE = "last-package-count"
_NETWORK_SIGNS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "ConnectTimeoutError",
    "Read timed out",
    "ProxyError",
    "SSLError",
    "Network is unreachable",
    "Connection refused",
    "Could not fetch URL",
)


def ensure_serve_venv(
    runtime: Runtime, framework_version: str | None, progress: Callable[[int, int], None] | None = None,
    *, reqs: list[str] | None = None, env: str = "WORKBENCH_SERVE_VENV",
) -> Path:
    """The venv that serves this runtime, built on first use (about a minute) and cached.

    ``progress(done, total)`` counts packages: 1 for the venv, one per package pip collects, 1 for
    the install; ``total`` is an estimate (the previous build's count) until pip lists what it
    installs, then exact.
    """
    venv = serve_venv_path(runtime, framework_version, reqs=reqs, env=env)
    if os.environ.get(env) or (venv / READY_MARKER).exists():
        return venv
    reqs = reqs if reqs is not None else requirements(runtime, framework_version)
    venv.parent.mkdir(parents=True, exist_ok=True)
    counter = PipProgress(_remembered_count(venv.parent), progress)
    tmp = venv.with_name(venv.name + f".tmp{os.getpid()}")
    try:
        counter.report()
        _run([sys.executable, "-m", "venv", str(tmp)], "create the serving venv")
        counter.venv_created()
        _pip_install(tmp, reqs, counter)
        # Built under a temp name and moved into place: the console scripts' shebangs keep the temp
        # path, but we only ever run ``bin/python -m mlserver``, which finds site-packages itself.
        if venv.exists():  # another process won the race
            _remove_tree(tmp)
        else:
            tmp.rename(venv)
        (venv / READY_MARKER).write_text("\n".join(reqs) + "\n", encoding="utf-8")
        if counter.collected:
            (venv.parent / _COUNT_FILE).write_text(str(counter.collected), encoding="utf-8")
    finally:
        if tmp.exists():
            _remove_tree(tmp)
    counter.finished()
    return venv


class PipProgress:
    """Turns pip's output lines into ``progress(done, total)`` calls (see :func:`ensure_serve_venv`)."""

    def __init__(self, estimate: int, progress: Callable[[int, int], None] | None) -> None:
        self.progress = progress
        self.collected = 0
        self.total = estimate + 2
        self.done = 0

    def report(self) -> None:
        if self.progress:
            self.progress(self.done, self.total)

    def venv_created(self) -> None:
        self.done = 1
        self.report()

    def feed(self, line: str) -> None:
        if line.startswith("Collecting "):
            self.collected += 1
            self.done = 1 + self.collected
            self.total = max(self.total, self.done + 1)
            self.report()
        elif line.startswith("Installing collected packages:"):
            names = [n for n in line.split(":", 1)[1].split(",") if n.strip()]
            self.collected = max(self.collected, len(names))
            self.done = 1 + self.collected
            self.total = self.done + 1
            self.report()

    def finished(self) -> None:
        self.done = self.total
        self.report()


def _remembered_count(root: Path) -> int:
    try:
        return max(1, int((root / _COUNT_FILE).read_text(encoding="utf-8").strip()))
    except (OSError, ValueError):
        return 80  # mlserver + mlserver-sklearn on Python 3.11: about 80 packages


def _pip_install(venv: Path, reqs: list[str], counter: PipProgress) -> None:
    """``pip install`` into ``venv``, streaming its output into ``counter``; one-line errors."""
    argv = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        *reqs,
    ]
    tail: list[str] = []
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line.strip():
                continue
            tail = [*tail, line][-60:]
            counter.feed(line)
        status = proc.wait()
    if status != 0:
        raise pip_error(tail, reqs, status)


def pip_error(lines: list[str], reqs: list[str], status: int) -> DeployError:
    """One line that says why pip failed: unreachable index, no such version, or its last error."""
    indexes = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Looking in indexes:")]
    index = indexes[-1] if indexes else "the package index"
    hint = (
        "check the network or proxy (pip honours PIP_INDEX_URL, HTTPS_PROXY and pip.conf), "
        "or set WORKBENCH_SERVE_VENV to a venv that has " + " ".join(reqs[:2])
    )
    network = [ln for ln in lines if any(sign in ln for sign in _NETWORK_SIGNS)]
    if network:
        cause = _short_cause(network[-1])
        return DeployError(f"cannot install the model server: pip could not reach {index} ({cause})", hint)
    missing = [ln for ln in lines if "(from versions: none)" in ln]
    if missing:  # pip says nothing more when the index did not answer and it was told not to retry
        wanted = missing[-1].split("requirement", 1)[-1].split("(from", 1)[0].strip()
        return DeployError(
            f"cannot install the model server: {index} offered no version of {wanted} "
            "(unreachable, or it does not have that package)",
            hint,
        )
    errors = [ln.strip() for ln in lines if ln.lstrip().startswith("ERROR:")]
    last = errors[-1] if errors else (lines[-1].strip() if lines else f"exit status {status}")
    return DeployError(
        f"cannot install the model server ({' '.join(reqs)}): {last[:300]}",
        "check that these versions exist for this Python, or set WORKBENCH_SERVE_VENV",
    )


def _short_cause(line: str) -> str:
    """``... NewConnectionError(...: Failed to establish a new connection: [Errno 111] Connection
    refused')`` -> ``[Errno 111] Connection refused``."""
    for marker in ("Failed to establish a new connection: ", "Temporary failure", "[Errno", "Read timed out"):
        at = line.find(marker)
        if at >= 0:
            text = line[at + (len(marker) if marker.endswith(": ") else 0) :]
            return text.split("'))")[0].split("')")[0].rstrip("'\")").strip()[:160]
    return line.strip()[:160]


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [
            ln
            for ln in (result.stderr or result.stdout).splitlines()
            if ln.strip() and not ln.startswith("WARNING: Location")
        ]
        tail = lines[-1] if lines else f"exit status {result.returncode}"
        raise DeployError(
            f"cannot {what}: {tail}",
            "check that pip can reach the package index, or set WORKBENCH_SERVE_VENV",
        )
