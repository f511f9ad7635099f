"""The test extra is installed whole: a package missing from it would turn its tests into skips.

Tests that need an optional library use ``pytest.importorskip`` so that a developer without it still
runs the rest; in the suite's own venv (``scripts/test`` installs ``.[test]``) every one of those
libraries must be present, or a fresh machine silently tests less than this one (CI once failed on
``pandas``, pulled in here only by chance, and skipped the W&B test).
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Modules the tests import with importorskip, and the distribution of the test extra that brings each.
IMPORTORSKIP_MODULES = {
    "sklearn": "scikit-learn", "mlflow": "mlflow-skinny", "mlflow.pyfunc": "mlflow-skinny",
    "mlflow.server": "mlflow-skinny",
    "pandas": "pandas", "wandb": "wandb", "dvc": "dvc", "tensorboard": "tensorboard",
    "tensorboardX": "tensorboardX", "flask_cors": "flask-cors", "sqlalchemy": "sqlalchemy",
    "torch": "torch", "lightning": "lightning",
}


def _test_extra() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = []
    for requirement in data["project"]["optional-dependencies"]["test"]:
        match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
        assert match, requirement
        names.append(match.group(0))
    return names


@pytest.mark.parametrize("distribution", _test_extra())
def test_every_package_of_the_test_extra_is_installed(distribution: str) -> None:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{distribution} (test extra) is not installed: run scripts/test, which installs .[test]")


@pytest.mark.parametrize("module", sorted(IMPORTORSKIP_MODULES))
def test_every_importorskip_module_comes_from_the_test_extra(module: str) -> None:
    assert IMPORTORSKIP_MODULES[module] in _test_extra()
    assert importlib.util.find_spec(module) is not None, f"{module} cannot be imported"
    if "." in module:
        importlib.import_module(module)  # mlflow.pyfunc imports pandas at import time


def test_every_importorskip_in_the_suite_is_listed_here() -> None:
    used = set()
    for path in (ROOT / "tests").rglob("*.py"):
        used.update(re.findall(r"importorskip\(\s*\"([A-Za-z0-9_.]+)\"", path.read_text()))
    missing = sorted(used - set(IMPORTORSKIP_MODULES))
    assert not missing, f"add to IMPORTORSKIP_MODULES (and the test extra): {missing}"
