"""Bounded YAML: the one loader for every YAML file the product reads (pipelines, params files).

``yaml.safe_load`` trusts the size of what it is given: a recursive alias (``a: &a [*a]``) builds a
self-referencing value that later code recurses into forever, and an alias bomb (nine lines of
"billion laughs") composes in microseconds but expands to a billion values the moment anything
walks it (JSON encoding for a fingerprint took minutes and gigabytes). This module composes the
node graph (cheap, aliases shared) and checks it before anything is constructed:

- the text is at most :data:`MAX_BYTES`;
- no alias refers to a node that contains it (recursion);
- the document, with every alias expanded, holds at most :data:`MAX_VALUES` values;
- nesting, aliases expanded, is at most :data:`MAX_DEPTH` levels.

Any breach, and any syntax error, is the caller's one-line error class naming the file.

:func:`flatten_dotted` names the leaves of a loaded document as a params file's keys are named
(``model.depth``): DVC's params, its experiments' params, a Hydra app's composed config.
"""

from __future__ import annotations

from typing import Any

import yaml

from workbench.errors import WorkbenchError

MAX_BYTES = 16 * 1024 * 1024
"""Largest YAML text accepted."""
MAX_VALUES = 1_000_000
"""Most scalars, sequences and mappings in a document once its aliases are expanded."""
MAX_DEPTH = 100
"""Deepest nesting of sequences and mappings, aliases expanded."""


def _fail(error: type[WorkbenchError], file: str, problem: str, hint: str) -> WorkbenchError:
    return error(f"{file}: {problem}", hint)


def check_size(text: str, file: str, error: type[WorkbenchError]) -> None:
    """Refuse a text over :data:`MAX_BYTES` (counted in characters, which is never more)."""
    if len(text) > MAX_BYTES:
        raise _fail(error, file, f"YAML file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                    "keep data out of pipeline and params files")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_graph(root: yaml.Node, file: str, error: type[WorkbenchError]) -> None:
    """Refuse recursion, expansion past :data:`MAX_VALUES` and nesting past :data:`MAX_DEPTH`.

    An iterative walk (no Python recursion, whatever the input) that visits each distinct node
    once and adds up the expanded size and height of shared (aliased) nodes from memory.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            open_.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            if size[key] > MAX_VALUES:
                raise _fail(error, file, f"aliases expand to more than {MAX_VALUES:,} values "
                            f"(line {node.start_mark.line + 1})",
                            "an alias bomb? write the values out instead of nesting aliases")
            continue
        if key in open_:
            raise _fail(error, file, f"recursive alias at line {node.start_mark.line + 1}: "
                        "a value that contains itself", "write the value out instead of referring to itself")
        if key in size:
            if depth - 1 + height[key] > MAX_DEPTH:
                raise _fail(error, file, f"nested deeper than {MAX_DEPTH} levels (aliases expanded)",
                            "flatten the structure")
            continue
        if depth > MAX_DEPTH:
            raise _fail(error, file, f"nested deeper than {MAX_DEPTH} levels "
                        f"(line {node.start_mark.line + 1})", "flatten the structure")
        open_.add(key)
        stack.append((node, depth, True))
        stack.extend((kid, depth + 1, False) for kid in reversed(_children(node)))  # document order


def compose(text: str, file: str, error: type[WorkbenchError]) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    """The checked node graph of a one-document YAML text and the loader that can construct it.

    The caller disposes of the loader. Syntax errors are ``error`` with the line and column.
    """
    check_size(text, file, error)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        loader.dispose()
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise error(f"{file}{where}: malformed YAML: {problem}", "fix the syntax") from None
    except yaml.YAMLError as exc:
        loader.dispose()
        raise _fail(error, file, f"malformed YAML: {str(exc).splitlines()[0]}", "fix the syntax") from None
    except RecursionError:
        loader.dispose()
        raise _fail(error, file, "nested too deeply to read", "flatten the structure") from None
    if root is not None:
        try:
            check_graph(root, file, error)
        except WorkbenchError:
            loader.dispose()
            raise
    return root, loader


def load(text: str, file: str, error: type[WorkbenchError]) -> Any:
    """``yaml.safe_load`` within the limits above; ``None`` for an empty document."""
    root, loader = compose(text, file, error)
    try:
        if root is None:
            return None
        try:
            return loader.construct_document(root)
        except yaml.YAMLError as exc:  # a bad tag or timestamp, an unhashable key
            raise _fail(error, file, f"malformed YAML: {str(exc).splitlines()[0]}",
                        "fix the syntax") from None
    finally:
        loader.dispose()


def flatten_dotted(data: Any, prefix: str = "") -> dict[str, Any]:
    """The leaves of nested dicts under dotted names (``{"model": {"depth": 3}}``: ``model.depth``);
    a list or any other value is one leaf; a value that is no dict is the leaf ``prefix``."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten_dotted(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
