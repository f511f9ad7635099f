"""Helpers shared by the CLI command modules: opening the workspace, JSON output, Rich console."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from workbench.core.workspace import Workspace


def open_workspace() -> Workspace:
    from workbench.core.workspace import Workspace

    return Workspace.open()


def whole_number(text: str, minimum: int) -> int:
    """``text`` as an int of at least ``minimum``, or argparse's one-line error saying which."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts and limits: a whole number of at least 1."""
    return whole_number(text, 1)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def print_json(data: Any) -> None:
    # One write: json.dump to a text stream makes a write call per token (seconds for big listings).
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


