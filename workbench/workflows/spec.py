"""Parse and validate ``workbench.yaml``, the pipeline file at the project root.

The format (documented in docs/workflows.md)::

    params: params.yaml            # optional: the default params file for references
    stages:
      prepare:
        cmd: python prepare.py --seed {seed}   # a string (split like a shell would, never run
                                              # through one) or a list of arguments
        inputs: [prepare.py, data/raw]        # files or folders ("deps" is accepted too)
        outputs: [data/clean.csv]             # files or folders ("outs" is accepted too)
        models: [models/model.pkl]            # optional: outputs registered as model versions
        params:
          seed: 42                            # a value
          lr: {ref: train.lr}                 # a reference into params.yaml
          depth: {ref: "other.yaml:model.depth"}
        executor: local                       # optional, like image and gpus
      train: ...

Stages depend on each other through their files: a stage that reads a path another stage writes
runs after it. Every error names the file, line and column (from PyYAML's marks).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from workbench import yamlsafe
from workbench.errors import WorkbenchError
from workbench.paths import STORE_DIRNAME

PIPELINE_FILENAME = "workbench.yaml"
DEFAULT_PARAMS_FILE = "params.yaml"
STAGE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

_STAGE_KEYS = ("cmd", "inputs", "outputs", "models", "params", "executor", "image", "gpus", "desc")
_ALIASES = {"deps": "inputs", "outs": "outputs", "command": "cmd"}


class PipelineError(WorkbenchError):
    """A pipeline file that cannot be used: syntax, shape, cycles, clashing outputs, missing inputs."""


@dataclass(frozen=True)
class Location:
    """Where something was written in the pipeline file (1-based)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class ParamRef:
    """A param whose value lives in a params file under a dotted key."""

    file: str
    key: str


@dataclass
class Stage:
    """One step of the pipeline."""

    name: str
    cmd: list[str]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    """Outputs the stage's run declares as models (registered whatever their bytes)."""
    params: dict[str, Any] = field(default_factory=dict)
    """name -> literal value or :class:`ParamRef`."""
    executor: str | None = None
    image: str | None = None
    gpus: int | str | None = None
    desc: str = ""
    workdir: str = "."
    """Folder the command runs in, relative to the project root (dvc.yaml's ``wdir``)."""
    frozen: bool = False
    """Never run; its outputs are taken as they are (dvc.yaml's ``frozen: true``)."""
    always_changed: bool = False
    """Runs every time, whatever its fingerprint (dvc.yaml's ``always_changed: true``)."""
    persist: list[str] = field(default_factory=list)
    """Outputs left in place (not removed) before the command runs (dvc.yaml's ``persist: true``)."""
    metrics: list[str] = field(default_factory=list)
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Outputs drawn as plots -> their ``x``/``y`` options; step-like ones become series."""
    """Outputs whose values become the run's metrics (JSON, YAML or TOML files)."""
    model_names: dict[str, str] = field(default_factory=dict)
    """model path -> registry name (dvc.yaml ``artifacts``); others are named after the file."""
    where: Location = field(default_factory=lambda: Location(PIPELINE_FILENAME, 1, 1))
    marks: dict[str, Location] = field(default_factory=dict)
    """Location of each input, output and param, keyed ``input:PATH``, ``output:PATH``, ``param:NAME``."""

    def mark(self, key: str) -> Location:
        return self.marks.get(key, self.where)


@dataclass
class Pipeline:
    """A parsed pipeline: stages in the order they were declared."""

    path: Path
    stages: dict[str, Stage]
    params_file: str = DEFAULT_PARAMS_FILE

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise PipelineError(
                f"no stage '{name}' in {self.path.name}",
                f"stages: {', '.join(self.stages) or '(none)'}",
            ) from None


def _loc(file: str, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _fail(where: Location, message: str, hint: str | None = None) -> PipelineError:
    return PipelineError(f"{where}: {message}", hint)


def template_names(arg: str) -> list[str]:
    """The ``{name}`` placeholders in one argument (``{{`` and ``}}`` are literal braces)."""
    return [m.group(1) for m in PLACEHOLDER_RE.finditer(arg) if m.group(1) is not None]


def render_arg(arg: str, values: dict[str, Any]) -> str:
    """Replace ``{name}`` with the value of ``name``; ``{{``/``}}`` give literal braces."""

    def sub(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "{{":
            return "{"
        if text == "}}":
            return "}"
        name = match.group(1)
        if name in values:
            return format_value(values[name])
        if IDENT_RE.match(name):
            raise WorkbenchError(
                f"unknown placeholder '{{{name}}}' in argument {arg!r}",
                f"known: {', '.join(sorted(values)) or '(none)'}; write {{{{ and }}}} for literal braces",
            )
        return text

    return PLACEHOLDER_RE.sub(sub, arg)


def render_command(cmd: list[str], values: dict[str, Any]) -> list[str]:
    """Fill every argument's placeholders; the argv stays a list (no shell ever sees it)."""
    return [render_arg(arg, values) for arg in cmd]


def format_value(value: Any) -> str:
    """How a param value is written into a command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if value is None:
        return ""
    return str(value)


def normalize_path(raw: str, where: Location, what: str) -> str:
    """A project-relative posix path; absolute paths, ``..`` escapes and ``.workbench`` are refused."""
    text = raw.strip().replace("\\", "/")
    if not text:
        raise _fail(where, f"empty {what} path")
    pure = PurePosixPath(text)
    if pure.is_absolute():
        raise _fail(where, f"{what} '{raw}' is absolute", "paths are relative to the project root")
    parts: list[str] = []
    for part in pure.parts:
        if part == ".":
            continue
        if part == "..":
            if not parts:
                raise _fail(where, f"{what} '{raw}' leaves the project")
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise _fail(where, f"{what} '{raw}' is the project root", "name files or folders inside it")
    if parts[0] == STORE_DIRNAME:
        raise _fail(where, f"{what} '{raw}' is inside {STORE_DIRNAME}/")
    return "/".join(parts)


def is_within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies inside it (both normalised project paths)."""
    return path == folder or path.startswith(folder + "/")


class _Reader:
    """Turns PyYAML nodes into stages, keeping every node's position for messages."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader

    def loc(self, node: yaml.Node) -> Location:
        return _loc(self.file, node)

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise _fail(self.loc(node), f"{what} must be a mapping")
        seen: dict[str, Location] = {}
        items: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _fail(self.loc(key_node), f"keys of {what} must be plain names")
            key = str(key_node.value)
            if key in seen:
                raise _fail(self.loc(key_node), f"duplicate key '{key}' in {what}",
                            f"first defined at line {seen[key].line}")
            seen[key] = self.loc(key_node)
            items.append((key, key_node, value_node))
        return items

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def string(self, node: yaml.Node, what: str) -> str:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise _fail(self.loc(node), f"{what} must be a string")
        return str(value)

    def paths(self, node: yaml.Node, what: str, marks: dict[str, Location]) -> list[str]:
        nodes = [node] if isinstance(node, yaml.ScalarNode) else None
        if isinstance(node, yaml.SequenceNode):
            nodes = list(node.value)
        if nodes is None:
            raise _fail(self.loc(node), f"{what}s must be a list of paths")
        out: list[str] = []
        for item in nodes:
            path = normalize_path(self.string(item, f"each {what}"), self.loc(item), what)
            if path in out:
                raise _fail(self.loc(item), f"{what} '{path}' is listed twice")
            out.append(path)
            marks[f"{what}:{path}"] = self.loc(item)
        return out

    def command(self, node: yaml.Node) -> list[str]:
        if isinstance(node, yaml.SequenceNode):
            argv = [self.string(item, "each cmd argument") for item in node.value]
        else:
            text = self.string(node, "cmd")
            try:
                argv = shlex.split(text)
            except ValueError as exc:
                raise _fail(self.loc(node), f"cannot split cmd: {exc}", "check the quotes") from None
        if not argv:
            raise _fail(self.loc(node), "cmd is empty")
        return argv

    def params(self, node: yaml.Node, default_file: str, marks: dict[str, Location]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(node, yaml.SequenceNode):  # DVC style: a list of keys in the params file
            for item in node.value:
                key = self.string(item, "each param reference")
                out[key] = self._ref(key, default_file, self.loc(item))
                marks[f"param:{key}"] = self.loc(item)
            return out
        for name, key_node, value_node in self.mapping(node, "params"):
            if not IDENT_RE.match(name):
                raise _fail(self.loc(key_node), f"param name '{name}' is not a valid name")
            marks[f"param:{name}"] = self.loc(value_node)
            if isinstance(value_node, yaml.MappingNode):
                fields = {k: v for k, _, v in self.mapping(value_node, f"param '{name}'")}
                if set(fields) != {"ref"}:
                    raise _fail(self.loc(value_node), f"param '{name}' must be a value or {{ref: KEY}}",
                                "for example  lr: {ref: train.lr}  or  lr: {ref: 'params.yaml:train.lr'}")
                ref = self.string(fields["ref"], f"param '{name}' ref")
                out[name] = self._ref(ref, default_file, self.loc(fields["ref"]))
            elif isinstance(value_node, yaml.SequenceNode):
                out[name] = self.value(value_node)
            else:
                out[name] = self.value(value_node)
        return out

    def _ref(self, text: str, default_file: str, where: Location) -> ParamRef:
        file, sep, key = text.rpartition(":")
        if not sep:
            file, key = default_file, text
        file = normalize_path(file, where, "params file") if file else default_file
        if not key or any(not part for part in key.split(".")):
            raise _fail(where, f"param reference '{text}' has an empty key")
        return ParamRef(file, key)

    def stage(self, name: str, key_node: yaml.Node, node: yaml.Node, default_file: str) -> Stage:
        where = self.loc(key_node)
        if not STAGE_NAME_RE.match(name):
            raise _fail(where, f"stage name '{name}' is not valid", "use letters, digits, _ . -")
        marks: dict[str, Location] = {}
        fields: dict[str, Any] = {}
        for raw_key, k_node, v_node in self.mapping(node, f"stage '{name}'"):
            key = _ALIASES.get(raw_key, raw_key)
            if key not in _STAGE_KEYS:
                raise _fail(self.loc(k_node), f"stage '{name}': unknown key '{raw_key}'",
                            f"valid keys: {', '.join(_STAGE_KEYS)}")
            if key in fields:
                raise _fail(self.loc(k_node), f"stage '{name}': '{raw_key}' given twice")
            if key == "cmd":
                fields[key] = self.command(v_node)
            elif key in ("inputs", "outputs", "models"):
                fields[key] = self.paths(v_node, key[:-1], marks)
            elif key == "params":
                fields[key] = self.params(v_node, default_file, marks)
            elif key == "gpus":
                gpus = self.value(v_node)
                if not (gpus == "all" or (isinstance(gpus, int) and not isinstance(gpus, bool)
                                          and gpus >= 0)):
                    raise _fail(self.loc(v_node), f"stage '{name}': gpus must be a count or 'all'")
                fields[key] = gpus
            else:
                fields[key] = self.string(v_node, f"stage '{name}': {raw_key}")
        if "cmd" not in fields:
            raise _fail(where, f"stage '{name}' has no cmd")
        for model in fields.get("models", []):
            if not any(model == out or model.startswith(out + "/") for out in fields.get("outputs", [])):
                raise _fail(marks[f"model:{model}"],
                            f"stage '{name}': model '{model}' is not one of its outputs",
                            "list it under outputs too")
        stage = Stage(name=name, where=where, marks=marks, **fields)
        for arg in stage.cmd:
            for placeholder in template_names(arg):
                if IDENT_RE.match(placeholder) and placeholder not in stage.params:
                    raise _fail(where, f"stage '{name}': cmd uses {{{placeholder}}} but has no such param",
                                "declare it under params, or write {{ }} for literal braces")
        return stage


def parse_pipeline(text: str, path: Path) -> Pipeline:
    """Parse pipeline text; raise :class:`PipelineError` with file:line:column on any problem."""
    file = path.name
    root, loader = yamlsafe.compose(text, file, PipelineError)
    try:
        reader = _Reader(file, loader)
        if root is None:
            raise PipelineError(f"{file}: the file is empty", "declare at least one stage under 'stages:'")
        top = {k: (kn, v) for k, kn, v in reader.mapping(root, "the pipeline file")}
        unknown = set(top) - {"stages", "params"}
        if unknown:
            name = sorted(unknown)[0]
            raise _fail(reader.loc(top[name][0]), f"unknown top-level key '{name}'",
                        "valid keys: stages, params")
        params_file = DEFAULT_PARAMS_FILE
        if "params" in top:
            node = top["params"][1]
            params_file = normalize_path(reader.string(node, "params"), reader.loc(node), "params file")
        if "stages" not in top:
            raise _fail(Location(file, 1, 1), "no 'stages:' section", "declare at least one stage")
        stages_node = top["stages"][1]
        stages: dict[str, Stage] = {}
        for name, key_node, node in reader.mapping(stages_node, "stages"):
            stages[name] = reader.stage(name, key_node, node, params_file)
        if not stages:
            raise _fail(reader.loc(stages_node), "no stages declared")
    finally:
        loader.dispose()
    pipeline = Pipeline(path=path, stages=stages, params_file=params_file)
    check_outputs(pipeline)
    return pipeline


def check_outputs(pipeline: Pipeline) -> None:
    """Two stages may not write the same path (or one inside the other's output folder)."""
    owners: list[tuple[str, str]] = []
    for stage in pipeline.stages.values():
        for out in stage.outputs:
            for other_stage, other_out in owners:
                if is_within(out, other_out) or is_within(other_out, out):
                    same = "the same output" if out == other_out else "overlapping outputs"
                    raise _fail(stage.mark(f"output:{out}"),
                                f"stages '{other_stage}' and '{stage.name}' write {same} "
                                f"'{other_out}'" + ("" if out == other_out else f" and '{out}'"),
                                "each path must have one producing stage")
            owners.append((stage.name, out))


def load_pipeline(root: Path, filename: str = PIPELINE_FILENAME) -> Pipeline:
    """Read ``workbench.yaml`` from the project root."""
    path = root / filename
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"no {filename} in {root}",
                            "declare stages in workbench.yaml or dvc.yaml (see docs/workflows.md)") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{filename} is not UTF-8 text", "save it as UTF-8") from None
    except OSError as exc:  # a folder of that name, no permission, an I/O error
        raise PipelineError(f"cannot read {filename}: {exc.strerror or exc}",
                            "it must be a readable file at the project root") from None
    return parse_pipeline(text, path)
