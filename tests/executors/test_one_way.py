"""Executors know nothing of runs: no module of workbench/executors imports workbench.tracking, and
workbench/host (the ground floor: processes, GPUs) imports no domain package at all.

Read with ``ast``, so an import inside a function or under ``TYPE_CHECKING`` counts as much as one
at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import workbench

PACKAGE = Path(workbench.__file__).resolve().parent
DOMAIN = ("core", "store", "versioning", "tracking", "executors", "deploy", "workflows", "remote",
          "monitor", "ui", "cli")


def imported(source: str, module: str) -> set[str]:
    """Every module name ``source`` imports (relative imports resolved against ``module``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        module = "workbench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for name in sorted(imported(path.read_text(encoding="utf-8"), module)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


def test_no_executor_module_imports_tracking() -> None:
    assert violations("executors", ("workbench.tracking",)) == []


def test_the_ground_floor_imports_no_domain_package() -> None:
    assert violations("host", tuple(f"workbench.{name}" for name in DOMAIN)) == []


def test_a_planted_import_is_found_wherever_it_hides() -> None:
    planted = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from workbench.tracking.records import RunInfo\n"
        "def f():\n    import workbench.tracking.events\n"
        "from ..tracking import ingest\n"
    )
    names = imported(planted, "workbench.executors.planted")
    assert {"workbench.tracking.records", "workbench.tracking.events", "workbench.tracking.ingest"} <= names
