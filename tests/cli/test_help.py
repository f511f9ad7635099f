"""Every subcommand has help text, and bad usage is one line with exit status 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.conftest import run_workbench
from workbench.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    top = _subparsers(parser)
    helps = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
    assert top, "no subcommands registered"
    missing = [name for name in top if not helps.get(name)]
    assert not missing, f"subcommands without help: {missing}"
    for name, sub in top.items():
        nested = _subparsers(sub)
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                bare = [a.dest for a in action._choices_actions if not a.help]
                assert not bare, f"'{name}' subcommands without help: {bare}"
        assert nested is not None


def test_unknown_command_is_one_line(tmp_path: Path) -> None:
    result = run_workbench(tmp_path, "no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_outside_project_is_one_line(tmp_path: Path) -> None:
    result = run_workbench(tmp_path, "-C", str(tmp_path), "init", "--json")
    assert result.returncode == 0


def test_command_table_matches_modules() -> None:
    """COMMAND_TO_MODULE (the lazy-import table) names exactly what each module registers."""
    import importlib

    from workbench.cli import COMMAND_MODULES, COMMAND_TO_MODULE

    registered: dict[str, str] = {}
    for module_name in COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module_name).register(sub)
        registered.update(dict.fromkeys(sub.choices, module_name))
    assert registered == {k: v for k, v in COMMAND_TO_MODULE.items() if k in registered}
    missing = set(registered) - set(COMMAND_TO_MODULE)
    assert not missing


def test_one_command_imports_one_command_module(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from workbench.cli import main; main(['-C', sys.argv[1], 'init', '--json']);"
        "print(' '.join(m for m in sys.modules if m.startswith('workbench.cli.cmd_')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "workbench.cli.cmd_store"
