"""Fixtures shared by the whole suite: a fresh project in a temp folder, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from workbench.cli import main as cli_main
from workbench.core.workspace import Workspace

# `workbench run` processes the suite starts run cold: a warm recorder would outlive the test that
# started it. tests/cli/test_warm.py turns warm start on for its own processes.
os.environ["WORKBENCH_WARM"] = "0"

REQUIRE_DOCKER = "WORKBENCH_REQUIRE_DOCKER"
"""Set to 1 (scripts/test does, once docker_setup.sh succeeded): Docker tests fail instead of skipping."""


def docker_unavailable(reason: str) -> NoReturn:
    """Skip a Docker test with the reason, or fail it where Docker was set up and must work."""
    if os.environ.get(REQUIRE_DOCKER) == "1":
        pytest.fail(f"{reason} ({REQUIRE_DOCKER}=1: Docker was set up, so its tests must run)")
    pytest.skip(reason)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    return root


@pytest.fixture
def ws(project_dir: Path) -> Iterator[Workspace]:
    workspace, _ = Workspace.init(project_dir)
    yield workspace
    workspace.close()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run the CLI in-process: ``cli(project_dir, "status", "--json")``."""

    def run(cwd: Path, *argv: str) -> CliResult:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = cli_main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_workbench(cwd: Path, *argv: str, timeout: float = 120, env: dict[str, str] | None = None,
                  input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``workbench`` as a separate process (what a user types)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *argv], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env=full_env, input=input,
    )
