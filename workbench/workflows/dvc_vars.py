"""DVC's ``vars`` and ``${...}`` interpolation, with DVC's semantics (dvc/parsing, DVC 3).

* The context starts with ``params.yaml`` (when it exists), then each ``vars`` entry in order: a
  file (``config.yaml``, ``config.json:train,model`` for some of its top-level keys) or an inline
  mapping. Redefining a value already defined is an error, as in DVC; listing a file twice is not.
* ``${a.b[0].c}`` selects a value. A string that is exactly one ``${...}`` takes the value's type
  (a number, a list for ``foreach``); inside a longer string the value is written as text: booleans
  as ``true``/``false``, and in ``cmd`` only, a mapping as ``--key value`` flags. ``\\${`` is a
  literal ``${``.

Errors are :class:`DvcVarsError` with the problem; the caller adds the file, line and key.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from workbench import yamlsafe
from workbench.errors import WorkbenchError

KEYCRE = re.compile(r"(?<!\\)\$\{(?P<inner>.*?)\}")
PRIMITIVES = (int, float, str, bool)


class DvcVarsError(WorkbenchError):
    """A ``vars`` entry or an interpolation DVC would refuse too."""


def load_file(root: Path, rel: str) -> Any:
    """A params/vars file inside the project (YAML, JSON or TOML by extension)."""
    path = root / rel
    try:
        if not path.resolve().is_relative_to(root.resolve()):
            raise DvcVarsError(f"'{rel}' leads outside the project")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DvcVarsError(f"'{rel}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DvcVarsError(f"cannot read '{rel}': {exc}") from None
    try:
        if rel.endswith(".json"):
            return json.loads(text)
        if rel.endswith(".toml"):
            return tomllib.loads(text)
        if rel.endswith(".py"):
            raise DvcVarsError(f"'{rel}': Python params files are not supported",
                               "use a YAML, JSON or TOML file")
        return yamlsafe.load(text, rel, DvcVarsError)
    except (ValueError, RecursionError) as exc:
        raise DvcVarsError(f"'{rel}' is malformed: {str(exc).splitlines()[0]}") from None


def _merge(into: dict[str, Any], other: dict[str, Any], source: str, path: str = "") -> None:
    for key, value in other.items():
        here = f"{path}.{key}" if path else str(key)
        if key in into:
            if isinstance(into[key], dict) and isinstance(value, dict):
                _merge(into[key], value, source, here)
                continue
            raise DvcVarsError(f"cannot redefine '{here}' from '{source}' as it already exists")
        into[key] = copy.deepcopy(value)


class Context:
    """The values ``${...}`` can select."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}
        self.imported: dict[str, list[str] | None] = {}

    def clone(self) -> Context:
        new = Context(copy.deepcopy(self.data))
        new.imported = dict(self.imported)
        return new

    def load_file(self, root: Path, rel: str, keys: list[str] | None = None) -> None:
        if rel in self.imported and self.imported[rel] is None and not keys:
            return  # the whole file again: DVC allows it
        data = load_file(root, rel)
        if not isinstance(data, dict):
            raise DvcVarsError(f"expected a mapping in '{rel}', got {type(data).__name__}")
        if keys:
            missing = [k for k in keys if k not in data]
            if missing:
                raise DvcVarsError(f"could not find '{missing[0]}' in '{rel}'")
            data = {k: data[k] for k in keys}
        _merge(self.data, data, rel)
        self.imported[rel] = keys

    def load_vars(self, root: Path, entries: Any, wdir: str, where: str) -> None:
        """Merge a ``vars`` list: file names (``f.yaml`` or ``f.yaml:k1,k2``) and inline mappings."""
        if not isinstance(entries, list):
            raise DvcVarsError(f"'{where}' must be a list of files and mappings")
        for index, entry in enumerate(entries):
            if isinstance(entry, dict):
                if any(KEYCRE.search(s) for s in _strings(entry)):
                    raise DvcVarsError(f"'{where}[{index}]': interpolating is not allowed in vars")
                _merge(self.data, entry, f"{where}[{index}]")
            elif isinstance(entry, str):
                if KEYCRE.search(entry):
                    raise DvcVarsError(f"'{where}[{index}]': interpolating is not allowed in vars")
                file, _, keys = entry.partition(":")
                rel = join_path(wdir, file)
                self.load_file(root, rel, [k for k in keys.split(",") if k] or None)
            else:
                raise DvcVarsError(f"'{where}[{index}]' must be a file name or a mapping")

    def select(self, expr: str) -> Any:
        """``a.b[0].c`` -> the value."""
        text = expr.strip()
        if not text:
            raise DvcVarsError("empty '${}'")
        node: Any = self.data
        for part in text.replace("[", ".").replace("]", "").split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif (isinstance(node, list) and part.lstrip("-").isdigit()
                  and -len(node) <= int(part) < len(node)):
                node = node[int(part)]
            else:
                raise DvcVarsError(f"could not find '{text}'")
        return node

    def resolve(self, value: Any, key: str) -> Any:
        """Interpolate every string in ``value`` (keys too); ``key`` is the stage field being read."""
        if isinstance(value, dict):
            return {self.resolve(k, key): self.resolve(v, key) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, key) for v in value]
        if isinstance(value, str):
            return self.resolve_str(value, key)
        return value

    def resolve_str(self, text: str, key: str) -> Any:
        matches = list(KEYCRE.finditer(text))
        if not matches:
            return text.replace("\\${", "${")
        if len(matches) == 1 and matches[0].group(0) == text:  # the value itself, typed
            value = self.select(matches[0]["inner"])
            if value is None or isinstance(value, PRIMITIVES) or key in ("foreach", "matrix"):
                return copy.deepcopy(value)
            return to_str(value, key)  # a mapping in cmd becomes flags; anything else is refused
        out, index = "", 0
        for match in matches:
            value = self.select(match["inner"])
            out += text[index:match.start()] + to_str(value, key)
            index = match.end()
        return (out + text[index:]).replace("\\${", "${")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def to_str(value: Any, key: str) -> str:
    """A value written into a longer string, as DVC writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, PRIMITIVES):
        return str(value)
    if isinstance(value, dict) and key == "cmd":
        parts: list[str] = []
        for name, item in yamlsafe.flatten_dotted(value).items():
            if isinstance(item, bool):
                parts += [f"--{name}"] if item else []
            elif isinstance(item, str):
                parts += [f"--{name}", shlex.quote(item)]
            elif isinstance(item, list):
                if any(isinstance(i, list | dict) for i in item):
                    raise DvcVarsError(f"cannot interpolate nested iterable in '{name}'")
                words = [shlex.quote(i) if isinstance(i, str) else str(i) for i in item]
                parts += [f"--{name}", *words] if words else []
            else:
                parts += [f"--{name}", str(item)]
        return " ".join(parts)
    raise DvcVarsError(f"cannot interpolate data of type '{type(value).__name__}'")


def join_path(wdir: str, rel: str) -> str:
    """``rel`` relative to the stage's working folder, as a project path (not yet normalised)."""
    return rel if wdir in ("", ".") else f"{wdir}/{rel}"
