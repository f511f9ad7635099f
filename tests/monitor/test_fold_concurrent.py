"""Stored means folded, exactly once: ingest folds what it stored (a large backlog in a second
process), two folders at once count each row once, and a re-baseline racing a fold wins."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workbench.core.workspace import Workspace
from workbench.deploy.capture import spool_line
from workbench.monitor import windows
from workbench.monitor.foldworker import FoldWorker
from workbench.monitor.profile import build_profile

FEATURES = 5
ROOT = Path(__file__).resolve().parents[2]


def _profile(ws: Workspace, shift: float = 0.0) -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(2000, FEATURES)) + shift
    table: dict[str, list[Any]] = {f"f{i}": reference[:, i].tolist() for i in range(FEATURES)}
    table["prediction"] = (reference[:, 0] > 0).astype(int).tolist()
    ws.monitor.save_profile("m", 1, "test", build_profile(table))


def _lines(start: int, count: int) -> str:
    rng = np.random.default_rng(start)
    values = rng.normal(size=(count, FEATURES))
    out = []
    for n in range(count):
        i = start + n
        head = {"deployment": "svc", "revision": 1, "model": "m", "version": "1", "request_id": f"q{i}",
                "row_index": 0, "ts": 1.7e9 + i * 0.05, "latency_ms": 1.0,
                "status": "ok" if i % 53 else "error", "error": "" if i % 53 else "expects 5 features, got 4"}
        features = {f"f{k}": round(float(values[n, k]), 6) for k in range(FEATURES)}
        out.append(spool_line(head, features, int(values[n, 0] > 0)) + "\n")
    return "".join(out)


def _spool(ws: Workspace, text: str, name: str = "r1-0.jsonl") -> None:
    folder = ws.paths.monitor_spool / "svc"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a", encoding="utf-8") as handle:
        handle.write(text)


def _store_unfolded(ws: Workspace, count: int) -> None:
    """``count`` rows stored the way ingest stores them, without the fold ingest does after."""
    from workbench.monitor.ingest import IngestReport, bulk_cache, ingest_file

    _spool(ws, _lines(0, count))
    path = ws.paths.monitor_spool / "svc" / "r1-0.jsonl"
    with bulk_cache(ws.db):
        ingest_file(ws.db, ws.atomic, path, path.relative_to(ws.paths.store_dir).as_posix(), "svc",
                    IngestReport(), now=0.0)


def _baseline_elsewhere(ws: Workspace, shift: float = 0.0) -> None:
    """Another Workbench process saves a (new) baseline for ``m:1``."""
    other = Workspace.open(ws.root)
    _profile(other, shift=shift)
    other.close()


def _buckets(ws: Workspace) -> list[tuple[Any, ...]]:
    return ws.db.execute("SELECT deployment, model, version, seq, minute, id_min, id_max, rows, errors,"
                         " counts, reasons FROM monitor_buckets ORDER BY seq").fetchall()


def _from_scratch(ws: Workspace) -> list[tuple[Any, ...]]:
    """The buckets one plain fold gives over everything stored."""
    with ws.atomic() as db:
        db.execute("DELETE FROM monitor_buckets")
        db.execute("DELETE FROM monitor_cursors")
    windows.fold(ws.db, "svc")
    return _buckets(ws)


def _stored(ws: Workspace) -> int:
    return int(ws.db.execute("SELECT COUNT(*) FROM predictions WHERE deployment = 'svc'").fetchone()[0])


def test_ingest_folds_what_it_stores(ws: Workspace) -> None:
    _profile(ws)
    _spool(ws, _lines(0, 3000))
    assert ws.predictions.ingest("svc").added == 3000
    folded = _buckets(ws)
    assert sum(b[7] + b[8] for b in folded) == 3000  # every stored row is in a bucket, once
    cursor = ws.db.execute("SELECT last_id FROM monitor_cursors WHERE deployment = 'svc'").fetchone()[0]
    assert cursor == ws.db.execute("SELECT MAX(id) FROM predictions").fetchone()[0]
    _spool(ws, _lines(3000, 700))
    ws.predictions.ingest("svc")
    assert sum(b[7] + b[8] for b in _buckets(ws)) == 3700
    assert _buckets(ws) == _from_scratch(ws)  # folding as it arrived = folding it all at once


def test_a_large_backlog_is_folded_by_a_second_process(ws: Workspace,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _profile(ws)
    for part in range(4):
        _spool(ws, _lines(part * 5000, 5000), name=f"r1-{part}.jsonl")
    started: list[FoldWorker | None] = []
    original = FoldWorker.start

    def spy(db_path: Path, deployments: list[str]) -> FoldWorker | None:
        started.append(original(db_path, deployments))
        return started[-1]

    monkeypatch.setattr("workbench.monitor.predictions.WORKER_BYTES", 64 * 1024)
    monkeypatch.setattr(FoldWorker, "start", staticmethod(spy))
    monkeypatch.setattr("workbench.monitor.windows.SPAN", 2000)  # many small steps to interleave
    assert ws.predictions.ingest("svc").added == 20_000
    assert len(started) == 1 and started[0] is not None
    assert started[0].process.returncode == 0
    got = _buckets(ws)
    assert sum(b[7] + b[8] for b in got) == _stored(ws) == 20_000
    assert got == _from_scratch(ws)
    # A few new lines in a large, mostly consumed file: only what is unread counts, no second process.
    assert (ws.paths.monitor_spool / "svc" / "r1-3.jsonl").stat().st_size > 64 * 1024
    _spool(ws, _lines(20_000, 10), name="r1-3.jsonl")
    assert ws.predictions.ingest("svc").added == 10 and len(started) == 1


def test_two_folders_at_once_count_each_row_once(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process, a fold worker and another Workbench ingesting (which folds inline) fold together."""
    _profile(ws)
    monkeypatch.setattr("workbench.monitor.windows.SPAN", 700)
    writer_done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:  # rows keep arriving while the others fold
        other = Workspace.open(ws.root)
        try:
            for part in range(8):
                _spool(ws, _lines(part * 1500, 1500))
                other.predictions.ingest("svc", clusters=False)
        except BaseException as exc:
            failures.append(exc)
        finally:
            other.close()
            writer_done.set()

    child = subprocess.Popen([sys.executable, "-m", "workbench.monitor.foldworker", str(ws.paths.db), "svc"],
                             stdin=subprocess.PIPE, cwd=ROOT)
    writer = threading.Thread(target=write)
    writer.start()
    try:
        while not writer_done.is_set():
            windows.fold(ws.db, "svc")
    finally:
        writer.join()
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(120) == 0
    assert not failures, failures
    windows.fold(ws.db, "svc")
    got = _buckets(ws)
    assert _stored(ws) == 12_000
    assert sum(b[7] + b[8] for b in got) == 12_000
    assert got == _from_scratch(ws)


def test_a_baseline_saved_during_a_fold_wins(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    _profile(ws)
    _store_unfolded(ws, 2000)
    plan_range = windows._plan_range
    raced: list[bool] = []

    def racing(*args: Any) -> Any:
        plan = plan_range(*args)
        if not raced:  # another process re-baselines between this fold's counting and its commit
            raced.append(True)
            _baseline_elsewhere(ws, shift=3.0)
        return plan

    monkeypatch.setattr(windows, "_plan_range", racing)
    assert windows.fold(ws.db, "svc") == 2000
    got = _buckets(ws)
    monkeypatch.setattr(windows, "_plan_range", plan_range)
    assert got == _from_scratch(ws)  # counted on the new edges, not the ones it started with
    shifted = windows.load_profile(ws.db, "m", 1)
    assert shifted is not None and shifted.features[0].edges[1] > 1  # the shifted reference holds


def test_retention_that_empties_the_table_does_not_hide_later_rows(ws: Workspace) -> None:
    """Every row here is older than an hour: retention deletes all but the table's newest row, so the
    next rows get new ids and are folded (a reused id would sit behind the fold's cursor forever)."""
    _profile(ws)
    ws.config.monitor.retention = "1h"
    _spool(ws, _lines(0, 3000))
    report = ws.predictions.ingest("svc")
    assert report.added == 3000 and report.deleted == 2999 and _stored(ws) == 1
    _spool(ws, _lines(3000, 700))
    assert ws.predictions.ingest("svc").added == 700
    assert sum(b[7] + b[8] for b in _buckets(ws)) == 3700  # every row counted, the later ones too


def test_a_first_baseline_saved_during_a_fold_is_not_skipped(ws: Workspace,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The fold reads "no reference" for the version, a baseline lands before its commit: the rows are
    counted on it, not passed over (the baseline's refold only counts rows behind the cursor)."""
    _store_unfolded(ws, 2000)  # and no profile yet
    profile_row = windows._profile_row
    raced: list[bool] = []

    def racing(*args: Any) -> Any:
        found = profile_row(*args)
        if not raced:
            raced.append(True)
            assert found is None
            _baseline_elsewhere(ws)
        return found

    monkeypatch.setattr(windows, "_profile_row", racing)
    windows.fold(ws.db, "svc")
    monkeypatch.setattr(windows, "_profile_row", profile_row)
    got = _buckets(ws)
    assert raced and sum(b[7] + b[8] for b in got) == 2000
    assert got == _from_scratch(ws)
