"""Sweep specs: lists, integer/float/log ranges, random draws, and one-line errors."""

from __future__ import annotations

import pytest

from workbench.workflows.sweep import SweepError, expand, parse_param, parse_space


def test_list_and_int_range_grid() -> None:
    space, members = expand(["python", "t.py", "--lr", "{lr}", "--depth={depth}"],
                            ["lr=0.001,0.01,0.1", "depth=3:8"])
    assert [d.name for d in space.dims] == ["lr", "depth"]
    assert len(members) == 18
    params, argv = members[0]
    assert params == {"lr": 0.001, "depth": 3}
    assert argv == ["python", "t.py", "--lr", "0.001", "--depth=3"]
    assert members[-1][1][-1] == "--depth=8"


@pytest.mark.parametrize(("spec", "values"), [
    ("d=3:8", [3, 4, 5, 6, 7, 8]),
    ("d=0:10:5", [0, 5, 10]),
    ("p=0.1:0.5:0.1", [0.1, 0.2, 0.3, 0.4, 0.5]),
    ("lr=1e-4:1e-1:log4", [0.0001, 0.001, 0.01, 0.1]),
    ("x=0:1:lin3", [0.0, 0.5, 1.0]),
    ("opt=adam", ["adam"]),
    ("b=true,false", [True, False]),
    ("m=a,b,7", ["a", "b", 7]),
])
def test_ranges(spec: str, values: list[object]) -> None:
    assert parse_param(spec).grid() == values


def test_random_draws_are_distinct_on_a_finite_space_and_seeded() -> None:
    space = parse_space(["a=1:10", "b=x,y"])
    draws = space.sample(15, seed=3)
    assert len({tuple(d.items()) for d in draws}) == 15
    assert draws == space.sample(15, seed=3)


def test_random_continuous_log_range_stays_in_bounds() -> None:
    space = parse_space(["lr=1e-5:1e-1:log", "p=0.1:0.5"])
    for member in space.sample(50, seed=1):
        assert 1e-5 <= member["lr"] <= 1e-1
        assert 0.1 <= member["p"] <= 0.5


@pytest.mark.parametrize(("specs", "command", "needle"), [
    (["lr="], ["t", "{lr}"], "no values"),
    (["lr"], ["t", "{lr}"], "expected NAME=VALUES"),
    (["=3"], ["t"], "expected NAME=VALUES"),
    (["d=8:3"], ["t", "{d}"], "empty range (8 > 3)"),
    (["d=1:x"], ["t", "{d}"], "'x' is not a number"),
    (["d=1:2:3:4"], ["t", "{d}"], "malformed range"),
    (["d=1::2"], ["t", "{d}"], "malformed range"),
    (["d=1:5:0"], ["t", "{d}"], "step must be positive"),
    (["d=1:5:-1"], ["t", "{d}"], "step must be positive"),
    (["lr=0:1:log3"], ["t", "{lr}"], "positive bounds"),
    (["lr=1,,2"], ["t", "{lr}"], "empty value"),
    (["lr=0.1:0.5"], ["t", "{lr}"], "continuous range has no grid"),
    (["lr=1,2", "lr=3"], ["t", "{lr}"], "given twice"),
    (["lr=1,2"], ["t"], "not used in the command"),
    (["lr=1,2"], ["t", "{lr}", "{depth}"], "no --param depth"),
    ([], ["t"], "at least one --param"),
    (["lr=1,2"], [], "no command"),
    (["a=1:200", "b=1:200"], ["t", "{a}", "{b}"], "more than 10000"),
])
def test_bad_specs_are_one_line_errors(specs: list[str], command: list[str], needle: str) -> None:
    with pytest.raises(SweepError) as info:
        expand(command, specs)
    assert needle in info.value.one_line()
    assert "\n" not in info.value.one_line()


def test_random_mode_allows_continuous_and_large_spaces() -> None:
    _, members = expand(["t", "{a}", "{b}"], ["a=1:200", "b=0.0:1.0"], random_n=5, seed=0)
    assert len(members) == 5
    with pytest.raises(SweepError):
        expand(["t", "{a}"], ["a=1:3"], random_n=0)
