"""Start-up cost guarded without timing: the modules ``workbench --version``, ``workbench status`` and
``workbench run`` import, checked in a real CLI process (``sys.modules`` when ``main`` returns).

Heavy libraries (Rich, Textual, docker, kubernetes, numpy, PyYAML, psutil, pynvml ...) cost tens of
milliseconds each to import; on these paths they are not needed before (or, for ``run``, after)
the child, so a change that imports one again fails here rather than only in
scripts/bench_startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.host.gpus import _driver_present

HEAVY = ("rich", "textual", "docker", "kubernetes", "numpy", "pandas", "yaml", "sqlite_utils", "psutil",
         "plotext", "mlflow", "boto3", "botocore", "torch")

_PROBE = (
    "import json, sys\n"
    "from workbench.cli import main\n"
    "try:\n"
    "    status = main(sys.argv[2:])\n"
    "finally:\n"
    "    with open(sys.argv[1], 'w') as out:\n"
    "        json.dump(sorted(sys.modules), out)\n"
    "raise SystemExit(status)\n"
)


def _modules_after(cwd: Path, out: Path, *argv: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded once ``workbench ARGV`` has run in ``cwd`` (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, str(out), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()))


def _roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup")
    (root / "train.py").write_text("print('loss=0.5')\n")
    for argv in (["init"], ["snapshot", "-m", "first"]):
        subprocess.run([sys.executable, "-m", "workbench", *argv], cwd=root, check=True, capture_output=True)
    return root


def test_version_imports_no_command_module(project: Path, tmp_path: Path) -> None:
    loaded = _modules_after(project, tmp_path / "m.json", "--version")
    assert not _roots(loaded) & set(HEAVY)
    assert not [m for m in loaded if m.startswith("workbench.cli.cmd_")]
    assert "sqlite3" not in loaded  # nothing of the store either
    assert "typing" not in loaded  # `import workbench` keeps typing for the type checker only


def test_status_imports_nothing_heavy(project: Path, tmp_path: Path) -> None:
    loaded = _modules_after(project, tmp_path / "m.json", "status", "--no-watcher")
    assert not _roots(loaded) & set(HEAVY)
    # Without a default remote, the remote service (configparser, transports) is not imported.
    assert not [m for m in loaded if m.startswith("workbench.remote")]
    assert not [m for m in loaded if m.startswith("workbench.tracking")]
    # dataclasses pulls in inspect, dis and ast (~8 ms): the status path uses plain classes
    assert not {"dataclasses", "inspect"} & loaded


def test_run_imports_nothing_heavy_before_or_after_the_child(project: Path, tmp_path: Path) -> None:
    loaded = _modules_after(project, tmp_path / "m.json", "run", "--", sys.executable, "train.py")
    # numpy packs the run's metric points into chunks (store/metric_chunks.py): imported on the first
    # point (this script prints loss=0.5), while the child runs, never before it starts.
    assert not _roots(loaded) & (set(HEAVY) - {"numpy"})
    # A local run reaches no remote (container jobs get ws.remote on first use).
    assert not [m for m in loaded if m.startswith("workbench.remote")]
    # Needed only for a pickle model, and a run id needs no hmac.
    assert not {"pickletools", "secrets"} & loaded
    if not _driver_present():
        assert "pynvml" not in loaded  # no NVIDIA driver here: NVML is not even imported


def test_a_run_that_logs_no_metric_never_imports_numpy(project: Path, tmp_path: Path) -> None:
    (project / "quiet.py").write_text("print('hello')\n")
    # The runner warms the metric path beside a job still running after 50 ms (tests/tracking/
    # test_orchestrate.py); on a loaded machine even this job can take that long, so the warm-up is
    # put out of its reach here: what is checked is that nothing else imports numpy.
    loaded = _modules_after(project, tmp_path / "m.json", "run", "--", sys.executable, "quiet.py",
                            env={"WORKBENCH_WARM_METRICS_AFTER": "600"})
    assert not _roots(loaded) & set(HEAVY)  # numpy's ~50 ms of imports is not paid by such a run


def test_a_runs_python_child_starts_without_hashlib_or_json(project: Path) -> None:
    """The capture ``sitecustomize`` in every Python child imports hashlib (OpenSSL, ~3 ms) and json
    (~2 ms) on the first project file the child writes, not at start-up."""
    probe = "import sys; print('loaded:', sorted(m for m in ('hashlib', 'json') if m in sys.modules))"
    wb = [sys.executable, "-m", "workbench", "run"]
    done = subprocess.run([*wb, "--", sys.executable, "-c", probe], cwd=project, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    write = "open('written.txt', 'w').write('x')"
    done = subprocess.run([*wb, "--json", "--", sys.executable, "-c", write], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "written.txt" in [o["path"] for o in json.loads(done.stdout)["outputs"]]
