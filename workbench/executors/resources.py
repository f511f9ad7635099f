"""Resource requests in the forms users type (``--cpu 2``, ``--memory 4Gi``, ``--gpus all``),
checked once and turned into what Docker and Kubernetes each expect."""

from __future__ import annotations

import re

from workbench.errors import UsageError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_DOCKER_SUFFIX = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]{0,2})$")


def memory_bytes(text: str) -> int:
    """``4Gi``, ``512Mi``, ``1G``, ``2g`` (Docker style) or a plain byte count, as bytes."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise UsageError(f"bad memory amount '{text}'", "use a number with a unit, e.g. 4Gi or 512Mi")
    number, unit = float(match.group(1)), match.group(2)
    if unit in _BINARY:
        factor = _BINARY[unit]
    elif unit in _DECIMAL:
        factor = _DECIMAL[unit]
    elif unit.lower() in _DOCKER_SUFFIX:
        factor = _DOCKER_SUFFIX[unit.lower()]
    else:
        raise UsageError(f"bad memory unit in '{text}'", "use Ki, Mi, Gi, Ti (or k, M, G)")
    return int(number * factor)


def k8s_memory(text: str) -> str:
    """A memory amount as a Kubernetes quantity (Docker's ``2g`` becomes ``2Gi``)."""
    value = text.strip()
    match = _QUANTITY.match(value)
    if match and match.group(2).lower() in ("k", "m", "g") and match.group(2) not in _DECIMAL:
        return f"{match.group(1)}{match.group(2).upper()}i"
    memory_bytes(value)  # validates
    return value


def cpu_cores(text: str) -> float:
    """``2``, ``0.5`` or ``500m`` as a number of cores."""
    value = text.strip()
    try:
        cores = float(value[:-1]) / 1000 if value.endswith("m") else float(value)
    except ValueError:
        raise UsageError(
            f"bad CPU amount '{text}'", "use cores like 2 or 0.5, or millicores like 500m"
        ) from None
    if cores <= 0:
        raise UsageError(f"bad CPU amount '{text}'", "ask for more than zero cores")
    return cores


def gpu_count(gpus: int | str | None) -> int | None:
    """None/0 -> 0, an int or digits -> that many, 'all' -> None (meaning every GPU)."""
    if gpus is None:
        return 0
    if isinstance(gpus, int):
        if gpus < 0:
            raise UsageError(f"bad GPU count {gpus}", "use a number of GPUs or 'all'")
        return gpus
    text = gpus.strip().lower()
    if text == "all":
        return None
    if text.isdigit():
        return int(text)
    raise UsageError(f"bad GPU count '{gpus}'", "use a number of GPUs or 'all'")


def check_resources(gpus: int | str | None, cpu: str | None, memory: str | None) -> int | None:
    """Validate a run's requests before anything is created; returns :func:`gpu_count` of ``gpus``."""
    count = gpu_count(gpus)
    if cpu:
        cpu_cores(cpu)
    if memory:
        memory_bytes(memory)
    return count
