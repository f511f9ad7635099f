"""Filters, sorting, downsampled series, the model registry and id resolution."""

from __future__ import annotations

import math
import time

import pytest

from workbench.core.workspace import Workspace
from workbench.errors import AmbiguousIdError, UnknownIdError, UsageError
from workbench.tracking import filters, registry
from workbench.tracking.ids import new_run_id
from workbench.tracking.ingest import Ingester
from workbench.tracking.metrics import metric_series
from workbench.tracking.records import create_run, end_run, resolve


def _run(ws: Workspace, run_id: str, params: dict[str, object], metrics: dict[str, float],
         status: str = "succeeded", name: str = "") -> None:
    create_run(ws.db, run_id, name=name, command=["python", "t.py"])
    ing = Ingester(ws.db, run_id, ws.root)
    for k, v in params.items():
        ing.add_param(k, v, "argv")
    for k, v in metrics.items():
        ing.add_points(k, [0], [v], [0.0])
    ing.flush()
    end_run(ws.db, run_id, status=status, exit_code=0 if status == "succeeded" else 1)


@pytest.fixture
def three_runs(ws: Workspace) -> Workspace:
    _run(ws, "aaa1", {"lr": 0.1, "opt": "adam"}, {"loss": 0.2, "acc": 0.9}, name="base")
    _run(ws, "aab2", {"lr": 0.001, "opt": "sgd"}, {"loss": 0.5}, status="failed")
    _run(ws, "bbb3", {"lr": 0.05, "opt": "adam"}, {"loss": math.nan})
    return ws


def test_filter_expressions(three_runs: Workspace) -> None:
    ids = lambda expr: sorted(r.id for r in three_runs.runs.list(filter_expr=expr))  # noqa: E731
    assert ids("lr>0.01 and status==succeeded and loss<0.3") == ["aaa1"]
    assert ids("opt == 'adam'") == ["aaa1", "bbb3"]
    assert ids("params.lr <= 0.05 or metrics.acc >= 0.9") == ["aaa1", "aab2", "bbb3"]
    assert ids("not (status = failed)") == ["aaa1", "bbb3"]
    assert ids("acc > 0") == ["aaa1"]  # missing metric never matches
    assert ids("name ~ bas") == ["aaa1"]
    assert ids("loss < 1") == ["aaa1", "aab2"]  # NaN compares false


@pytest.mark.parametrize("bad", ["lr >", "lr > 1 and", "(lr > 1", "lr 1", "__import__('os')", "", "a > 1 b"])
def test_bad_filters_are_one_line_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        filters.parse(bad)


def test_sort_and_limit(three_runs: Workspace) -> None:
    assert [r.id for r in three_runs.runs.list(sort="lr")] == ["aab2", "bbb3", "aaa1"]
    assert [r.id for r in three_runs.runs.list(sort="-lr", limit=2)] == ["aaa1", "bbb3"]
    assert [r.id for r in three_runs.runs.list(sort="loss")][-1] == "bbb3"  # NaN last


def test_resolve_prefix_name_latest(three_runs: Workspace) -> None:
    db = three_runs.db
    assert resolve(db, "bb") == "bbb3"
    assert resolve(db, "base") == "aaa1"
    with pytest.raises(AmbiguousIdError):
        resolve(db, "aa")
    with pytest.raises(UnknownIdError):
        resolve(db, "zzz")
    assert resolve(db, "latest") == "bbb3" and resolve(db, "latest~2") == "aaa1"


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_run_id(1_700_000_000 + i) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50 and all(len(i) == 14 for i in ids)
    burst = [new_run_id() for _ in range(100_000)]  # many in one millisecond: counted up, never equal
    assert len(set(burst)) == len(burst) and burst == sorted(burst)


def test_run_ids_from_parallel_processes_do_not_collide() -> None:
    import subprocess
    import sys

    code = "from workbench.tracking.ids import new_run_id as n; print('\\n'.join(n() for _ in range(20000)))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    ids = [i for p in procs for i in p.communicate(timeout=120)[0].split()]
    assert len(ids) == 80_000 and len(set(ids)) == 80_000


def test_downsampled_series_keeps_min_max_last(ws: Workspace) -> None:
    create_run(ws.db, "m1", name="", command=["x"])
    ing = Ingester(ws.db, "m1", ws.root)
    values = [math.sin(i / 50) for i in range(10_000)]
    values[5_000] = 50.0
    ing.add_points("wave", list(range(10_000)), values, [float(i) for i in range(10_000)])
    ing.flush()
    full = metric_series(ws.db, "m1", "wave")
    assert full.total == 10_000 and len(full.values) == 10_000 and not full.downsampled
    small = metric_series(ws.db, "m1", "wave", max_points=100)
    assert small.downsampled and len(small.steps) == 100
    assert max(small.maxs) == 50.0
    assert small.steps[-1] == 9_999 and small.values[-1] == values[-1]
    assert min(small.mins) == pytest.approx(min(values))
    plan = " ".join(str(tuple(r)) for r in ws.db.execute(
        "EXPLAIN QUERY PLAN SELECT first_step, count, data FROM metric_chunks WHERE key_id = 1"
        " AND last_step >= 0 AND first_step <= 9999 ORDER BY first_step"))
    assert "USING PRIMARY KEY" in plan and "SCAN" not in plan.replace("SEARCH", "")


def test_registry_versions_aliases_and_specs(ws: Workspace, tmp_path: pytest.TempPathFactory) -> None:
    db = ws.db
    v1 = registry.register_version(db, name="digits", run_id=None, path="m.joblib", hash="h1", size=1)
    same = registry.register_version(db, name="digits", run_id=None, path="m.joblib", hash="h1", size=1)
    v2 = registry.register_version(db, name="digits", run_id=None, path="m.joblib", hash="h2", size=2,
                                   framework="sklearn", framework_version="1.9.1")
    assert (v1.version, same.version, v2.version) == (1, 1, 2)
    registry.set_alias(db, "digits", 1, "production")
    assert registry.get_version(db, "digits@production").hash == "h1"
    assert registry.get_version(db, "digits").version == 2
    assert registry.get_version(db, "digits:2").framework_version == "1.9.1"
    registry.set_alias(db, "digits", 2, "production")  # aliases move
    assert registry.get_version(db, "digits@production").version == 2
    (info,) = registry.list_models(db)
    assert info.latest_version == 2 and info.aliases == {"production": 2}
    with pytest.raises(UnknownIdError):
        registry.get_version(db, "digits:9")
    with pytest.raises(UnknownIdError):
        registry.get_version(db, "digits@staging")
    with pytest.raises(UsageError):
        registry.set_alias(db, "digits", 1, "7")
    with pytest.raises(UsageError):
        registry.register_version(db, name="../evil", run_id=None, path="x", hash="h", size=0)


def test_framework_detected_from_pickle_without_unpickling(tmp_path: pytest.TempPathFactory) -> None:
    import joblib
    import sklearn
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "clf.joblib"  # type: ignore[operator]
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), path)
    framework, version = registry.detect_framework(path, {"scikit-learn": "9.9"})
    assert (framework, version) == ("sklearn", sklearn.__version__)  # the pickle states its version
    assert registry.model_name_for("models/best model.pt") == "best-model"
    assert registry.detect_framework(tmp_path / "x.onnx")[0] == "onnx"  # type: ignore[operator]


def test_list_ten_thousand_runs_quickly(ws: Workspace) -> None:
    rows = [(f"r{i:05d}", "[]", time.time() + i) for i in range(10_000)]
    with ws.atomic() as db:
        db.executemany(
            "INSERT INTO runs (id, command, status, started_at) VALUES (?, ?, 'succeeded', ?)", rows
        )
        db.executemany("INSERT INTO run_params VALUES (?, 'lr', '0.1', 'argv')", [(r[0],) for r in rows])
    # CPU time of this process, not wall-clock time: other load on the machine does not count.
    start = time.process_time()
    runs = ws.runs.list(filter_expr="lr > 0.01", limit=50)
    assert len(runs) == 50 and time.process_time() - start < 2.0
