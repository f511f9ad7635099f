"""Zero-code params from argparse, for Python children of ``workbench run`` (imported by the
capture ``sitecustomize`` beside it; standard library only).

:func:`install_argparse_hook` patches :mod:`argparse` when the child imports it (a meta path finder,
so a child that never parses arguments pays nothing) so that the outermost
``parse_known_args`` of the process (``parse_args`` calls it, and so do subparsers) emits one
``argparse`` event: every dest of the parsed namespace (JSON scalars as they are, other values as
their ``str``), which of them the command line gave (the others defaulted), and the flag names the
parser knows. A script that parses twice emits twice; the last parse wins. Only the run's first
Python process reports (a Python child it starts inherits ``WORKBENCH_ARGPARSE_PID`` and stays
quiet), unless that process is a launcher (torchrun, ``accelerate launch``, ``deepspeed``): it
reports nothing and hands the report on to the training script's processes. Events go to the file
named by ``WORKBENCH_EVENTS``, or marked on stdout for ``@stdout``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_EVENTS = "WORKBENCH_EVENTS"
_ARGS_OWNER = "WORKBENCH_ARGPARSE_PID"
"""The pid of the first Python process of the run: only its parsed arguments are the run's params
(a child Python that parses its own arguments inherits the variable and stays quiet)."""
_SUPPRESS = "==SUPPRESS=="


def _param_value(value: Any) -> Any:
    """A JSON-able scalar as it is; anything else (a list, a Path, an open file) as its str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


_HYDRA_DESTS = frozenset({"overrides", "hydra_help", "multirun", "config_name"})
"""Dests of Hydra's own parser (``@hydra.main``): its flags are Hydra's, its overrides the params."""


def _typed(text: str) -> Any:
    """An override's value as Hydra reads a scalar: an int, a float, a bool, null, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", ""):
        return None if lowered != "" else ""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def hydra_overrides(overrides: Any) -> dict[str, Any]:
    """``lr=0.1 +extra=5 ++model.depth=34 db=mysql`` as params (``lr``, ``extra``, ``model.depth``,
    ``db``); deletions (``~key``) and Hydra's own settings (``hydra.run.dir=...``) are not."""
    values: dict[str, Any] = {}
    for item in overrides if isinstance(overrides, list) else ():
        if not isinstance(item, str) or item.startswith("~"):
            continue
        key, sep, value = item.lstrip("+").partition("=")
        if sep and key and key != "hydra" and not key.startswith(("hydra.", "hydra/")):
            values[key] = _typed(value)
    return values


_LAUNCHER_DESTS = (frozenset({"training_script", "training_script_args"}),
                   frozenset({"user_script", "user_args"}))
"""Dests of launchers' parsers: torchrun and ``python -m torch.distributed.run``, ``accelerate
launch`` (``training_script``...), ``deepspeed`` (``user_script``...)."""


def is_launcher(namespace: Any) -> bool:
    """Whether a parse is a launcher's, which starts the training script in processes of its own."""
    dests = set(vars(namespace))
    return any(launcher <= dests for launcher in _LAUNCHER_DESTS)


def argparse_event(namespace: Any, given: set[str], parser: Any) -> dict[str, Any]:
    """The ``argparse`` event of one parse: every dest of the namespace with its value, the dests
    given on the command line, and the flag names (without dashes) the parser knows, so argv params
    under those names give way to these. Hydra's parser gives its overrides instead (the composed
    config is read from ``.hydra/config.yaml`` when the run ends)."""
    values = {k: _param_value(v) for k, v in sorted(vars(namespace).items())
              if k != _SUPPRESS and not k.startswith("_")}
    flags: set[str] = set()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in getattr(current, "_actions", ()):
            for option in getattr(action, "option_strings", ()):
                flags.add(option.lstrip("-" + getattr(current, "prefix_chars", "-")))
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):  # a subparsers action: its parsers' flags too
                parsers.extend(p for p in choices.values() if p is not current and hasattr(p, "_actions"))
    if set(values) >= _HYDRA_DESTS:  # Hydra's flags (-m, --cfg) are no params: they give way too
        values = hydra_overrides(getattr(namespace, "overrides", None))
        given = set(values)
    return {"e": "argparse", "v": values, "given": sorted(given & set(values)),
            "flags": sorted(f for f in flags if f)}


def _emit(event: dict[str, Any]) -> None:
    target = os.environ.get(_EVENTS, "")
    if not target:
        return
    import json

    line = (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    if target.startswith("@"):  # a pod: marked lines on stdout
        sys.stdout.flush()
        os.write(1, b"@@workbench@@ " + line)
        return
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def patch_argparse(module: Any) -> None:
    """Wrap ``ArgumentParser.parse_known_args`` (which ``parse_args`` and subparsers call) so the
    outermost parse of this process emits its namespace; ``_get_values`` is wrapped to see which
    actions the command line gave (the others kept their defaults)."""
    parser_class = module.ArgumentParser
    if getattr(parser_class, "_workbench_patched", False):
        return
    state: dict[str, Any] = {"depth": 0, "given": set()}
    original_parse = parser_class.parse_known_args
    original_values = getattr(parser_class, "_get_values", None)

    def parse_known_args(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = state["depth"] == 0
        if outer:
            state["given"] = set()
        state["depth"] += 1
        try:
            result = original_parse(self, *args, **kwargs)
        finally:
            state["depth"] -= 1
        if outer and os.environ.get(_ARGS_OWNER) == str(os.getpid()):
            try:
                namespace = result[0]
                if is_launcher(namespace):  # torchrun, accelerate launch, deepspeed: the script it
                    os.environ[_ARGS_OWNER] = ""  # starts reports its own arguments, not this one
                    return result
                given = state["given"]
                if original_values is None:  # no hook into the parse: whatever differs from its default
                    given = {k for k, v in vars(namespace).items() if v != self.get_default(k)}
                _emit(argparse_event(namespace, given, self))
            except Exception:
                pass
        return result

    def _get_values(self: Any, action: Any, arg_strings: Any) -> Any:
        if arg_strings or action.option_strings:  # an empty positional ('?', '*') was not given
            dest = getattr(action, "dest", None)
            if isinstance(dest, str):
                state["given"].add(dest)
        return original_values(self, action, arg_strings)  # type: ignore[misc]

    parser_class.parse_known_args = parse_known_args
    if original_values is not None:
        parser_class._get_values = _get_values
    parser_class._workbench_patched = True


class _ArgparseFinder:
    """A meta path finder that patches ``argparse`` right after it is imported (importing it
    here would cost every child the import)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "argparse":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            try:
                patch_argparse(module)
            except Exception:
                pass

        try:
            loader.exec_module = exec_module
        except Exception:
            pass
        return spec


def install_argparse_hook() -> None:
    """Record this process's parsed arguments as params, if it is the run's first Python process."""
    if os.environ.get(_ARGS_OWNER):
        return
    os.environ[_ARGS_OWNER] = str(os.getpid())
    if "argparse" in sys.modules:
        patch_argparse(sys.modules["argparse"])
    else:
        sys.meta_path.insert(0, _ArgparseFinder())

