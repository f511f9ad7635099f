"""Sweeps: parse ``--param`` specs into a search space, expand it, and run the members.

Spec grammar (one ``--param`` each)::

    lr=0.001,0.01,0.1      a list of values (numbers are typed; anything else is a string)
    depth=3:8              integers 3, 4, 5, 6, 7, 8 (both ends included)
    dropout=0.1:0.5:0.1    start:stop:step, stop included when the steps land on it
    lr=1e-4:1e-1:log4      4 points spaced evenly on a log scale (lin5: 5 evenly spaced)
    lr=1e-4:1e-1:log       random mode only: sampled log-uniformly (0.1:0.5 floats: uniformly)
    seed=7                 a single value

The grid is the cartesian product; ``--random N`` draws N members instead (distinct ones when the
space is finite and big enough). The command is an argv template: ``{lr}`` inside any argument is
replaced by the member's value, without ever building a shell string.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.workflows.spec import IDENT_RE, render_command, template_names

MAX_GRID = 10_000
_COUNT_RE = re.compile(r"^(log|lin)(\d+)?$")


class SweepError(WorkbenchError):
    """A sweep that cannot be expanded: a malformed or empty range, an unused or unknown param."""


def parse_scalar(text: str) -> Any:
    """'3' -> 3, '0.1' -> 0.1, 'true' -> True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _tidy(x: float) -> float:
    """Round away float noise (0.30000000000000004 -> 0.3)."""
    return float(f"{x:.12g}")


@dataclass
class Dimension:
    """One parameter of the space: finite values, or a continuous range for random draws."""

    name: str
    spec: str
    values: list[Any] | None = None
    low: float = 0.0
    high: float = 0.0
    scale: str = "lin"  # lin | log | int
    discrete: bool = field(init=False)

    def __post_init__(self) -> None:
        self.discrete = self.values is not None

    def grid(self) -> list[Any]:
        if self.values is None:
            raise SweepError(f"--param {self.spec}: a continuous range has no grid",
                             f"give a count ({self.name}={_fmt(self.low)}:{_fmt(self.high)}:"
                             f"{self.scale}5) or use --random N")
        return self.values

    def sample(self, rng: random.Random) -> Any:
        if self.values is not None:
            return rng.choice(self.values)
        if self.scale == "log":
            return _tidy(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return _tidy(rng.uniform(self.low, self.high))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _number(text: str, spec: str) -> float | int:
    value = parse_scalar(text.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SweepError(f"--param {spec}: '{text}' is not a number",
                         "ranges look like 3:8, 0.1:0.5:0.1 or 1e-4:1e-1:log4")
    return value


def parse_param(spec: str) -> Dimension:
    """One ``--param NAME=VALUES`` spec; :class:`SweepError` with a one-line reason otherwise."""
    name, sep, body = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SweepError(f"--param {spec!r}: expected NAME=VALUES", "for example --param lr=0.01,0.1")
    if not IDENT_RE.match(name):
        raise SweepError(f"--param {spec!r}: '{name}' is not a valid name", "use letters, digits, _ . -")
    body = body.strip()
    if not body:
        raise SweepError(f"--param {spec}: no values", "for example lr=0.01,0.1 or depth=3:8")
    if "," in body:
        items = [item.strip() for item in body.split(",")]
        if any(not item for item in items):
            raise SweepError(f"--param {spec}: empty value in the list", "remove the extra comma")
        return Dimension(name, spec, values=[parse_scalar(item) for item in items])
    if ":" not in body:
        return Dimension(name, spec, values=[parse_scalar(body)])
    parts = body.split(":")
    if len(parts) > 3 or any(not p.strip() for p in parts):
        raise SweepError(f"--param {spec}: malformed range", "use START:STOP, START:STOP:STEP or "
                         "START:STOP:log4 / lin4")
    low, high = _number(parts[0], spec), _number(parts[1], spec)
    if low > high:
        raise SweepError(f"--param {spec}: empty range ({_fmt(low)} > {_fmt(high)})",
                         "write the smaller bound first")
    if len(parts) == 2:
        if isinstance(low, int) and isinstance(high, int):
            return Dimension(name, spec, values=list(range(low, high + 1)), low=low, high=high, scale="int")
        return Dimension(name, spec, low=float(low), high=float(high), scale="lin")
    third = parts[2].strip()
    counted = _COUNT_RE.match(third)
    if counted:
        scale, count_text = counted.group(1), counted.group(2)
        if scale == "log" and low <= 0:
            raise SweepError(f"--param {spec}: a log range needs positive bounds")
        if count_text is None:
            return Dimension(name, spec, low=float(low), high=float(high), scale=scale)
        count = int(count_text)
        if count < 1:
            raise SweepError(f"--param {spec}: the count must be at least 1")
        if count == 1 or low == high:
            return Dimension(name, spec, values=[low], low=low, high=high, scale=scale)
        if scale == "log":
            a, b = math.log10(low), math.log10(high)
            values = [_tidy(10 ** (a + (b - a) * i / (count - 1))) for i in range(count)]
        else:
            values = [_tidy(low + (high - low) * i / (count - 1)) for i in range(count)]
        return Dimension(name, spec, values=values, low=low, high=high, scale=scale)
    step = _number(third, spec)
    if step <= 0:
        raise SweepError(f"--param {spec}: the step must be positive")
    n = math.floor((high - low) / step + 1e-9) + 1
    if n > MAX_GRID:
        raise SweepError(f"--param {spec}: {n} values is too many", f"at most {MAX_GRID}")
    if all(isinstance(v, int) for v in (low, high, step)):
        return Dimension(name, spec, values=[int(low + i * step) for i in range(n)], low=low, high=high)
    return Dimension(name, spec, values=[_tidy(low + i * step) for i in range(n)], low=low, high=high)


@dataclass
class Space:
    """A parsed search space: dimensions in the order given."""

    dims: list[Dimension]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def grid_size(self) -> int | None:
        """Number of grid points, or None if a dimension is continuous."""
        if not all(d.discrete for d in self.dims):
            return None
        return math.prod(len(d.grid()) for d in self.dims)

    def grid(self) -> list[dict[str, Any]]:
        size = math.prod(len(d.grid()) for d in self.dims)
        if size > MAX_GRID:
            raise SweepError(f"the grid has {size} members, more than {MAX_GRID}",
                             "narrow the ranges or use --random N")
        return [dict(zip(self.names, combo, strict=True))
                for combo in itertools.product(*(d.grid() for d in self.dims))]

    def sample(self, n: int, seed: int | None = None) -> list[dict[str, Any]]:
        if n < 1:
            raise SweepError("--random needs a count of at least 1")
        rng = random.Random(seed)
        size = self.grid_size()
        if size is not None and n <= size and size <= MAX_GRID:
            return rng.sample(self.grid(), n)
        return [{d.name: d.sample(rng) for d in self.dims} for _ in range(n)]


def parse_space(specs: list[str]) -> Space:
    if not specs:
        raise SweepError("a sweep needs at least one --param", "for example --param lr=0.01,0.1")
    dims = [parse_param(spec) for spec in specs]
    seen: set[str] = set()
    for d in dims:
        if d.name in seen:
            raise SweepError(f"--param {d.name} given twice", "put all its values in one --param")
        seen.add(d.name)
    return Space(dims)


def check_template(command: list[str], space: Space) -> None:
    """Every param must appear as {name} in the command, and every {name} must be a param."""
    if not command:
        raise SweepError("no command to sweep", "put it after --, e.g. -- python train.py --lr {lr}")
    used = {name for arg in command for name in template_names(arg) if IDENT_RE.match(name)}
    unknown = sorted(used - set(space.names))
    if unknown:
        raise SweepError(f"the command uses {{{unknown[0]}}} but no --param {unknown[0]} was given",
                         "add the --param or write {{ }} for literal braces")
    unused = [n for n in space.names if n not in used]
    if unused:
        raise SweepError(f"--param {unused[0]} is not used in the command",
                         f"add {{{unused[0]}}} where the command takes it, e.g. --{unused[0]} "
                         f"{{{unused[0]}}}")


def expand(command: list[str], specs: list[str], *, random_n: int | None = None,
           seed: int | None = None) -> tuple[Space, list[tuple[dict[str, Any], list[str]]]]:
    """The space and each member's params with its rendered argv."""
    space = parse_space(specs)
    check_template(command, space)
    members = space.sample(random_n, seed) if random_n is not None else space.grid()
    return space, [(params, render_command(command, params)) for params in members]
