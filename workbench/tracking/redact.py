"""Redaction: secret-looking values are stored as ``***``, in params and in the recorded command.

Applied where runs are recorded, so every source goes through it: :func:`redact_command` in
``records.create_run`` (``workbench run``, a script's own run) and :func:`redact_param` in
``Ingester.add_param`` (flags, ``log_param``, argparse capture, workflow and sweep params).
The command that runs is never altered; only what is stored. ``rerun`` refuses a command with
redacted values (:func:`redacted_names`) instead of running it with ``***``.

A name is secret when it contains ``password``, ``passwd``, ``secret``, ``credential``, ``api-key``
(``api_key``, ``apikey``), ``access-key``, ``private-key``, or the word ``token`` or ``auth``
(``--hf-token``, ``GITHUB_TOKEN``, ``--auth``; not ``--max-tokens``, ``--tokenizer``, ``--author``);
case, ``_``, ``.`` and camelCase do not matter. Long flags only (``--x=v``, ``--x v``, ``-x v`` with
a name of two letters or more), ``NAME=value`` words (``env AWS_SECRET_ACCESS_KEY=... cmd``, Hydra
overrides) and the same inside shell strings (``sh -c "..."``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

MASK = "***"
_SUBSTRINGS = ("password", "passwd", "secret", "credential", "api-key", "apikey", "access-key",
               "private-key")
_WORDS = re.compile(r"(?:^|-)(?:token|auth)(?:-|$)")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_FLAG = re.compile(r"^(--?)([A-Za-z][\w.\-]+)$")
_FLAG_VALUE = re.compile(r"^(--?)([A-Za-z][\w.\-]+)=(.*)$", re.DOTALL)
_ASSIGN = re.compile(r"^([+~]{0,2}[A-Za-z_][\w.\-]*)=(.*)$", re.DOTALL)
_VALUE = r"(\"[^\"]*\"|'[^']*'|[^\s'\";&|<>()]+)"
_IN_SHELL_FLAG = re.compile(r"(?<![\w\-])(--?)([A-Za-z][\w.\-]+)(=|[ \t]+)" + _VALUE)
_IN_SHELL_ASSIGN = re.compile(r"(?<![\w.\-])([A-Za-z_][\w.\-]*)=" + _VALUE)
_MASKED_IN_SHELL = re.compile(r"(--?[A-Za-z][\w.\-]+|[A-Za-z_][\w.\-]*)(?:=|[ \t]+)\*\*\*")


def secret_name(name: str) -> bool:
    """Whether a flag, param or variable name says its value is a secret."""
    words = _CAMEL.sub("-", name.lstrip("-+~")).lower().replace("_", "-").replace(".", "-")
    if words.startswith("no-"):
        return False  # --no-auth is a switch: the word after it is not its value
    return any(s in words for s in _SUBSTRINGS) or _WORDS.search(words) is not None


def redact_param(key: str, value: Any) -> Any:
    """``value``, or :data:`MASK` when ``key`` names a secret (switches and empty values are kept)."""
    if value is None or isinstance(value, bool) or value == "" or not secret_name(key):
        return value
    return MASK


def _redact_shell(text: str) -> str:
    def flag(m: re.Match[str]) -> str:
        if not secret_name(m.group(2)) or m.group(4).startswith(("-", "$")):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}"

    def assign(m: re.Match[str]) -> str:
        if not secret_name(m.group(1)) or m.group(2).startswith("$"):
            return m.group(0)  # a reference to a variable is not the secret
        return f"{m.group(1)}={MASK}"

    return _IN_SHELL_ASSIGN.sub(assign, _IN_SHELL_FLAG.sub(flag, text))


def redact_command(argv: Sequence[str]) -> list[str]:
    """The command as it may be stored and shown: secret values replaced by :data:`MASK`."""
    out: list[str] = []
    mask_next = False
    previous = ""
    for arg in argv:
        shell, previous = previous == "-c", arg
        if shell:  # sh -c "...", python -c "...": a script of its own
            out.append(_redact_shell(arg))
            continue
        if mask_next:
            mask_next = False
            if not arg.startswith("-"):
                out.append(MASK)
                continue
        flag_value = _FLAG_VALUE.match(arg)
        if flag_value:
            prefix, name, value = flag_value.groups()
            out.append(f"{prefix}{name}={MASK}" if secret_name(name) and value else arg)
            continue
        flag = _FLAG.match(arg)
        if flag:
            mask_next = secret_name(flag.group(2))
            out.append(arg)
            continue
        assign = _ASSIGN.match(arg)
        if assign and secret_name(assign.group(1)) and assign.group(2):
            out.append(f"{assign.group(1)}={MASK}")  # the whole word is the value, spaces and all
            continue
        out.append(_redact_shell(arg) if any(c.isspace() for c in arg) else arg)
    return out


def redacted_names(argv: Sequence[str]) -> list[str]:
    """The flags and variables whose values a stored command lost to redaction, in order."""
    names: list[str] = []
    previous = ""
    for arg in argv:
        if arg == MASK and previous.startswith("-"):
            names.append(previous)
        elif arg.endswith("=" + MASK):
            names.append(arg[: -len(MASK) - 1])
        elif MASK in arg:
            names.extend(m.group(1) for m in _MASKED_IN_SHELL.finditer(arg))
        previous = arg
    return list(dict.fromkeys(names))
