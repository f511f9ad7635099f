"""CLI commands of the deploy group (see workbench.cli)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add this group's subcommands to the top-level parser."""
    _ = (subparsers, argparse)
