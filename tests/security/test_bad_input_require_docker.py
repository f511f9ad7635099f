"""A run without Docker must not look fully green where Docker was set up.

``scripts/test`` lists every skip with its reason (``-rs``) and exports ``WORKBENCH_REQUIRE_DOCKER=1``
once ``docker_setup.sh`` succeeded; then a Docker fixture that cannot reach the daemon or the image
fails the test instead of skipping it (``tests.conftest.docker_unavailable``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

SAMPLE = '''\
from tests.conftest import docker_unavailable


def test_needs_docker():
    docker_unavailable("no Docker daemon: nothing listens on the socket")
'''


def _pytest(folder: Path, require: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_REQUIRE_DOCKER"}
    env["PYTHONPATH"] = str(ROOT)
    if require is not None:
        env["WORKBENCH_REQUIRE_DOCKER"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "-q",
         str(folder / "test_sample.py")],
        cwd=folder, capture_output=True, text=True, timeout=300, env=env,
    )


@pytest.mark.parametrize("require, code, needle", [
    (None, 0, "SKIPPED [1] "),  # -rs: the reason is printed (checked below)
    ("0", 0, "1 skipped"),
    ("1", 1, "WORKBENCH_REQUIRE_DOCKER=1: Docker was set up, so its tests must run"),
])
def test_docker_skip_becomes_a_failure_when_required(tmp_path: Path, require: str | None, code: int,
                                                     needle: str) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    result = _pytest(tmp_path, require)
    assert result.returncode == code, result.stdout + result.stderr
    assert needle in result.stdout, result.stdout
    assert "no Docker daemon: nothing listens on the socket" in result.stdout


def test_scripts_test_requires_docker_only_after_setup_and_shows_skip_reasons() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    setup = script.index("if scripts/docker_setup.sh; then")
    export = script.index("export WORKBENCH_REQUIRE_DOCKER=1")
    otherwise = script.index("else", setup)
    assert setup < export < otherwise, "exported only in the branch where the setup succeeded"
    assert "-m pytest -rs " in script
    check = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "test")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
