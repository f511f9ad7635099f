"""The layering of the workbench package, as one table, and a static checker that enforces it.

:data:`LAYERS` lists the layers from the top down. A module may import modules of its own layer
and of the layers below it, never of a layer above. Every module of the package must belong to
one layer: a new top-level module or package fails the check until it is placed here.

The checker reads the source with :mod:`ast` (nothing is imported), so it sees every ``import``:
at module level, inside functions, under ``if TYPE_CHECKING:`` and in ``try`` blocks alike. A
type-only import still ties the layers together in the reader's head and in mypy's, so it counts.

Two more rules: nothing below the interfaces (cli, ui) imports a terminal-UI library
(:data:`UI_LIBRARIES`), and the bare package root (``import workbench``, which every
``import workbench.x`` loads anyway) may be imported from anywhere.

:data:`KNOWN_VIOLATIONS` lists upward imports that exist and are being removed (none today); the
test fails when a new one appears, and when one listed has gone (delete it from the set then).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "workbench"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # -- interfaces: parse, call the facade, render ------------------------------------------
    ("cli", ("workbench", "workbench.__main__", "workbench.cli")),  # "workbench": the root package
    ("ui", ("workbench.ui",)),
    # -- the facade: builds the services and hands each its collaborators --------------------
    ("facade", ("workbench.core", "workbench.demo")),
    # -- UI-free domain packages, each above what it uses ------------------------------------
    ("monitor", ("workbench.monitor",)),  # watches deployments, retrains through runs and pipelines
    ("workflows, deploy, remote", ("workbench.workflows", "workbench.deploy", "workbench.remote")),
    ("importers", ("workbench.importers",)),  # other tools' runs in, through tracking's own writers
    ("tracking", ("workbench.tracking",)),
    ("executors", ("workbench.executors",)),  # executors know nothing of runs: never tracking
    ("versioning", ("workbench.versioning",)),
    # -- the ground floor ---------------------------------------------------------------------
    ("project", ("workbench.project",)),
    ("store", ("workbench.store",)),
    ("base", ("workbench.config", "workbench.paths", "workbench.errors", "workbench.format",
              "workbench.clock", "workbench.yamlsafe", "workbench.host")),
]

INTERFACES = frozenset({"cli", "ui"})
"""Only these layers may import :data:`UI_LIBRARIES`."""

UI_LIBRARIES = frozenset({"textual", "rich", "plotext", "textual_plotext"})

KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()
# Empty since the executors stopped importing tracking (issue 13): add a pair here only with the
# issue that removes it.
"""(importing module, imported module) pairs that break a rule today and are being removed."""


@dataclass(frozen=True, order=True)
class Violation:
    """One import that breaks a rule."""

    module: str
    line: int
    imported: str
    rule: str

    @property
    def pair(self) -> tuple[str, str]:
        return self.module, self.imported

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.rule}"


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> tuple[int, str] | None:
    """(index, name) of the layer whose entry is the longest prefix of ``module``; None if none.

    The bare root entry (``workbench``) matches only the root module itself, never its children."""
    best: tuple[int, int, str] | None = None
    for index, (name, prefixes) in enumerate(layers):
        for prefix in prefixes:
            matches = module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index, name)
    return None if best is None else (best[1], best[2])


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package in ``package_dir`` by dotted name (``pkg/__init__.py`` is ``pkg``)."""
    root = package_dir.parent
    found: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, known: set[str] | dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement in the file, wherever it stands, and
    every ``importlib.import_module`` of a literal name.

    ``from a import b`` counts as importing ``a.b`` when that is a module of the package, else ``a``;
    relative imports are resolved against ``module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else source))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))  # importlib.import_module("a.b")
    return found


def check(package_dir: Path, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> list[Violation]:
    """Every import in the package at ``package_dir`` that breaks the table, sorted."""
    modules = module_names(package_dir)
    violations: set[Violation] = set()
    for module, path in modules.items():
        own = layer_of(module, layers)
        if own is None:
            violations.add(Violation(module, 0, module, "module is not in the layer table"))
            continue
        for line, imported in imports_of(module, path, modules):
            top = imported.split(".")[0]
            if top in UI_LIBRARIES and own[1] not in INTERFACES:
                violations.add(Violation(module, line, imported,
                                         f"the {own[1]} layer never imports a terminal-UI library"))
            if top != PACKAGE or imported == PACKAGE:
                continue  # third-party, the standard library, or the root package itself
            target = layer_of(imported, layers)
            if target is None:
                violations.add(Violation(module, line, imported, "imported module is not in the layer table"))
            elif target[0] < own[0]:
                violations.add(Violation(module, line, imported,
                                         f"the {own[1]} layer may not import the {target[1]} layer above it"))
    return sorted(violations)
