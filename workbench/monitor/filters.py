"""``--filter`` and ``--since`` for ``workbench predictions``, turned into SQL with bound values.

A filter is comparisons joined by ``and``/``or`` (``and`` binds tighter; no parentheses)::

    status == error
    latency_ms > 20 and f0 >= 5.5
    output == 2 or label != output
    request_id == 'abc' and error ~ 'features'

Names are the columns of a prediction (``status``, ``error``, ``request_id``, ``row_index``,
``revision``, ``version``, ``latency_ms``, ``ts``, ``output``, ``label``) or else a feature name. The
operators are ``== != < <= > >=`` and ``~`` (contains). Values are numbers or words, quoted when they
hold spaces. Nothing of the expression is pasted into SQL: names map to fixed column expressions
(a feature to ``features->>'$."name"'``) and values are bound parameters.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from workbench.errors import UsageError

COLUMNS = {
    "status": "p.status",
    "error": "p.error",
    "request_id": "p.request_id",
    "row_index": "p.row_index",
    "revision": "p.revision",
    "version": "p.version",
    "latency_ms": "p.latency_ms",
    "ts": "p.ts",
    "model": "p.model",
    "output": "p.output->>'$'",
    "label": "f.label->>'$'",
}
_OPS = {"==": "=", "!=": "!=", "<=": "<=", ">=": ">=", "<": "<", ">": ">", "~": "LIKE"}
_TOKEN = re.compile(
    r"""\s*(?:(?P<op>==|!=|<=|>=|<|>|~)|(?P<q>'[^']*'|"[^"]*")|(?P<word>[^\s=!<>~'"]+))"""
)
_HINT = "e.g. --filter \"status == error\" or \"f0 > 5 and output == 2\" (operators == != < <= > >= ~)"


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise UsageError(f"cannot read the filter at '{text[pos:]}'", _HINT)
        pos = match.end()
        if match.group("op"):
            found.append(("op", match.group("op")))
        elif match.group("q"):
            found.append(("value", match.group("q")[1:-1]))
        elif match.group("word"):
            found.append(("word", match.group("word")))
    return found


def _value(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _name(name: str) -> str:
    if name in COLUMNS:
        return COLUMNS[name]
    if not re.fullmatch(r"[\w.\-]+", name):
        raise UsageError(f"'{name}' is not a column or feature name", _HINT)
    return "p.features->>'$.\"" + name + "\"'"


def compile_filter(text: str) -> tuple[str, list[object]]:
    """``(sql, params)``: a condition on ``predictions p LEFT JOIN feedback f``."""
    tokens = _tokens(text)
    if not tokens:
        return "1", []
    groups: list[list[str]] = [[]]
    params: list[object] = []
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3 or tokens[i][0] != "word" or tokens[i + 1][0] != "op":
            raise UsageError(f"cannot read the filter '{text}'", _HINT)
        name, op, (kind, raw) = tokens[i][1], tokens[i + 1][1], tokens[i + 2]
        column = _name(name)
        if op == "~":
            groups[-1].append(f"{column} LIKE ?")
            params.append(f"%{raw}%")
        elif kind == "word" and raw in ("output", "label"):  # compare two columns: label != output
            groups[-1].append(f"{column} {_OPS[op]} {COLUMNS[raw]}")
        else:
            groups[-1].append(f"{column} {_OPS[op]} ?")
            params.append(_value(raw) if kind == "word" else raw)
        i += 3
        if i < len(tokens):
            joiner = tokens[i][1].lower() if tokens[i][0] == "word" else ""
            if joiner not in ("and", "or"):
                raise UsageError(f"expected 'and' or 'or' in the filter, got '{tokens[i][1]}'", _HINT)
            if joiner == "or":
                groups.append([])
            i += 1
            if i == len(tokens):
                raise UsageError(f"the filter '{text}' ends with '{joiner}'", _HINT)
    sql = " OR ".join("(" + " AND ".join(g) + ")" for g in groups)
    return sql, params


_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an age (``90s``, ``30m``, ``2h``, ``7d``) or a date/time (``2026-12-01``,
    ``2026-12-01T10:00``, local time) -> unix seconds."""
    now = time.time() if now is None else now
    match = _AGO.fullmatch(text.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(f"cannot read --since '{text}'", "give an age (30m, 2h, 7d) or a date "
                         "(2026-12-01 or 2026-12-01T10:00)") from None
