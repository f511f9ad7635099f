"""Guards of the layering in ARCHITECTURE.md: the core never loads UI or heavy client libraries."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import workbench

CORE_PACKAGES = ("core", "store", "versioning", "tracking", "executors", "deploy", "workflows", "remote",
                 "monitor")
FORBIDDEN_IN_CORE = ("textual", "plotext", "textual_plotext")


def _core_modules() -> list[str]:
    names = ["workbench", "workbench.errors", "workbench.paths", "workbench.config", "workbench.yamlsafe",
             "workbench.clock", "workbench.demo"]
    for package in CORE_PACKAGES:
        pkg = importlib.import_module(f"workbench.{package}")
        names.append(pkg.__name__)
        names.extend(m.name for m in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}."))
    return names


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", _core_modules())
def test_core_module_never_loads_textual(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert not {m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_CORE}, module


def test_import_workbench_is_cheap() -> None:
    loaded = _loaded_after_import("workbench")
    for heavy in ("textual", "docker", "kubernetes", "rich", "sqlite_utils", "plotext"):
        assert heavy not in loaded, heavy
    # Touching the tracking API must not pull them in either.
    code = "import sys, workbench; workbench.log_param; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    roots = {m.split(".")[0] for m in out.stdout.split()}
    assert not roots & {"textual", "docker", "kubernetes", "rich"}


def test_version_is_exposed() -> None:
    assert workbench.__version__
