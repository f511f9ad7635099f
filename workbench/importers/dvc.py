"""DVC repositories: experiments and commits through ``dvc exp show --json -A`` where the repository
has its git history and DVC is installed, else the current ``dvc.lock`` with its metrics files.

Each commit that has params or metrics becomes a run (named by its branch, else its short rev), and
each experiment of it a run named by the experiment (tag ``dvc.baseline`` = the commit it was run
from). Params and metrics are flattened with '.' as DVC shows them (``model.depth``), params of files
other than ``params.yaml`` prefixed ``FILE:``; each metric is one point at step 0. DVC's own reader is
used for the history because experiments live in git refs that only DVC interprets; it runs as a
separate process (``dvc`` on PATH, or ``python -m dvc``), so nothing of DVC is imported here.

Without it, ``dvc.lock`` gives the params each stage last ran with, and the metrics files named in
``dvc.yaml`` (top-level ``metrics:`` and stage outs under ``metrics:``) give the metrics: one run
whose source id is the content hash of those files, so a changed lock imports as a new run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from workbench.importers.model import ImportSourceError, MissingExtraError, Series, Source, SourceRun
from workbench.yamlsafe import flatten_dotted

TIMEOUT = 600


def _params(files: dict[str, Any]) -> dict[str, object]:
    out: dict[str, Any] = {}
    for name, content in (files or {}).items():
        flat = flatten_dotted((content or {}).get("data") or {})
        prefix = "" if name == "params.yaml" else f"{name}:"
        for key, value in flat.items():
            out[prefix + key] = _scalar(value)
    return out


def _scalar(value: Any) -> object:
    """A param as it is when a scalar, else its JSON text (a list of layer sizes ...)."""
    return value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)


def _metrics(files: dict[str, Any], when: float) -> dict[str, Series]:
    flat: dict[str, Any] = {}
    for content in (files or {}).values():
        flat.update(flatten_dotted((content or {}).get("data") or {}))
    return {key: Series([0], [when], [float(value)]) for key, value in flat.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def _time(text: object, default: float) -> float:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return default


def _dvc_command() -> list[str] | None:
    found = shutil.which("dvc")
    if found:
        return [found]
    if importlib.util.find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    return None


def _exp_show(root: Path, command: list[str]) -> list[dict[str, Any]]:
    try:
        done = subprocess.run([*command, "exp", "show", "--json", "-A"], cwd=root, capture_output=True,
                              text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImportSourceError(f"dvc exp show failed in {root} ({exc})",
                                "run it by hand to see why") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImportSourceError(f"dvc exp show failed in {root}: {last[:300]}", "run it by hand to see why")
    data = json.loads(done.stdout or "[]")
    return data if isinstance(data, list) else []


def _history_runs(root: Path, entries: list[dict[str, Any]]) -> list[SourceRun]:
    found: list[SourceRun] = []
    fallback = root.stat().st_mtime

    def add(entry: dict[str, Any], name: str, tags: dict[str, str]) -> None:
        data = entry.get("data") or {}
        rev = str(entry.get("rev") or data.get("rev") or "")
        params, when = _params(data.get("params") or {}), _time(data.get("timestamp"), fallback)
        metrics = _metrics(data.get("metrics") or {}, when)
        if not rev or rev == "workspace" or not (params or metrics):
            return
        found.append(SourceRun(kind="dvc", source_id=rev, name=name or rev[:7],
                               status="failed" if entry.get("error") else "succeeded", started_at=when,
                               ended_at=when, params=params, tags={**tags, "dvc.rev": rev},
                               load_metrics=partial(dict, metrics)))

    for commit in entries:
        if commit.get("rev") == "workspace":
            continue
        add(commit, str(commit.get("name") or ""), {"dvc.kind": "commit"})
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                add(rev, str(rev.get("name") or experiment.get("name") or ""),
                    {"dvc.kind": "experiment", "dvc.baseline": str(commit.get("rev") or "")})
    return found


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _lock_run(root: Path) -> SourceRun:
    lock_path = root / "dvc.lock"
    lock = _load(lock_path)
    if not isinstance(lock, dict):
        raise ImportSourceError(f"no readable dvc.lock in {root}",
                                "run 'dvc repro' first, or give the repository's folder")
    pipeline = _load(root / "dvc.yaml") or {}
    params: dict[str, object] = {}
    for stage in (lock.get("stages") or {}).values():
        for file, given in ((stage or {}).get("params") or {}).items():
            prefix = "" if file == "params.yaml" else f"{file}:"
            for key, value in (given or {}).items():
                params[prefix + str(key)] = _scalar(value)
    metric_files: list[str] = [str(m) for m in pipeline.get("metrics") or [] if isinstance(m, str)]
    for stage in (pipeline.get("stages") or {}).values():
        for item in (stage or {}).get("metrics") or []:
            if isinstance(item, str | dict):  # "file" or {file: {cache: false}}
                metric_files.extend([item] if isinstance(item, str) else [str(k) for k in item])
    digest = hashlib.sha256(lock_path.read_bytes())
    when = lock_path.stat().st_mtime
    values: dict[str, Any] = {}
    for name in dict.fromkeys(metric_files):
        path = (root / name).resolve()
        if not path.is_relative_to(root.resolve()) or not path.is_file():
            continue
        digest.update(path.read_bytes())
        content = _load(path)
        if isinstance(content, dict):
            values[name] = {"data": content}
    return SourceRun(kind="dvc", source_id=f"lock:{digest.hexdigest()[:16]}", name="dvc.lock",
                     status="succeeded", started_at=when, ended_at=when, params=params,
                     tags={"dvc.kind": "lock", "dvc.repo": str(root.resolve())},
                     load_metrics=partial(_metrics, values, when))


def open_dvc(root: Path, *, lock_only: bool = False) -> Source:
    if not root.is_dir():
        raise ImportSourceError(f"no such folder: {root}", "give a DVC repository")
    if not any(p.exists() for p in (root / ".dvc", root / "dvc.yaml", root / "dvc.lock")):
        raise ImportSourceError(f"{root} is not a DVC repository (no .dvc/, dvc.yaml or dvc.lock)",
                                "give the folder 'dvc init' was run in")
    command = _dvc_command()
    history = (root / ".git").exists() and (root / ".dvc").is_dir() and not lock_only
    if history and command is None:
        raise MissingExtraError("dvc", what="reading a DVC repository's experiments",
                                also=", or pass --lock to read only the current dvc.lock")
    if history and command is not None:
        runs = _history_runs(root, _exp_show(root, command))
        description = f"{root} (git history and experiments)"
        if not runs and (root / "dvc.lock").is_file():  # nothing committed yet: what the lock says
            runs, description = [_lock_run(root)], f"{root} (dvc.lock: no commit has params or metrics)"
    else:
        runs = [_lock_run(root)]
        description = f"{root} (dvc.lock)"

    def each() -> Iterator[SourceRun]:
        yield from runs

    return Source("dvc", description, len(runs), each)
