"""UiData against the real services of the demo project: every row field is the service's own.

The converters in workbench/ui/rows.py read the core types' attributes directly (no lookup by
name with a default), and mypy checks them strictly (``workbench.ui.*`` in pyproject's strict
overrides): a converter that reads a field the core type lacks fails ``mypy`` at once. At run
time these tests fail for the same mistake, since the core types are slotted classes and
dataclasses (an AttributeError, not a "?" on screen), and they check each value is carried over.
"""

from __future__ import annotations

import shlex

from workbench.core.workspace import Workspace
from workbench.ui.data import UiData


def test_runs_and_run_detail_carry_the_service_fields(demo_ws: Workspace) -> None:
    data = UiData(demo_ws)
    infos = demo_ws.runs.list()
    rows = data.runs()
    assert [r.id for r in rows] == [i.id for i in infos] and len(rows) >= 3
    for row, info in zip(rows, infos, strict=True):
        assert (row.name, row.status, row.started, row.ended) == (info.name, info.status, info.started_at,
                                                                  info.ended_at)
        assert row.metrics == {k: m.last for k, m in info.metrics.items() if m.last is not None}
        assert row.params == info.params and row.raw is not None and row.raw.id == info.id

    info = demo_ws.runs.get(infos[0].id)
    detail = data.run(info.id)
    assert detail.command == shlex.join(info.command) and detail.command.startswith(("python", "/"))
    assert detail.tags == info.tags and detail.environment == info.environment
    assert detail.exit_code == info.exit_code and detail.snapshot_before == info.snapshot_before

    trained = next(i for i in infos if i.metrics)
    series = data.metric_series(trained.id, data.metric_keys(trained.id)[0])
    raw = demo_ws.runs.metric_series(trained.id, series.key, max_points=2000)
    assert series.values == raw.values and series.steps == [float(s) for s in raw.steps]


def test_snapshots_changes_models_and_provenance(demo_ws: Workspace) -> None:
    data = UiData(demo_ws)
    snaps = data.snapshots()
    infos = demo_ws.versions.log(include_auto=True)
    assert [(s.id, s.kind, s.created, s.files, s.parent) for s in snaps] == [
        (i.id, i.kind, i.created_at, i.files, i.parent) for i in infos]
    with_parent = next(s for s in snaps if s.parent)
    changes = data.changes(with_parent)
    assert [(c.path, c.change, c.size) for c in changes] == [
        (c.path, c.change, c.size) for c in demo_ws.versions.diff(with_parent.parent or "", with_parent.id)]

    models = data.models()
    versions = [v for m in demo_ws.runs.models() for v in m.version_list]
    assert [(m.name, m.version, m.run_id, m.aliases, m.hash) for m in models] == [
        (v.name, str(v.version), v.run_id, v.aliases, v.hash) for v in versions]
    assert any("production" in m.aliases for m in models)

    producer = next(m.run_id for m in models if m.run_id)
    assert producer is not None
    prov = data.provenance(producer)
    assert [p for p, _ in prov.outputs] == [f.path for f in demo_ws.runs.outputs(producer)]
    assert any(spec.startswith("digits:") for spec in prov.models)


def test_file_diff_summarises_the_demo_csv_like_the_cli(demo_ws: Workspace) -> None:
    data = UiData(demo_ws)
    latest = demo_ws.versions.log()[0]
    kind, text = data.file_diff(None, latest.id, "data/digits.csv")
    assert kind == "table" and text.splitlines()[0] == "data/digits.csv"
    assert (kind, text) == tuple(demo_ws.versions.file_diff(None, latest.id, "data/digits.csv"))


def test_narrows_only_when_every_run_the_new_filter_passes_was_shown() -> None:
    """Filtering as you type re-filters the rows shown only when that cannot lose a run."""
    narrows = UiData.narrows
    assert narrows("", "lr>0.01")
    assert narrows("lr>0.01", "lr>0.01")
    assert narrows("lr>0.01", "lr>0.01 and depth<5")
    assert narrows("lr>0.01 and depth<5", "lr>0.01 and depth<5 and optimizer==adam")
    assert not narrows("lr<0.01", "lr<0.013")  # a longer text, a wider filter
    assert not narrows("lr>0.01", "lr>0.01 or depth<5")
    assert not narrows("lr>0.01 and depth<5", "lr>0.01")
    assert not narrows("depth<5", "lr>0.01 and depth<5")  # terms in another order: filter all
    assert not narrows("lr>", "lr>0.01")  # the rows shown did not pass "lr>" (it does not parse)
