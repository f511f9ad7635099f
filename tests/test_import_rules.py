"""The import-rule table of tests/import_rules.py holds for the real tree, and the checker bites."""

from __future__ import annotations

from pathlib import Path

import pytest

import workbench
from tests.import_rules import KNOWN_VIOLATIONS, LAYERS, Violation, check, layer_of

PACKAGE_DIR = Path(workbench.__file__).resolve().parent
DOMAIN = ("workflows", "deploy", "remote", "tracking", "executors", "versioning", "store")


@pytest.fixture(scope="module")
def violations() -> list[Violation]:
    return check(PACKAGE_DIR)


def test_the_tree_follows_the_table(violations: list[Violation]) -> None:
    new = [str(v) for v in violations if v.pair not in KNOWN_VIOLATIONS]
    assert not new, "imports that break tests/import_rules.py:\n" + "\n".join(new)


def test_known_violations_still_exist(violations: list[Violation]) -> None:
    """A listed violation that has been fixed must leave the set, so that the set only shrinks."""
    gone = KNOWN_VIOLATIONS - {v.pair for v in violations}
    assert not gone, f"fixed, delete from KNOWN_VIOLATIONS: {sorted(gone)}"


def test_known_violations_are_gone() -> None:
    """The executors no longer import tracking: nothing breaks the table."""
    assert not KNOWN_VIOLATIONS


def test_known_violations_are_only_executors_importing_tracking() -> None:
    for module, imported in KNOWN_VIOLATIONS:
        assert module.startswith("workbench.executors.") and imported.startswith("workbench.tracking.")


def test_no_domain_module_imports_a_terminal_ui_library(violations: list[Violation]) -> None:
    ui = [str(v) for v in violations if "terminal-UI" in v.rule]
    assert not ui, "\n".join(ui)


def test_no_domain_module_imports_the_facade_or_the_interfaces(violations: list[Violation]) -> None:
    above = ("workbench.core", "workbench.cli", "workbench.ui", "workbench.demo")
    found = [str(v) for v in violations
             if v.module.split(".")[1] in DOMAIN and v.imported.startswith(above)]
    assert not found, "\n".join(found)


def test_every_module_has_a_layer() -> None:
    names = [layer for layer, _ in LAYERS]
    assert len(names) == len(set(names))
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        assert layer_of(name) is not None, name


def _plant(root: Path, files: dict[str, str]) -> Path:
    """A fake ``workbench`` package under ``root`` with the given module sources."""
    package = root / "workbench"
    for rel, source in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return package


CLEAN = {
    "core/workspace.py": "from workbench.versioning.service import VersioningService\n",
    "versioning/service.py": "from workbench.project import Project\nfrom . import trees\n",
    "versioning/trees.py": "import hashlib\n",
    "project.py": "from workbench.store.db import connect\nimport workbench\n",
    "store/db.py": "import sqlite3\nfrom workbench.errors import WorkbenchError\n",
    "errors.py": "",
    "ui/app.py": "import textual\nfrom workbench.core.workspace import Workspace\n",
    "cli/__init__.py": "from workbench.ui import app\n",
}


def test_the_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    assert check(_plant(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(("rel", "source", "imported", "rule"), [
    ("versioning/bad.py", "from workbench.core.workspace import Workspace\n",
     "workbench.core.workspace", "versioning layer may not import the facade layer"),
    ("tracking/bad.py",
     "from typing import TYPE_CHECKING\n"
     "if TYPE_CHECKING:\n    from workbench.core.workspace import Workspace\n",
     "workbench.core.workspace", "tracking layer may not import the facade layer"),
    ("deploy/bad.py", "def later():\n    import workbench.cli.common\n",
     "workbench.cli.common", "may not import the cli layer"),
    ("executors/bad.py", "from workbench.tracking import events\n",  # not a module here: the package
     "workbench.tracking", "executors layer may not import the tracking layer"),
    ("store/bad.py", "from ..versioning import service\n",
     "workbench.versioning.service", "store layer may not import the versioning layer"),
    ("remote/bad.py", "from rich.console import Console\n",
     "rich.console", "never imports a terminal-UI library"),
    ("versioning/plot.py", "try:\n    import plotext\nexcept ImportError:\n    pass\n",
     "plotext", "never imports a terminal-UI library"),
    ("ui/bad.py", "from workbench import cli\n", "workbench.cli", "ui layer may not import the cli layer"),
    ("tracking/lazy.py", "import importlib\nimportlib.import_module('workbench.deploy.service')\n",
     "workbench.deploy.service", "tracking layer may not import the workflows, deploy, remote layer"),
    ("newthing.py", "", "workbench.newthing", "not in the layer table"),
])
def test_the_checker_finds_a_planted_violation(tmp_path: Path, rel: str, source: str, imported: str,
                                               rule: str) -> None:
    found = check(_plant(tmp_path, {**CLEAN, rel: source}))
    assert len(found) == 1, found
    assert found[0].imported == imported
    assert rule in found[0].rule
    assert found[0].module == "workbench." + rel.removesuffix(".py").replace("/", ".")
