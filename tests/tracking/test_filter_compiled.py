"""``filters.compile_filter`` (what the TUI and ``runs --filter`` run per run) agrees with the
tree-walking ``filters.matches`` on every kind of value and operator."""

from __future__ import annotations

import itertools

from workbench.tracking import filters
from workbench.tracking.records import MetricSummary, RunInfo

VALUES = [1, 0, 2.5, -3.0, float("nan"), True, False, "0.01", "adam", "", "ADAM x", None]
EXPRESSIONS = [
    "p==1", "p=1", "p!=1", "p<2", "p<=0", "p>0.01", "p>=2.5", "p==adam", "p~ada", "p!~ada", "p==true",
    "p!=nan", "p==nan", "p<nan", "params.p>0", "metrics.m<1", "tags.t==x", "t==x", "m>=0.5",
    "status==succeeded", "exit_code==0", "exit_code!=0", "name~run", "duration>5", "missing==1",
    "missing!=1", "missing!~a", "p>0 and m<1", "p>0 or not m<1", "not (p==adam or t~x) and name!~9",
    "p>'0.001'", 'p=="ADAM x"',
]


def _run(i: int, p: object, m: float | None) -> RunInfo:
    metrics = {} if m is None else {"m": MetricSummary("m", 3, m, 2, m, m)}  # type: ignore[call-arg]
    params = {} if p is None else {"p": p}
    return RunInfo(f"r{i}", f"run-{i}", ["python"], "succeeded" if i % 2 else "failed", i % 3 or None, "",
                   100.0, 100.0 + i, "local", "cli", "", None, None, None, None, None, None, "h",
                   params=params, tags={"t": "x" if i % 2 else "y"}, metrics=metrics)


def test_compiled_filter_agrees_with_matches() -> None:
    runs = [_run(i, p, m) for i, (p, m) in enumerate(itertools.product(VALUES, (None, 0.25, 0.5, 3.0)))]
    for text in EXPRESSIONS:
        node = filters.parse(text)
        test = filters.compile_filter(node)
        expected = [r.id for r in runs if filters.matches(node, r)]
        assert [r.id for r in runs if test(r)] == expected, text
        assert [r.id for r in filters.filter_runs(runs, text)] == expected, text
