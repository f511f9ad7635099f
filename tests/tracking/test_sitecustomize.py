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


def _sources(ws: Workspace, run_id: str) -> dict[str, tuple[object, str]]:
    sources = ws.runs.param_sources(run_id)
    return {k: (v, sources[k]) for k, v in ws.runs.get(run_id).params.items()}


ARGPARSE_SCRIPT = """
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("-b", "--batch-size", type=int, default=32)
p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("models/m.pkl"))
p.add_argument("--layers", type=int, nargs="+", default=[64, 32])
p.add_argument("--shuffle", action="store_true")
p.add_argument("--seed", type=int)
p.add_argument("data", nargs="?", default="train.csv")
print(p.parse_args())
"""


def test_argparse_defaults_are_recorded_and_marked(ws: Workspace) -> None:
    (ws.root / "train.py").write_text(ARGPARSE_SCRIPT, encoding="utf-8")
    run = ws.runs.execute([sys.executable, "train.py", "--lr", "0.1", "-b", "64", "--shuffle"])
    assert run.status == "succeeded", list(ws.runs.log_lines(run.id))
    assert _sources(ws, run.id) == {
        "lr": (0.1, "argparse"), "batch_size": (64, "argparse"), "shuffle": (True, "argparse"),
        "epochs": (10, "argparse-default"), "out": ("models/m.pkl", "argparse-default"),
        "layers": ("[64, 32]", "argparse-default"), "seed": (None, "argparse-default"),
        "data": ("train.csv", "argparse-default"),
    }  # argv's 'b' gave way to the dest batch_size


def test_a_launchers_script_reports_its_own_arguments(ws: Workspace) -> None:
    """``torchrun --nproc_per_node 2 train.py --lr 0.1`` (the real launcher): its ~35 options are not
    the run's params; the script's parse in its processes is (its defaults too)."""
    pytest.importorskip("torch")
    (ws.root / "train.py").write_text(ARGPARSE_SCRIPT, encoding="utf-8")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    run = ws.runs.execute([*torchrun, "train.py", "--lr", "0.1", "-b", "64"])
    assert run.status == "succeeded", list(ws.runs.log_lines(run.id))
    recorded = _sources(ws, run.id)
    assert {k: recorded[k] for k in ("lr", "batch_size", "epochs")} == {
        "lr": (0.1, "argparse"), "batch_size": (64, "argparse"), "epochs": (10, "argparse-default")}
    assert not {"training_script", "rdzv_backend", "master_addr", "standalone"} & set(recorded)


SUBCOMMANDS = """
import argparse, subprocess, sys
p = argparse.ArgumentParser()
p.add_argument("--verbose", action="store_true")
sub = p.add_subparsers(dest="command")
fit = sub.add_parser("fit")
fit.add_argument("--depth", type=int, default=3)
fit.add_argument("--rate", default="0.5")
args, extra = p.parse_known_args()
print(args, extra)
# A child Python parsing its own arguments is not the run's command line: it stays quiet.
child = "import argparse; q = argparse.ArgumentParser(); q.add_argument('--other'); q.parse_args()"
subprocess.run([sys.executable, "-c", child, "--other", "x"], check=True)
"""


def test_parse_known_args_with_subparsers(ws: Workspace) -> None:
    (ws.root / "cli.py").write_text(SUBCOMMANDS, encoding="utf-8")
    run = ws.runs.execute([sys.executable, "cli.py", "fit", "--depth", "5", "--unknown", "1"])
    assert run.status == "succeeded", list(ws.runs.log_lines(run.id))
    recorded = _sources(ws, run.id)
    assert {k: recorded[k] for k in ("command", "depth", "rate", "verbose")} == {
        "command": ("fit", "argparse"), "depth": (5, "argparse"), "rate": ("0.5", "argparse-default"),
        "verbose": (False, "argparse-default"),
    }
    assert "other" not in recorded
    assert recorded["unknown"] == (1, "argv")  # a flag argparse did not know stays as the argv saw it


TWICE = """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=1.0)
p.add_argument("--warmup", type=int, default=5)
p.parse_args(["--lr", "9", "--warmup", "1"])   # e.g. a config check with fixed arguments
print(p.parse_args())                          # the real parse: the last one wins
"""


def test_a_second_parse_wins_and_shell_wrappers_are_seen_through(ws: Workspace) -> None:
    (ws.root / "twice.py").write_text(TWICE, encoding="utf-8")
    command = f"{sys.executable} twice.py --lr 0.1"
    run = ws.runs.execute(["sh", "-c", command])
    assert run.status == "succeeded", list(ws.runs.log_lines(run.id))
    assert _sources(ws, run.id) == {"lr": (0.1, "argparse"), "warmup": (5, "argparse-default")}


def test_show_marks_defaulted_params(ws: Workspace, project_dir: Path) -> None:
    from tests.conftest import run_workbench

    (ws.root / "train.py").write_text(ARGPARSE_SCRIPT, encoding="utf-8")
    run = ws.runs.execute([sys.executable, "train.py", "--lr", "0.1"])
    shown = run_workbench(project_dir, "show", run.id)
    assert shown.returncode == 0, shown.stderr
    lines = {line.strip() for line in shown.stdout.splitlines()}
    assert "lr = 0.1" in lines and "epochs = 10  (default)" in lines
    data = json.loads(run_workbench(project_dir, "show", run.id, "--json").stdout)
    assert data["param_sources"]["lr"] == "argparse" and data["param_sources"]["epochs"] == "argparse-default"
