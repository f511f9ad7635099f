"""Merge rules of a pull, through a file:// remote: model versions renumbered on a clash, aliases
last-writer-wins with their history kept and the conflict listed, sweeps travel with their members."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Workspace, Workspace]]:
    share = tmp_path / "share"
    share.mkdir()
    made = []
    for who in ("a", "b"):
        root = tmp_path / who
        root.mkdir()
        ws, _ = Workspace.init(root)
        ws.remote.add("origin", share.as_uri())
        made.append(ws)
    yield made[0], made[1]
    for ws in made:
        ws.close()


def _model(ws: Workspace, content: bytes) -> int:
    path = ws.root / "model.bin"
    path.write_bytes(content)
    return ws.runs.register_model(path, name="clf").version


def test_model_version_clash_is_renumbered_and_aliases_merge_last_writer_wins(
        pair: tuple[Workspace, Workspace]) -> None:
    a, b = pair
    assert _model(a, b"A's model") == 1
    a.runs.set_alias("clf", 1, "production")
    a.remote.push()
    assert _model(b, b"B's model") == 1  # B registered its own version 1 before pulling
    set_at = a.db.execute("SELECT updated_at FROM model_aliases").fetchone()[0]
    while time.time() <= set_at:  # B's alias must be strictly newer, whatever the clock's resolution
        pass
    b.runs.set_alias("clf", 1, "production")
    b.remote.push()

    report = a.remote.pull()
    assert report.added.get("model_version") == 1
    assert any("version 1 from origin exists here with other content; stored as version 2" in c
               for c in report.conflicts), report.conflicts
    assert any("alias clf@production" in c and "replaced" in c for c in report.conflicts), report.conflicts
    versions = {v.version: v for v in a.runs.model_versions("clf")}
    assert b"".join(a.versions.iter_object(versions[2].hash)) == b"B's model"
    assert a.runs.model_version("clf@production").version == 2  # B's, set later, wins
    history = a.db.execute("SELECT version, replaced_by FROM alias_history WHERE name = 'clf'").fetchall()
    assert [tuple(r) for r in history] == [(1, "origin")]

    # B pulls A's version: it lands as B's version 2, and B keeps its own (newer) alias.
    report_b = b.remote.pull()
    assert any("kept version 1 here" in c for c in report_b.conflicts), report_b.conflicts
    assert b.runs.model_version("clf@production").version == 1
    assert b"".join(b.versions.iter_object(b.runs.model_version("clf:2").hash)) == b"A's model"
    # Both sides are now up to date; nothing bounces back.
    assert a.remote.pull().bundles == 0


def test_nothing_pulled_is_pushed_back(pair: tuple[Workspace, Workspace]) -> None:
    a, b = pair
    (a.root / "f.txt").write_text("hello")
    a.versions.snapshot("first")
    assert a.remote.push().records == {"snapshot": 1}
    assert b.remote.pull().added == {"snapshot": 1}
    assert b.remote.push().bundle is None
    assert b.versions.read_file("latest", "f.txt") == b"hello"


def test_a_bundle_with_a_malformed_record_is_refused_whole(pair: tuple[Workspace, Workspace]) -> None:
    import blake3
    import zstandard

    from workbench.errors import WorkbenchError

    a, b = pair
    (a.root / "f.txt").write_text("hello")
    a.versions.snapshot("first")
    a.remote.push()
    share = Path(a.remote.get().url[len("file://"):])
    lines = [json.dumps({"format": "workbench-bundle/1", "id": "x"}),
             json.dumps({"kind": "run", "id": "r1", "row": {
                 "id": "r1", "status": "succeeded", "started_at": 1.0, "evil); DROP TABLE runs; --": 1}})]
    body = zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode())
    (share / "bundles" / f"{blake3.blake3(body).hexdigest()}.jsonl.zst").write_bytes(body)
    with pytest.raises(WorkbenchError, match="cannot merge"):
        b.remote.pull()
    assert b.versions.latest() is None  # A's good bundle was not merged either: one pull, one transaction
    assert b.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_sweeps_pipelines_and_deployment_history_travel(pair: tuple[Workspace, Workspace]) -> None:
    a, b = pair
    (a.root / "step.py").write_text(
        "import sys\nopen('out.txt', 'w').write(sys.argv[1])\nprint('acc: 1')\n")
    (a.root / "workbench.yaml").write_text(
        "stages:\n  step:\n    cmd: python step.py hello\n    inputs: [step.py]\n    outputs: [out.txt]\n")
    sweep = a.workflows.sweep(["python", "step.py", "{x}"], ["x=1,2"])
    repro = a.workflows.repro()
    assert sweep.status == "succeeded" and repro.status == "succeeded"
    # A deployment's history as the deploy service records it (deploying needs a model server).
    with a.atomic() as db:
        db.execute("INSERT INTO deployments (name, target, model, version, artifact_hash, framework,"
                   " replicas, revision, state, created_at, updated_at) VALUES ('web', 'local', 'clf', '1',"
                   " 'h', 'sklearn', 1, 2, 'ready', 1.0, 2.0)")
        for rev in (1, 2):
            db.execute("INSERT INTO deployment_revisions (deployment, revision, action, model, version,"
                       " artifact_hash, replicas, spec, deployed_by, deployed_at, result) VALUES"
                       " ('web', ?, 'deploy', 'clf', '1', 'h', 1, '{}', 'a@host', ?, 'ready')",
                       (rev, float(rev)))
    pushed = a.remote.push()
    assert pushed.records["sweep"] == 1 and pushed.records["pipeline_run"] == 1
    assert pushed.records["deployment"] == 1 and pushed.records["run"] == 3

    report = b.remote.pull()
    assert (report.added["sweep"], report.added["pipeline_run"], report.added["deployment"]) == (1, 1, 1)
    got = b.workflows.get_sweep(sweep.id)
    assert [m.run_id for m in got.members] == [m.run_id for m in sweep.members]
    assert all(b.runs.get(m.run_id or "").status == "succeeded" for m in got.members)
    assert b.workflows.pipeline_run(repro.pipeline_run)["status"] == "succeeded"
    revisions = b.db.execute("SELECT revision, deployed_by FROM deployment_revisions ORDER BY revision")
    assert [tuple(r) for r in revisions] == [(1, "a@host"), (2, "a@host")]


def test_remote_status_says_ahead_and_behind(pair: tuple[Workspace, Workspace]) -> None:
    a, b = pair
    (a.root / "f.txt").write_text("one")
    a.versions.snapshot("first")
    assert a.remote.status()["ahead"] == {"snapshot": 1}
    a.remote.push()
    status = a.remote.status()
    assert (status["remote"], status["ahead"], status["behind_bundles"]) == ("origin", {}, 0)
    assert b.remote.status()["behind_bundles"] == 1
    b.remote.pull()
    assert b.remote.status()["behind_bundles"] == 0 and b.remote.status()["ahead"] == {}


def test_every_table_with_a_run_id_is_listed_as_travelling_or_local(
        pair: tuple[Workspace, Workspace]) -> None:
    """A branch that adds a run-owned table must say how it travels (records.RUN_TABLES)."""
    from workbench.remote.records import RUN_TABLES

    a, _ = pair
    tables = [r[0] for r in a.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    owned = {t for t in tables
             if "run_id" in {c[1] for c in a.db.execute(f"PRAGMA table_info({t})")}} | {"runs"}
    assert owned - set(RUN_TABLES) == set(), "run-owned tables missing from records.RUN_TABLES"


def test_late_tags_conflicts_refusals_and_model_links_travel(pair: tuple[Workspace, Workspace]) -> None:
    a, b = pair
    (a.root / "step.py").write_text("import sys\nprint('acc: 1')\n")
    sweep = a.workflows.sweep(["python", "step.py", "{x}"], ["x=1"])
    run_id = sweep.members[0].run_id or ""
    with a.atomic() as db:
        db.execute("UPDATE runs SET dropped_events = 3 WHERE id = ?", (run_id,))
        db.execute("INSERT INTO run_conflicts (run_id, path, kind, reason, created_at)"
                   " VALUES (?, 'out.txt', 'not-copied', 'changed since the input snapshot', 1.0)", (run_id,))
        db.execute("INSERT INTO run_refusals (run_id, seq, kind, path, reason)"
                   " VALUES (?, 1, 'input', '/etc/passwd', 'outside the workspace')", (run_id,))
    (a.root / "model.bin").write_bytes(b"weights")
    version = a.runs.register_model(a.root / "model.bin", name="clf", run_id=run_id).version
    a.remote.push()
    b.remote.pull()
    assert b.db.execute("SELECT dropped_events FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == 3
    def rows(sql: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in b.db.execute(sql, (run_id,))]

    assert rows("SELECT kind, reason FROM run_conflicts WHERE run_id = ?") \
        == [("not-copied", "changed since the input snapshot")]
    assert rows("SELECT path FROM run_refusals WHERE run_id = ?") == [("/etc/passwd",)]
    assert rows("SELECT name, version FROM model_version_runs WHERE run_id = ?") == [("clf", version)]

    # Archiving after the run was shared is a late tag: the next push/pull carries it.
    a.runs.archive([run_id])
    assert a.remote.push().records.get("run") == 1
    b.remote.pull()
    assert b.db.execute("SELECT 1 FROM run_tags WHERE run_id = ? AND key = 'archived'",
                        (run_id,)).fetchone() is not None
