"""Read a DVC project's ``dvc.yaml`` (with ``params.yaml``) into the ordinary :class:`Pipeline`.

Used when the project has no ``workbench.yaml``; nothing of DVC's is ever written (no
``dvc.lock``, no ``.dvc/``): fingerprints and cached outputs live in Workbench's store as for any
pipeline. Supported, with DVC 3's meaning (docs/workflows.md):

* top level: ``stages``, ``vars``, ``params``, ``metrics``, ``plots``, ``artifacts``;
* a stage: ``cmd`` (a string or a list, each run by ``sh -c`` in turn, as DVC does), ``deps``,
  ``outs`` / ``metrics`` / ``plots`` (paths, or ``{path: {cache, persist, ...}}``), ``params`` (keys
  of ``params.yaml``, sections, ``{other.yaml: [keys]}``), ``wdir``, ``frozen``,
  ``always_changed``, ``vars``, ``desc``, ``meta``; ``foreach``/``do`` and ``matrix`` groups
  (stages named ``name@key`` as DVC names them); ``${...}`` everywhere (:mod:`.dvc_vars`);
* ``metrics`` files become the writing run's metrics; ``artifacts`` of ``type: model`` are
  registered under the artifact's name by the stage that writes their path.

Anything else is refused as ``dvc.yaml:LINE:COL: ...`` naming the key, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from workbench import yamlsafe
from workbench.workflows.dvc_vars import Context, DvcVarsError, join_path
from workbench.workflows.spec import (
    DEFAULT_PARAMS_FILE,
    Location,
    ParamRef,
    Pipeline,
    PipelineError,
    Stage,
    check_outputs,
    is_within,
    normalize_path,
)

DVC_FILENAME = "dvc.yaml"
TOP_KEYS = ("stages", "vars", "params", "metrics", "plots", "artifacts")
STAGE_KEYS = ("cmd", "deps", "outs", "metrics", "plots", "params", "wdir", "frozen", "always_changed",
              "vars", "desc", "meta")
OUT_FLAGS = ("cache", "persist", "desc", "remote", "push", "type", "labels", "meta")
PLOT_FLAGS = ("x", "y", "template", "title", "x_label", "y_label", "header")
SHELL = "/bin/sh"
RUN_EACH = 'for c in "$@"; do /bin/sh -c "$c" || exit $?; done'
"""The script that runs a list ``cmd``: each command in its own shell, stopping at the first failure."""

Path_ = tuple[Any, ...]


def _positions(root: yaml.Node, file: str) -> dict[Path_, Location]:
    """Where each mapping key and list item was written, by its path in the document; duplicate keys
    are refused (DVC refuses them too)."""
    out: dict[Path_, Location] = {}
    todo: list[tuple[Path_, yaml.Node]] = [((), root)]
    seen: set[int] = set()
    while todo:
        path, node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
                where = Location(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if key in keys:
                    raise PipelineError(f"{where}: duplicate key '{key}'", "keep one of them")
                keys.add(key)
                out[(*path, key)] = where
                todo.append(((*path, key), value_node))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                out[(*path, index)] = Location(file, item.start_mark.line + 1, item.start_mark.column + 1)
                todo.append(((*path, index), item))
    return out


class DvcReader:
    """Turns one dvc.yaml document into stages."""

    def __init__(self, file: str, root: Path, positions: dict[Path_, Location]) -> None:
        self.file = file
        self.root = root
        self.positions = positions

    def loc(self, path: Path_) -> Location:
        while path and path not in self.positions:
            path = path[:-1]
        return self.positions.get(path, Location(self.file, 1, 1))

    def fail(self, path: Path_, message: str, hint: str | None = None) -> PipelineError:
        return PipelineError(f"{self.loc(path)}: {message}", hint)

    def key_name(self, path: Path_) -> str:
        return ".".join(str(p) for p in path)

    def resolve(self, ctx: Context, value: Any, path: Path_, key: str) -> Any:
        try:
            return ctx.resolve(value, key)
        except DvcVarsError as exc:
            raise self.fail(path, f"'{self.key_name(path)}': {exc.message}",
                            exc.hint or "define it in params.yaml or vars") from None

    # -- the document ---------------------------------------------------------------------------
    def pipeline(self, data: Any, path: Path) -> Pipeline:
        if data is None:
            raise PipelineError(f"{self.file}: the file is empty", "declare stages under 'stages:'")
        if not isinstance(data, dict):
            raise self.fail((), "dvc.yaml must be a mapping")
        for key in data:
            if key not in TOP_KEYS:
                raise self.fail((key,), f"unsupported key '{key}'",
                                f"Workbench reads {', '.join(TOP_KEYS)} from dvc.yaml")
        ctx = Context()
        try:
            if (self.root / DEFAULT_PARAMS_FILE).is_file():
                ctx.load_file(self.root, DEFAULT_PARAMS_FILE)
            ctx.load_vars(self.root, data.get("vars", []), "", "vars")
        except DvcVarsError as exc:
            raise self.fail(("vars",), exc.message, exc.hint or "fix the vars entry") from None
        stages_data = data.get("stages")
        if not isinstance(stages_data, dict) or not stages_data:
            raise self.fail(("stages",), "no stages declared",
                            "this dvc.yaml only lists metrics, params or plots (DVCLive writes such a file): "
                            "declare stages in it or in workbench.yaml")
        stages: dict[str, Stage] = {}
        for name, definition in stages_data.items():
            for stage in self.group(str(name), definition, ctx):
                if stage.name in stages:
                    raise self.fail(("stages", name), f"stage '{stage.name}' is defined twice")
                stages[stage.name] = stage
        self.check_list(data, "params", str)  # top-level params files: shown by DVC, nothing to run
        pipeline = Pipeline(path=path, stages=stages, params_file=DEFAULT_PARAMS_FILE)
        self.plots(pipeline, data.get("plots", []))
        self.top_metrics(pipeline, data.get("metrics", []))
        self.artifacts(pipeline, data.get("artifacts", {}), ctx)
        check_outputs(pipeline)
        return pipeline

    def check_list(self, data: dict[str, Any], key: str, kind: type) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
            raise self.fail((key,), f"'{key}' must be a list of file names")
        return value

    # -- stages ---------------------------------------------------------------------------------
    def group(self, name: str, definition: Any, ctx: Context) -> list[Stage]:
        base: Path_ = ("stages", name)
        if not isinstance(definition, dict):
            raise self.fail(base, f"stage '{name}' must be a mapping")
        if "foreach" in definition:
            extra = set(definition) - {"foreach", "do"}
            if extra or "do" not in definition:
                bad = sorted(extra)[0] if extra else "foreach"
                raise self.fail((*base, bad),
                                f"stage '{name}': a foreach group has exactly 'foreach' and 'do'")
            items = self.resolve(ctx, definition["foreach"], (*base, "foreach"), "foreach")
            if isinstance(items, dict):
                members = [(str(k), {"item": v, "key": k}) for k, v in items.items()]
            elif isinstance(items, list):
                composite = any(isinstance(v, dict | list) for v in items)
                members = [(str(i) if composite else _to_name(v), {"item": v}) for i, v in enumerate(items)]
            else:
                raise self.fail((*base, "foreach"), f"stage '{name}': foreach must be a list or a mapping, "
                                f"got {type(items).__name__}")
            return [self.stage(f"{name}@{key}", definition["do"], ctx, (*base, "do"), temp)
                    for key, temp in members]
        if "matrix" in definition:
            matrix = self.resolve(ctx, definition["matrix"], (*base, "matrix"), "matrix")
            if not isinstance(matrix, dict) or not all(isinstance(v, list) for v in matrix.values()):
                raise self.fail((*base, "matrix"), f"stage '{name}': matrix must map names to lists")
            template = {k: v for k, v in definition.items() if k != "matrix"}
            combos: list[tuple[list[str], dict[str, Any]]] = [([], {})]
            for axis, values in matrix.items():
                combos = [([*frags, f"{axis}{i}" if isinstance(v, dict | list) else _to_name(v)],
                           {**combo, axis: v}) for frags, combo in combos for i, v in enumerate(values)]
            return [self.stage(f"{name}@{'-'.join(frags)}", template, ctx, base, {"item": combo})
                    for frags, combo in combos]
        return [self.stage(name, definition, ctx, base, {})]

    def stage(self, name: str, definition: Any, ctx: Context, base: Path_, temp: dict[str, Any]) -> Stage:
        if not isinstance(definition, dict):
            raise self.fail(base, f"stage '{name}' must be a mapping")
        for key in definition:
            if key not in STAGE_KEYS:
                raise self.fail((*base, key), f"stage '{name}': unsupported key '{key}'",
                                f"Workbench reads {', '.join(STAGE_KEYS)} in a dvc.yaml stage")
        if "cmd" not in definition:
            raise self.fail(base, f"stage '{name}' has no cmd")
        local = ctx.clone()
        local.data.update(temp)
        wdir_raw = self.resolve(local, definition.get("wdir", "."), (*base, "wdir"), "wdir")
        wdir = "." if str(wdir_raw).strip() in ("", ".", "./") else normalize_path(
            str(wdir_raw), self.loc((*base, "wdir")), "wdir")
        if "vars" in definition:
            try:
                local.load_vars(self.root, definition["vars"], "" if wdir == "." else wdir,
                                f"stages.{name}.vars")
            except DvcVarsError as exc:
                raise self.fail((*base, "vars"), exc.message, exc.hint or "fix the vars entry") from None
            local.data.update(temp)
        fields = {key: self.resolve(local, value, (*base, key), key)
                  for key, value in definition.items() if key not in ("vars", "wdir", "meta")}
        stage = Stage(name=name, cmd=self.command(fields["cmd"], (*base, "cmd"), name),
                      workdir=wdir, where=self.loc(base))
        stage.desc = str(fields.get("desc") or "")
        for flag in ("frozen", "always_changed"):
            value = fields.get(flag, False)
            if not isinstance(value, bool):
                raise self.fail((*base, flag), f"stage '{name}': {flag} must be true or false")
            setattr(stage, flag, value)
        for dep_index, dep in enumerate(self.entries(fields.get("deps", []), (*base, "deps"), name)):
            path = self.path(dep[0], wdir, (*base, "deps", dep_index), "input")
            if dep[1]:
                raise self.fail((*base, "deps", dep_index), f"stage '{name}': dep '{dep[0]}' has options",
                                "list dependencies as plain paths")
            self.add(stage, "input", path, (*base, "deps", dep_index))
        for kind in ("outs", "metrics", "plots"):
            allowed = OUT_FLAGS + (PLOT_FLAGS if kind == "plots" else ())
            for index, (raw, flags) in enumerate(self.entries(fields.get(kind, []), (*base, kind), name)):
                where = (*base, kind, index)
                bad = sorted(set(flags) - set(allowed))
                if bad:
                    raise self.fail(where, f"stage '{name}': unsupported option '{bad[0]}' of {kind[:-1]} "
                                    f"'{raw}'", f"supported: {', '.join(allowed)}")
                path = self.path(raw, wdir, where, "output")
                self.add(stage, "output", path, where)
                if flags.get("persist") is True:
                    stage.persist.append(path)
                if kind == "metrics":
                    stage.metrics.append(path)
                elif kind == "plots":
                    stage.plots[path] = {k: flags[k] for k in ("x", "y") if k in flags}
        stage.params = self.params(fields.get("params", []), wdir, (*base, "params"), stage)
        return stage

    def add(self, stage: Stage, what: str, path: str, where: Path_) -> None:
        listed = stage.inputs if what == "input" else stage.outputs
        if path in listed:
            raise self.fail(where, f"stage '{stage.name}': {what} '{path}' is listed twice")
        listed.append(path)
        stage.marks[f"{what}:{path}"] = self.loc(where)

    def entries(self, value: Any, path: Path_, name: str) -> list[tuple[str, dict[str, Any]]]:
        """A list of paths, each a string or ``{path: {option: value}}``."""
        if not isinstance(value, list):
            raise self.fail(path, f"stage '{name}': '{path[-1]}' must be a list")
        out: list[tuple[str, dict[str, Any]]] = []
        for index, item in enumerate(value):
            if isinstance(item, str | int | float) and not isinstance(item, bool):
                out.append((str(item), {}))
            elif isinstance(item, dict) and len(item) == 1:
                [(raw, flags)] = item.items()
                if flags is not None and not isinstance(flags, dict):
                    raise self.fail((*path, index), f"stage '{name}': options of '{raw}' must be a mapping")
                out.append((str(raw), dict(flags or {})))
            else:
                raise self.fail((*path, index), f"stage '{name}': each entry of '{path[-1]}' must be a path")
        return out

    def path(self, raw: str, wdir: str, where: Path_, what: str) -> str:
        if "://" in raw or raw.startswith("remote:"):
            raise self.fail(where, f"{what} '{raw}' is not a file in the project",
                            "Workbench reads local files only: download it in a stage of its own")
        return normalize_path(join_path("" if wdir == "." else wdir, raw), self.loc(where), what)

    def command(self, value: Any, path: Path_, name: str) -> list[str]:
        commands = value if isinstance(value, list) else [value]
        if not commands or not all(isinstance(c, str | int | float) and not isinstance(c, bool)
                                   for c in commands):
            raise self.fail(path, f"stage '{name}': cmd must be a string or a list of strings")
        texts = [_escape(str(c)) for c in commands]
        if len(texts) == 1:
            return [SHELL, "-c", texts[0]]
        return [SHELL, "-c", RUN_EACH, "sh", *texts]

    def params(self, value: Any, wdir: str, path: Path_, stage: Stage) -> dict[str, Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"stage '{stage.name}': params must be a list")
        prefix = "" if wdir == "." else wdir
        default = join_path(prefix, DEFAULT_PARAMS_FILE)
        out: dict[str, Any] = {}
        for index, item in enumerate(value):
            where = (*path, index)
            refs: list[tuple[str, ParamRef]] = []
            if isinstance(item, str):
                refs.append((item, ParamRef(default, item)))
            elif isinstance(item, dict):
                for file, keys in item.items():
                    rel = normalize_path(join_path(prefix, str(file)), self.loc(where), "params file")
                    if keys is None or keys == []:
                        refs.append((str(file), ParamRef(rel, "")))
                    elif isinstance(keys, list) and all(isinstance(k, str) for k in keys):
                        refs += [(f"{file}:{k}", ParamRef(rel, k)) for k in keys]
                    else:
                        raise self.fail(where,
                                        f"stage '{stage.name}': params of '{file}' must be a list of keys")
            else:
                raise self.fail(where, f"stage '{stage.name}': each params entry must be a key or "
                                "{file: [keys]}")
            for param_name, ref in refs:
                out[param_name] = ref
                stage.marks[f"param:{param_name}"] = self.loc(where)
        return out

    # -- top level ------------------------------------------------------------------------------
    def plots(self, pipeline: Pipeline, value: Any) -> None:
        """Top-level plots: a file plot (``path`` or ``{path: {x, y}}``) or a plot id whose ``y`` maps
        files to columns. Each file a stage writes becomes that stage's plot (series when step-like,
        see :mod:`workbench.tracking.plot_files`); the rest only shapes what DVC draws."""
        if not isinstance(value, list):
            raise self.fail(("plots",), "'plots' must be a list")
        for index, item in enumerate(value):
            where: Path_ = ("plots", index)
            if isinstance(item, str):
                self.top_plot(pipeline, item, {}, where)
                continue
            if not isinstance(item, dict):
                raise self.fail(where, "each plot must be a path or {path: options}")
            for key, props in item.items():
                if props is not None and not isinstance(props, dict):
                    raise self.fail(where, "each plot's options must be a mapping")
                props = props or {}
                x, y = props.get("x"), props.get("y")
                if isinstance(y, dict):  # a plot id drawing columns of several files
                    for file, columns in y.items():
                        file_x = x.get(file) if isinstance(x, dict) else x
                        self.top_plot(pipeline, str(file), {"x": file_x, "y": columns}, where)
                else:
                    self.top_plot(pipeline, str(key), {"x": x, "y": y}, where)

    def top_plot(self, pipeline: Pipeline, raw: str, options: dict[str, Any], where: Path_) -> None:
        path = normalize_path(raw, self.loc(where), "plot file")
        kept = {k: v for k, v in options.items() if isinstance(v, str | list)}
        for stage in pipeline.stages.values():
            if any(is_within(path, out) for out in stage.outputs) and path not in stage.plots:
                stage.plots[path] = kept

    def top_metrics(self, pipeline: Pipeline, value: Any) -> None:
        """A top-level metrics file becomes the metrics of the stage that writes it (every stage's
        when none declares it: it counts for the run that actually writes it)."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(("metrics",), "'metrics' must be a list of file names")
        for index, raw in enumerate(value):
            path = normalize_path(raw, self.loc(("metrics", index)), "metrics file")
            owners = [s for s in pipeline.stages.values() if any(is_within(path, o) for o in s.outputs)]
            for stage in owners or list(pipeline.stages.values()):
                if path not in stage.metrics:
                    stage.metrics.append(path)

    def artifacts(self, pipeline: Pipeline, value: Any, ctx: Context) -> None:
        if not isinstance(value, dict):
            raise self.fail(("artifacts",), "'artifacts' must map names to {path, type}")
        for name, spec in value.items():
            where: Path_ = ("artifacts", name)
            spec = self.resolve(ctx, spec, where, "artifacts")
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
                raise self.fail(where, f"artifact '{name}' needs a path")
            bad = sorted(set(spec) - {"path", "type", "desc", "labels", "meta"})
            if bad:
                raise self.fail((*where, bad[0]), f"artifact '{name}': unsupported key '{bad[0]}'",
                                "supported: path, type, desc, labels, meta")
            if spec.get("type") != "model":
                continue  # other artifact types are descriptions; nothing to register
            path = normalize_path(spec["path"], self.loc((*where, "path")), "artifact path")
            owners = [s for s in pipeline.stages.values() if any(is_within(path, o) for o in s.outputs)]
            if not owners:
                raise self.fail((*where, "path"), f"artifact '{name}': '{path}' is not written by any stage",
                                "Workbench registers a model from the run that writes it: add it to "
                                "that stage's outs")
            owners[0].models.append(path)
            owners[0].model_names[path] = str(name)


def _to_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _escape(text: str) -> str:
    """Braces are literal in a dvc.yaml command (Workbench's ``{param}`` placeholders do not apply)."""
    return text.replace("{", "{{").replace("}", "}}")


def parse_dvc(text: str, path: Path, root: Path) -> Pipeline:
    """Parse dvc.yaml text; any problem is a :class:`PipelineError` naming file, line and key."""
    file = path.name
    node, loader = yamlsafe.compose(text, file, PipelineError)
    try:
        if node is None:
            raise PipelineError(f"{file}: the file is empty", "declare stages under 'stages:'")
        positions = _positions(node, file)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return DvcReader(file, root, positions).pipeline(data, path)


def load_dvc(root: Path) -> Pipeline:
    """Read ``dvc.yaml`` from the project root."""
    path = root / DVC_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{DVC_FILENAME} is not UTF-8 text", "save it as UTF-8") from None
    except OSError as exc:
        raise PipelineError(f"cannot read {DVC_FILENAME}: {exc.strerror or exc}",
                            "it must be a readable file at the project root") from None
    return parse_dvc(text, path, root)
