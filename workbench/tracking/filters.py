"""The ``--filter`` expression language for runs, parsed by hand (never ``eval``).

    lr>0.01 and status==succeeded and loss<0.3
    params.optimizer == "adam" or (tags.team = vision and not metrics.acc < 0.9)
    name ~ baseline            (~ : contains; !~ : does not contain)

Grammar: ``expr := and ('or' and)*``, ``and := unary ('and' unary)*``,
``unary := 'not' unary | '(' expr ')' | NAME OP VALUE``, OP one of ``== = != < <= > >= ~ !~``.
A bare NAME is looked up as a run field (id, name, status, exit_code, executor, source, stage,
sweep_id, pipeline_run, parent_run, duration), then a param, then a metric (its last value), then a
tag; ``params.X``, ``metrics.X`` and ``tags.X`` say which. Numbers compare as numbers, everything
else as text; a missing value never matches (except with ``!=`` and ``!~``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.errors import UsageError
from workbench.tracking.records import RunInfo

_TOKEN = re.compile(
    r"""\s*(?:(?P<op>==|!=|<=|>=|!~|=|<|>|~)|(?P<paren>[()])|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<word>[^\s()=!<>~"']+))"""
)
RUN_FIELDS = ("id", "name", "status", "exit_code", "executor", "source", "stage", "sweep_id", "pipeline_run",
              "parent_run", "duration", "reason", "host")
MAX_LENGTH = 2000


@dataclass
class _Token:
    kind: str
    text: str


@dataclass
class Compare:
    name: str
    op: str
    value: Any


@dataclass
class BoolOp:
    op: str  # and | or | not
    items: list[Any]


Node = Compare | BoolOp


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise UsageError(f"cannot read the filter at {text[pos:pos + 20]!r}",
                             "write comparisons like lr>0.01 joined by and/or")
        pos = match.end()
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "str":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append(_Token(kind, raw))
    return tokens


def _literal(token: _Token) -> Any:
    if token.kind == "str":
        return token.text
    try:
        return float(token.text)
    except ValueError:
        return token.text


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise UsageError("the filter ends too early", "complete the comparison, e.g. loss<0.3")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self.pos += 1
            return True
        return False

    def expr(self, depth: int = 0) -> Node:
        if depth > 50:
            raise UsageError("the filter is nested too deeply")
        items = [self.conj(depth)]
        while self.keyword("or"):
            items.append(self.conj(depth))
        return items[0] if len(items) == 1 else BoolOp("or", items)

    def conj(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while self.keyword("and"):
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else BoolOp("and", items)

    def unary(self, depth: int) -> Node:
        if self.keyword("not"):
            return BoolOp("not", [self.unary(depth + 1)])
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            node = self.expr(depth + 1)
            close = self.take()
            if close.text != ")":
                raise UsageError("missing ')' in the filter")
            return node
        if token.kind != "word":
            raise UsageError(f"expected a name in the filter, got {token.text!r}")
        op = self.take()
        if op.kind != "op":
            raise UsageError(f"expected a comparison after {token.text!r}", "use == != < <= > >= ~")
        value = self.take()
        if value.kind not in ("word", "str"):
            raise UsageError(f"expected a value after {token.text}{op.text}")
        return Compare(token.text, "==" if op.text == "=" else op.text, _literal(value))


def parse(text: str) -> Node:
    """Parse a filter expression; :class:`UsageError` with a one-line reason if it is malformed."""
    if len(text) > MAX_LENGTH:
        raise UsageError("the filter is too long")
    tokens = _tokens(text)
    if not tokens:
        raise UsageError("empty filter")
    parser = _Parser(tokens)
    node = parser.expr()
    if parser.peek() is not None:
        raise UsageError(f"unexpected {parser.peek().text!r} in the filter", "join comparisons with and/or")  # type: ignore[union-attr]
    return node


def lookup(run: RunInfo, name: str) -> Any:
    """The value a filter (or ``--sort``) name refers to in a run, None when missing."""
    scope, _, rest = name.partition(".")
    if rest and scope in ("params", "param"):
        return run.params.get(rest)
    if rest and scope in ("metrics", "metric"):
        summary = run.metrics.get(rest)
        return None if summary is None else summary.last
    if rest and scope in ("tags", "tag"):
        return run.tags.get(rest)
    if name in RUN_FIELDS:
        return getattr(run, name)
    return _bare(run, name)


def _bare(run: RunInfo, name: str) -> Any:
    """A name with no scope that is not a run field: a param, else a metric, else a tag."""
    params = run.params
    if name in params:
        return params[name]
    summary = run.metrics.get(name)
    if summary is not None:
        return summary.last
    return run.tags.get(name)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if actual is None:
        return op in ("!=", "!~")
    if op in ("~", "!~"):
        found = str(wanted).lower() in str(actual).lower()
        return found if op == "~" else not found
    left, right = _number(actual), _number(wanted)
    a: Any
    b: Any
    if left is not None and right is not None:
        if math.isnan(left) or math.isnan(right):
            return op == "!=" and not (math.isnan(left) and math.isnan(right))
        a, b = left, right
    else:
        a = str(actual).lower() if isinstance(actual, bool) else str(actual)
        b = str(wanted)
    return bool(_OPS[op](a, b))


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge,
}


def matches(node: Node, run: RunInfo) -> bool:
    if isinstance(node, Compare):
        return _compare(lookup(run, node.name), node.op, node.value)
    if node.op == "and":
        return all(matches(item, run) for item in node.items)
    if node.op == "or":
        return any(matches(item, run) for item in node.items)
    return not matches(node.items[0], run)


def _getter(name: str) -> Callable[[RunInfo], Any]:
    """:func:`lookup` with the name already split: the scope is decided once, not per run."""
    scope, _, rest = name.partition(".")
    if rest and scope in ("params", "param"):
        return lambda run: run.params.get(rest)
    if rest and scope in ("metrics", "metric"):
        def metric(run: RunInfo) -> Any:
            summary = run.metrics.get(rest)
            return None if summary is None else summary.last
        return metric
    if rest and scope in ("tags", "tag"):
        return lambda run: run.tags.get(rest)
    if name in RUN_FIELDS:
        return operator.attrgetter(name)
    return lambda run: _bare(run, name)


def _tester(op: str, wanted: Any) -> Callable[[Any], bool]:
    """:func:`_compare` against one value, with the value's number and text worked out once."""
    missing = op in ("!=", "!~")
    if op in ("~", "!~"):
        needle, want = str(wanted).lower(), op == "~"

        def contains(actual: Any) -> bool:
            return missing if actual is None else (needle in str(actual).lower()) is want
        return contains
    fn, right, text = _OPS[op], _number(wanted), str(wanted)
    right_nan = right is not None and math.isnan(right)

    def test(actual: Any) -> bool:
        if actual is None:
            return missing
        if right is not None:
            kind = type(actual)
            left = float(actual) if kind is float or kind is int else _number(actual)
            if left is not None:
                if right_nan or math.isnan(left):
                    return op == "!=" and not (right_nan and math.isnan(left))
                return bool(fn(left, right))
        return bool(fn(str(actual).lower() if isinstance(actual, bool) else str(actual), text))
    return test


def compile_filter(node: Node) -> Callable[[RunInfo], bool]:
    """``matches(node, run)`` as one function of the run, built once per filter: the names,
    operators and numbers are resolved here, so testing 10,000 runs (the TUI filtering as you
    type) costs a few closure calls per run instead of walking the tree."""
    if isinstance(node, Compare):
        get, test = _getter(node.name), _tester(node.op, node.value)
        return lambda run: test(get(run))
    items = [compile_filter(item) for item in node.items]
    if node.op == "not":
        inner = items[0]
        return lambda run: not inner(run)
    if node.op == "and":
        def every(run: RunInfo) -> bool:
            for item in items:  # noqa: SIM110 - a loop, not all(<generator>): it runs per run
                if not item(run):
                    return False
            return True
        return every

    def some(run: RunInfo) -> bool:
        for item in items:  # noqa: SIM110 - a loop, not any(<generator>): it runs per run
            if item(run):
                return True
        return False
    return some


def filter_runs(runs: list[RunInfo], text: str) -> list[RunInfo]:
    test = compile_filter(parse(text))
    return [run for run in runs if test(run)]


def sort_spec(key: str) -> tuple[str, bool]:
    """``(name, descending)`` of a sort key: ``loss``, ``-loss`` or ``loss:desc`` (``:asc``)."""
    text = key.strip()
    descending = text.startswith("-")
    text = text.lstrip("-+")
    name, colon, order = text.rpartition(":")
    if colon and order.lower() in ("desc", "asc", "descending", "ascending"):
        descending = order.lower().startswith("desc")
        text = name
    if not text.strip():
        from workbench.errors import UsageError

        raise UsageError(f"empty sort key in '{key}'", "name a field, param or metric, e.g. --sort loss:desc")
    return text, descending


def sort_runs(runs: list[RunInfo], key: str, descending: bool = False) -> list[RunInfo]:
    """Sort by a field, param or metric (see :func:`sort_spec`; ``descending`` reverses the
    ascending forms too); missing values last."""
    name, reverse = sort_spec(key)
    descending = descending or reverse

    def sort_key(run: RunInfo) -> tuple[int, int, float, str]:
        value = lookup(run, name)
        number = _number(value)
        if value is None or (number is not None and math.isnan(number)):
            return (1, 0, 0.0, "")
        if number is not None and not isinstance(value, str):
            return (0, 0, -number if descending else number, "")
        return (0, 1, 0.0, str(value))

    keyed = sorted(((sort_key(run), index, run) for index, run in enumerate(runs)), key=lambda item: item[:2])
    if descending:
        # numbers are already negated; text needs reversing within its group (stable otherwise)
        numbers = [run for key, _, run in keyed if key[:2] == (0, 0)]
        text = [run for key, _, run in keyed if key[:2] == (0, 1)]
        text.reverse()
        missing = [run for key, _, run in keyed if key[0] == 1]
        return numbers + text + missing
    return [run for _, _, run in keyed]
