"""The capture sitecustomize in a real child interpreter: the cached environment report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.tracking.runner import INJECT_DIR


def _dist(folder: Path, name: str, version: str) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")


def _child(project: Path, extra: Path, events: Path, cache: Path | None = None) -> dict[str, str]:
    """Run a trivial script under the sitecustomize; the packages of the env event it reports."""
    (project / "quick.py").write_text("print('hi')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{INJECT_DIR}{os.pathsep}{extra}",
           "WORKBENCH_EVENTS": str(events), "WORKBENCH_PROJECT": str(project)}
    env.pop("WORKBENCH_ENV_REPORTED", None)
    env.pop("WORKBENCH_ENV_CACHE", None)
    if cache is not None:
        env["WORKBENCH_ENV_CACHE"] = str(cache)
    events.unlink(missing_ok=True)
    subprocess.run([sys.executable, "quick.py"], cwd=project, env=env, check=True, capture_output=True)
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    (env_event,) = [e for e in lines if e["e"] == "env"]
    packages: dict[str, str] = env_event["v"]["packages"]
    return packages


def test_environment_report_is_cached_until_packages_change(tmp_path: Path) -> None:
    project, extra = tmp_path / "project", tmp_path / "site"
    (project / ".workbench").mkdir(parents=True)
    _dist(extra, "wbfakepkg", "1.0")
    events = project / ".workbench" / "events.jsonl"

    first = _child(project, extra, events)
    assert first["wbfakepkg"] == "1.0" and "pip" in {k.lower() for k in first}
    (cache,) = (project / ".workbench" / "pyenv").iterdir()
    # A doctored cache entry proves the second run reads the cache instead of listing again.
    key, _, line = cache.read_bytes().partition(b"\n")
    cache.write_bytes(key + b"\n" + line.replace(b'"wbfakepkg":"1.0"', b'"wbfakepkg":"cached"'))
    assert _child(project, extra, events)["wbfakepkg"] == "cached"

    # Installing, upgrading or removing a package changes its folder: the cache is not used.
    (extra / "wbfakepkg-1.0.dist-info" / "METADATA").unlink()
    (extra / "wbfakepkg-1.0.dist-info").rmdir()
    _dist(extra, "wbfakepkg", "2.0")
    assert _child(project, extra, events)["wbfakepkg"] == "2.0"

    # A distribution inside the project (on sys.path as the script's folder) is looked for each time.
    _dist(project, "wbinproject", "0.1")
    assert _child(project, extra, events)["wbinproject"] == "0.1"


def test_the_user_cache_serves_every_project(tmp_path: Path) -> None:
    cache, extra = tmp_path / "cache", tmp_path / "site"
    cache.mkdir()
    _dist(extra, "wbfakepkg", "1.0")
    one, two = tmp_path / "one", tmp_path / "two"
    for project in (one, two):
        (project / ".workbench").mkdir(parents=True)
    assert _child(one, extra, one / ".workbench" / "ev", cache)["wbfakepkg"] == "1.0"
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes().replace(b'"wbfakepkg":"1.0"', b'"wbfakepkg":"cached"'))
    assert _child(two, extra, two / ".workbench" / "ev", cache)["wbfakepkg"] == "cached"
    assert not (one / ".workbench" / "pyenv").exists()


def test_no_cache_is_written_without_a_store_folder(tmp_path: Path) -> None:
    """In a container checkout there is no .workbench/: report, but never create one."""
    project, extra = tmp_path / "workspace", tmp_path / "site"
    project.mkdir()
    extra.mkdir()
    events = tmp_path / "events.jsonl"
    assert "pip" in {k.lower() for k in _child(project, extra, events)}
    assert not (project / ".workbench").exists()


def test_runs_record_the_job_environment(ws: Workspace, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (ws.root / "quick.py").write_text("print('loss: 1')\n", encoding="utf-8")
    first = ws.runs.execute([sys.executable, "quick.py"])
    second = ws.runs.execute([sys.executable, "quick.py"])  # from the cache
    env1, env2 = (ws.runs.get(r.id).environment for r in (first, second))
    assert env1["packages"] and env1["packages"] == env2["packages"]
    assert env2["executable"] == sys.executable and env2["python"] == env1["python"]
    assert any((tmp_path / "xdg" / "workbench" / "pyenv").iterdir())


PROBE = """
import importlib.metadata, os, sys
sys.path.append("__editable__.fakepkg-0.1.finder.__path_hook__")  # what an editable install adds
list(importlib.metadata.distributions())  # probes every sys.path entry, zip archives by open()
open("data.csv").read()
with open("out.txt", "w") as fh:
    fh.write("x")
try:
    open("missing.csv").read()
except OSError:
    pass
os.close(os.open("folder", os.O_RDONLY))
open("venv/lib/python3.11/site-packages/mod.py").read()
open("linked/os.py").read()  # a symlink into the standard library
"""


def test_file_capture_ignores_import_machinery_and_non_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".workbench").mkdir(parents=True)
    (project / "folder").mkdir()
    (project / "data.csv").write_text("a\n", encoding="utf-8")
    (project / "venv/lib/python3.11/site-packages").mkdir(parents=True)
    (project / "venv/lib/python3.11/site-packages/mod.py").write_text("", encoding="utf-8")
    (project / "linked").symlink_to(os.path.dirname(os.__file__))
    (project / "probe.py").write_text(PROBE, encoding="utf-8")
    events = project / ".workbench" / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": str(INJECT_DIR), "WORKBENCH_EVENTS": str(events),
           "WORKBENCH_PROJECT": str(project), "WORKBENCH_ENV_REPORTED": "1"}
    subprocess.run([sys.executable, "probe.py"], cwd=project, env=env, check=True, capture_output=True)
    recorded = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    files = sorted((e["e"], os.path.relpath(e["path"], project)) for e in recorded)
    assert files == [("input", "data.csv"), ("input", "probe.py"), ("output", "out.txt")]
