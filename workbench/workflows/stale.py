"""Is a stage up to date? A fingerprint of what goes into it, and words for what changed.

A stage's fingerprint is a hash over its command (placeholders filled), its params (values, with
references read from their params file), the content hash of every input file (folders expanded
to the files inside them), the list of declared outputs and where it runs (executor, image, GPUs).
Equal fingerprints mean the stage would compute the same thing, so its recorded outputs can be
reused. :func:`explain` compares two fingerprints' parts and says what changed, for ``--dry``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench import yamlsafe
from workbench.paths import STORE_DIRNAME
from workbench.workflows.spec import ParamRef, PipelineError, Stage, render_command

Hasher = Callable[[Path], str]

SKIP_DIRS = frozenset({STORE_DIRNAME, ".git", "__pycache__", ".venv", ".dvc"})


@dataclass
class Fingerprint:
    """Everything that decides a stage's result; :meth:`digest` is the cache key."""

    cmd: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    """project path of each input file -> content hash."""
    outputs: list[str] = field(default_factory=list)
    placement: dict[str, Any] = field(default_factory=dict)
    """executor, image, gpus."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), default=str)

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Fingerprint:
        data = json.loads(text)
        return cls(cmd=list(data.get("cmd", [])), params=dict(data.get("params", {})),
                   inputs=dict(data.get("inputs", {})), outputs=list(data.get("outputs", [])),
                   placement=dict(data.get("placement", {})))


# -- params ------------------------------------------------------------------------------------
class ParamsFiles:
    """Reads params files once each (YAML, JSON or TOML by extension) and looks up dotted keys."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, Any] = {}

    def load(self, file: str) -> Any:
        if file not in self._loaded:
            path = self.root / file
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise PipelineError(f"params file '{file}' does not exist",
                                    "create it or change the reference") from None
            except UnicodeDecodeError:
                raise PipelineError(f"params file '{file}' is not UTF-8 text", "save it as UTF-8") from None
            except OSError as exc:
                raise PipelineError(f"cannot read params file '{file}': {exc.strerror or exc}",
                                    "it must be a readable file") from None
            try:
                if path.suffix == ".toml":
                    data: Any = tomllib.loads(text)
                elif path.suffix == ".json":
                    data = json.loads(text)
                else:
                    data = yamlsafe.load(text, file, PipelineError)
            except (ValueError, RecursionError) as exc:
                raise PipelineError(f"params file '{file}' is malformed: {str(exc).splitlines()[0]}",
                                    "fix its syntax") from None
            self._loaded[file] = data
        return self._loaded[file]

    def get(self, ref: ParamRef) -> Any:
        data = self.load(ref.file)
        node = data
        for part in ref.key.split(".") if ref.key else []:  # an empty key: the whole file
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise PipelineError(f"params file '{ref.file}' has no key '{ref.key}'",
                                    "add it or fix the reference")
        return node


def resolve_params(stage: Stage, files: ParamsFiles) -> dict[str, Any]:
    """The stage's params with references replaced by their current values."""
    out: dict[str, Any] = {}
    for name, value in stage.params.items():
        if isinstance(value, ParamRef):
            try:
                out[name] = files.get(value)
            except PipelineError as exc:
                raise PipelineError(f"{stage.mark('param:' + name)}: stage '{stage.name}': {exc.message}",
                                    exc.hint) from None
        else:
            out[name] = value
    return out


# -- inputs ------------------------------------------------------------------------------------
def iter_files(root: Path, rel: str) -> Iterator[str]:
    """Project paths of the regular files at ``rel`` (a file, or every file under a folder)."""
    path = root / rel
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode):
        yield rel
        return
    if stat.S_ISLNK(st.st_mode):
        target = path.resolve()
        if target.is_file() and target.is_relative_to(root.resolve()):
            yield rel
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink():
                target = full.resolve()
                if not (target.is_file() and target.is_relative_to(root.resolve())):
                    continue
            elif not full.is_file():
                continue
            found.append(f"{base}/{name}")
    yield from sorted(found)


def exists(root: Path, rel: str) -> bool:
    return os.path.lexists(root / rel)


def hash_paths(root: Path, paths: list[str], hasher: Hasher) -> dict[str, str]:
    """Content hash of every file at or under each path (missing paths contribute nothing)."""
    out: dict[str, str] = {}
    for rel in paths:
        for file in iter_files(root, rel):
            out[file] = hasher(root / file)
    return out


def fingerprint(stage: Stage, root: Path, params: dict[str, Any], hasher: Hasher) -> Fingerprint:
    """The fingerprint of a stage as its inputs are on disk now (they must all exist)."""
    for inp in stage.inputs:
        if not exists(root, inp):
            raise PipelineError(f"{stage.mark('input:' + inp)}: stage '{stage.name}': input '{inp}' "
                                "does not exist and no stage writes it", "create it or fix the path")
    return Fingerprint(
        cmd=render_command(stage.cmd, params),
        params=params,
        inputs=hash_paths(root, stage.inputs, hasher),
        outputs=list(stage.outputs),
        placement={"executor": stage.executor, "image": stage.image, "gpus": stage.gpus},
    )


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def explain(old: Fingerprint | None, new: Fingerprint) -> list[str]:
    """What differs between the last successful run's fingerprint and now, in words."""
    if old is None:
        return ["never run"]
    reasons: list[str] = []
    if old.cmd != new.cmd:
        reasons.append("command changed")
    for name in sorted(set(old.params) | set(new.params)):
        if name not in old.params:
            reasons.append(f"param '{name}' added ({_short(new.params[name])})")
        elif name not in new.params:
            reasons.append(f"param '{name}' removed")
        elif old.params[name] != new.params[name]:
            reasons.append(f"param '{name}' changed {_short(old.params[name])} -> "
                           f"{_short(new.params[name])}")
    for path in sorted(set(old.inputs) | set(new.inputs)):
        if path not in old.inputs:
            reasons.append(f"input '{path}' added")
        elif path not in new.inputs:
            reasons.append(f"input '{path}' removed")
        elif old.inputs[path] != new.inputs[path]:
            reasons.append(f"input '{path}' changed")
    if old.outputs != new.outputs:
        reasons.append("declared outputs changed")
    if old.placement != new.placement:
        reasons.append("executor, image or GPUs changed")
    return reasons or ["fingerprint changed"]
