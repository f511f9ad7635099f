"""The injected clock and id source: a Workspace opened with them stamps and names everything it
records from them (runs, log lines, stdout metrics, snapshots, aliases), with no patching, so two
projects built the same way hold the same ids and times. Real runs through ``ws.runs.execute``."""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.clock import SYSTEM_CLOCK
from workbench.core.workspace import Workspace
from workbench.demo import FrozenClock, counting_salt, numbered_run_ids
from workbench.tracking.request import RunRequest

T0 = 1_767_225_600.0
SCRIPT = ("from pathlib import Path\nprint('loss: 0.5')\nprint('loss: 0.25')\n"
          "Path('out.txt').write_text('x')\n")


def _build(root: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """A project with two runs and a model alias, recorded under a frozen clock; returns what it holds."""
    root.mkdir()
    (root / "train.py").write_text(SCRIPT, encoding="utf-8")
    Workspace.init(root)[0].close()
    clock = FrozenClock(T0)
    ws = Workspace(root, clock=clock, run_ids=numbered_run_ids(), snapshot_salt=counting_salt())
    try:
        first = ws.runs.execute(RunRequest([sys.executable, "train.py"], name="first"))
        clock.step(10)
        second = ws.runs.execute(RunRequest([sys.executable, "train.py"], name="second"))
        clock.step(10)
        version = ws.runs.register_model(root / "out.txt", name="m")
        ws.runs.set_alias("m", version.version, "production")
        runs = []
        for run in (first, second):
            logs = [(line.time, line.text) for line in ws.runs.log_lines(run.id)]
            loss = ws.runs.metric_series(run.id, "loss")
            runs.append((run.id, run.started_at, run.ended_at, tuple(logs), tuple(loss.times),
                         run.snapshot_before, run.snapshot_after))
        snaps = [(s.id, s.created_at, s.message) for s in ws.versions.log()]
        alias = ws.db.execute("SELECT updated_at FROM model_aliases WHERE alias = 'production'").fetchone()[0]
        model = ws.db.execute("SELECT created_at FROM models WHERE name = 'm'").fetchone()[0]
        snaps.append(("alias", alias, "model", model))
        return runs, snaps
    finally:
        ws.close()


def test_runs_snapshots_and_aliases_take_times_and_ids_from_the_injected_sources(tmp_path: Path) -> None:
    runs, snaps = _build(tmp_path / "a")
    (id1, start1, end1, logs1, times1, _, _), (id2, start2, end2, logs2, _, before2, after2) = runs
    assert (id1, id2) == ("demo00000001", "demo00000002")
    assert (start1, end1, start2, end2) == (T0, T0, T0 + 10, T0 + 10)
    assert [text for _, text in logs1] == ["loss: 0.5", "loss: 0.25"]
    assert {when for when, _ in logs1} == {T0} and {when for when, _ in logs2} == {T0 + 10}
    assert list(times1) == [T0, T0]
    assert before2 and after2
    assert {created for _, created, _ in snaps[:-1]} <= {T0, T0 + 10}
    assert snaps[-1] == ("alias", T0 + 20, "model", T0 + 20)


def test_two_projects_built_the_same_way_record_the_same_ids_and_times(tmp_path: Path) -> None:
    """What the demo's byte-identical UI snapshots rest on, without any patching of time or os."""
    assert _build(tmp_path / "a") == _build(tmp_path / "b")


def test_a_plain_workspace_keeps_the_real_clock_and_random_ids(ws: Workspace, project_dir: Path) -> None:
    (project_dir / "train.py").write_text(SCRIPT, encoding="utf-8")
    assert ws.clock is SYSTEM_CLOCK
    before = SYSTEM_CLOCK.now()
    one = ws.runs.execute([sys.executable, "train.py"])
    two = ws.runs.execute([sys.executable, "train.py"])
    assert one.id != two.id and not one.id.startswith("demo")
    assert before <= one.started_at <= two.started_at <= SYSTEM_CLOCK.now()
