"""GPU facts: this machine's NVIDIA GPUs through NVML (nvidia-ml-py), and a cluster's GPUs per node.

:func:`gpu_facts` says what is installed (model, memory, driver), :func:`sample_gpus` what is in use
right now (utilisation, memory used); both return an empty list where there is no NVIDIA driver or
no GPU, never raise. :func:`no_gpu_reason` says in words why the list is empty.
:func:`cluster_gpu_capacity` turns a list of Kubernetes nodes and pods (plain dicts, as the API
returns them) into allocatable and requested ``nvidia.com/gpu`` per node.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"

_lock = threading.Lock()
_state: dict[str, Any] = {"initialised": False, "error": None}


def _nvml() -> Any | None:
    """The initialised pynvml module, or None (and the reason kept) where NVML cannot start."""
    with _lock:
        if _state["initialised"]:
            return _state["module"]
        if _state["error"] is not None:
            return None
        if not _driver_present():
            _state["error"] = "no NVIDIA driver (no /dev/nvidiactl or /proc/driver/nvidia)"
            return None
        try:
            import pynvml
        except ImportError:
            _state["error"] = "nvidia-ml-py is not installed"
            return None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded ...
            _state["error"] = f"no NVIDIA driver ({_nvml_text(exc)})"
            return None
        _state["initialised"] = True
        _state["module"] = pynvml
        return pynvml


def _driver_present() -> bool:
    """False only where the NVIDIA driver is certainly absent: on Linux, neither its control device
    nor its /proc folder. Importing pynvml and failing nvmlInit cost ~20 ms before every
    ``workbench run`` on machines without a GPU. Elsewhere (Windows, WSL's /usr/lib/wsl) NVML decides."""
    import os
    import sys

    if not sys.platform.startswith("linux") or os.path.exists("/usr/lib/wsl"):
        return True
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")


def _nvml_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def no_gpu_reason() -> str:
    """Why this machine reports no GPU ('' when it has at least one)."""
    nvml = _nvml()
    if nvml is None:
        return str(_state["error"])
    try:
        if nvml.nvmlDeviceGetCount() == 0:
            return "no NVIDIA GPU (the driver sees none)"
    except Exception as exc:
        return f"NVML failed: {_nvml_text(exc)}"
    return ""


def local_gpus() -> dict[str, Any]:
    """This machine's GPUs: ``{"gpus": [facts + current sample], "reason": why-none}``."""
    facts = gpu_facts()
    samples = {s["index"]: s for s in sample_gpus()}
    merged = [{**fact, **samples.get(fact["index"], {})} for fact in facts]
    return {"gpus": merged, "reason": "" if merged else no_gpu_reason() or "no NVIDIA GPU"}


def gpu_facts() -> list[dict[str, Any]]:
    """One dict per GPU: index, uuid, model, memory_total (bytes), driver, cuda (driver's CUDA version)."""
    nvml = _nvml()
    if nvml is None:
        return []
    try:
        count = int(nvml.nvmlDeviceGetCount())
        driver = _decode(nvml.nvmlSystemGetDriverVersion())
        try:
            cuda_raw = int(nvml.nvmlSystemGetCudaDriverVersion_v2())
            cuda = f"{cuda_raw // 1000}.{(cuda_raw % 1000) // 10}"
        except Exception:
            cuda = ""
        facts: list[dict[str, Any]] = []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            facts.append({
                "index": index,
                "uuid": _decode(nvml.nvmlDeviceGetUUID(handle)),
                "model": _decode(nvml.nvmlDeviceGetName(handle)),
                "memory_total": int(memory.total),
                "driver": driver,
                "cuda": cuda,
            })
        return facts
    except Exception:
        return []


def sample_gpus() -> list[dict[str, Any]]:
    """One dict per GPU: index, utilisation (percent), memory_used and memory_total (bytes),
    temperature (C) and power (W) where the GPU reports them."""
    nvml = _nvml()
    if nvml is None:
        return []
    samples: list[dict[str, Any]] = []
    try:
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            sample: dict[str, Any] = {
                "index": index,
                "utilisation": float(util.gpu),
                "memory_used": int(memory.used),
                "memory_total": int(memory.total),
            }
            try:
                temperature = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                sample["temperature"] = float(temperature)
            except Exception:
                pass
            try:
                sample["power"] = float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0
            except Exception:
                pass
            samples.append(sample)
    except Exception:
        return samples
    return samples


@dataclass
class NodeGpus:
    """GPUs of one cluster node: what the scheduler can hand out and what pods hold now."""

    node: str
    allocatable: int
    capacity: int
    requested: int
    product: str = ""
    """The GPU model from the GPU feature discovery label, where the node carries it."""
    schedulable: bool = True

    @property
    def free(self) -> int:
        return max(0, self.allocatable - self.requested)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["free"] = self.free
        return data


def _quantity_int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _pod_gpu_request(pod: Mapping[str, Any]) -> int:
    spec = pod.get("spec") or {}
    total = 0
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        wanted = (resources.get("limits") or {}).get(GPU_RESOURCE)
        if wanted is None:
            wanted = (resources.get("requests") or {}).get(GPU_RESOURCE)
        total += _quantity_int(wanted)
    # Init containers run one at a time: the pod holds the larger of the two.
    init = 0
    for container in spec.get("initContainers") or []:
        resources = container.get("resources") or {}
        init = max(init, _quantity_int((resources.get("limits") or {}).get(GPU_RESOURCE)))
    return max(total, init)


def cluster_gpu_capacity(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> list[NodeGpus]:
    """Allocatable and requested GPUs per node, for nodes that have any GPU at all."""
    requested: dict[str, int] = {}
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or phase in ("Succeeded", "Failed"):
            continue
        requested[node] = requested.get(node, 0) + _pod_gpu_request(pod)
    result: list[NodeGpus] = []
    for node in nodes:
        meta = node.get("metadata") or {}
        status = node.get("status") or {}
        name = str(meta.get("name", ""))
        allocatable = _quantity_int((status.get("allocatable") or {}).get(GPU_RESOURCE))
        capacity = _quantity_int((status.get("capacity") or {}).get(GPU_RESOURCE))
        if not allocatable and not capacity:
            continue
        labels = meta.get("labels") or {}
        result.append(NodeGpus(
            node=name, allocatable=allocatable, capacity=capacity, requested=requested.get(name, 0),
            product=str(labels.get("nvidia.com/gpu.product", "")),
            schedulable=not (node.get("spec") or {}).get("unschedulable", False),
        ))
    return sorted(result, key=lambda n: n.node)
