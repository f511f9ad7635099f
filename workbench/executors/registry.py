"""Executors by name: ``get_executor("local" | "docker" | "kubernetes", ws)``.

Each executor module is imported only when asked for, so ``workbench run`` on this machine never
loads the docker or kubernetes clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from workbench.errors import ExecutorError

if TYPE_CHECKING:
    from workbench.executors.base import Executor
    from workbench.versioning.versioned import VersionedProject

EXECUTORS: dict[str, tuple[str, str]] = {
    "local": ("workbench.executors.local", "LocalExecutor"),
    "docker": ("workbench.executors.docker", "DockerExecutor"),
    "kubernetes": ("workbench.executors.kubernetes", "KubernetesExecutor"),
}
ALIASES = {"k8s": "kubernetes", "kube": "kubernetes"}


def executor_names() -> list[str]:
    return list(EXECUTORS)


def resolve_name(name: str) -> str:
    """The canonical name of an executor (aliases resolved); ExecutorError naming the choices."""
    key = ALIASES.get(name, name)
    if key not in EXECUTORS:
        raise ExecutorError(f"unknown executor {name!r}", f"choose one of: {', '.join(EXECUTORS)}")
    return key


def get_executor(name: str, ws: VersionedProject) -> Executor:
    """The executor called ``name``, built for this workspace."""
    key = resolve_name(name)
    module_name, class_name = EXECUTORS[key]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExecutorError(f"the {key} executor is not available: {exc}") from None
    factory = getattr(module, class_name)
    executor: Executor = factory(ws)
    return executor
