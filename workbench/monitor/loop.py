"""Lineage through production: ``workbench lineage`` with the retrain loop drawn in.

:func:`workbench.tracking.lineage.lineage` walks back from a model version to the run that made it
and on through that run's inputs. Here the walk goes on through production: a run that a
``workbench retrain`` made gets a ``retrain`` node (what was compared and decided), under it the
``predictions`` node (what the deployment had answered and been told), under that the ``deployment``
revision that served the old version, and under that the old version's own lineage. Every model
version node says which deployment revisions rolled it out. Read from the new version down:

    model iris:2 (deployed as iris r2) <- retrain run <- retrain #1 <- predictions of iris r1
    <- deployment iris r1 <- model iris:1 <- the first training run <- its data

``workbench lineage --deployment NAME`` starts one step earlier, at the deployment itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UnknownIdError
from workbench.tracking.lineage import LineageNode

if TYPE_CHECKING:
    from workbench.monitor.host import MonitorHost

MAX_RETRAINS = 32
"""How many retrains back one walk follows (each step is an older version)."""


def production_lineage(ws: MonitorHost, target: str, *, deployment: bool = False,
                       cwd: Path | None = None) -> LineageNode:
    """The lineage of ``target`` (a path or ``MODEL[:VERSION|@ALIAS]``; with ``deployment`` a
    deployment's name) with every retrain on the way drawn as the loop it closed."""
    if deployment:
        return deployment_node(ws, target)
    node = ws.runs.lineage(target, cwd=cwd)
    _add_loop(ws, node, [MAX_RETRAINS])
    return node


def deployment_node(ws: MonitorHost, name: str) -> LineageNode:
    """A deployment, the revisions it rolled out, and the lineage of the version it serves now."""
    db = ws.db
    row = db.execute(
        "SELECT name, target, model, version, revision, state FROM deployments WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        raise UnknownIdError(f"no deployment {name!r}", "see 'workbench deployments'")
    revisions = [
        {"revision": int(r[0]), "action": r[1], "model": r[2], "version": r[3], "result": r[4]}
        for r in db.execute(
            "SELECT revision, action, model, version, result FROM deployment_revisions "
            "WHERE deployment = ? ORDER BY revision", (name,))
    ]
    node = LineageNode("deployment", f"{name} r{row[4]}", {
        "deployment": name, "revision": int(row[4]), "target": row[1], "state": row[5],
        "model": row[2], "version": row[3], "revisions": revisions,
        **_counts(db, name, int(row[4]), None),
    })
    node.children.append(production_lineage(ws, f"{row[2]}:{row[3]}"))
    return node


def _add_loop(ws: MonitorHost, node: LineageNode, budget: list[int]) -> None:
    """Decorate ``node`` and its children in place (``budget``: retrains still to follow)."""
    if node.kind == "model":
        name, _, version = node.label.rpartition(":")
        node.details["deployments"] = _deployed_as(ws.db, name, version)
    elif node.kind == "run":
        for record in _retrains_made_by(ws.db, node.label):
            if budget[0] <= 0:
                node.details["truncated"] = True
                break
            budget[0] -= 1
            node.children.insert(0, _retrain_node(ws, record, budget))
    for child in node.children:
        if child.kind != "retrain":  # a retrain node is complete when made
            _add_loop(ws, child, budget)


def _retrains_made_by(db: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    cursor = db.execute("SELECT * FROM retrains WHERE run_id = ? ORDER BY id", (run_id,))
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, r, strict=True)) for r in cursor]


def _retrain_node(ws: MonitorHost, record: dict[str, Any], budget: list[int]) -> LineageNode:
    """retrain -> predictions -> deployment revision -> the champion's own lineage."""
    name, revision = str(record["deployment"]), int(record["revision"])
    retrain = LineageNode("retrain", f"#{record['id']}", {
        key: record[key] for key in (
            "id", "deployment", "revision", "model", "champion_version", "challenger_version",
            "source_run", "run_id", "metric", "champion_score", "challenger_score", "decision",
            "deployed_revision", "created_at")
    })
    predictions = LineageNode("predictions", f"{name} r{revision}", {
        "deployment": name, "revision": revision, "predictions": int(record["predictions"]),
        "labelled": int(record["labelled"]), "upto_id": int(record["predictions_upto"]),
    })
    stored = _counts(ws.db, name, revision, int(record["predictions_upto"]))
    predictions.details.update({f"stored_{key}": value for key, value in stored.items()})
    served = LineageNode("deployment", f"{name} r{revision}", {
        "deployment": name, "revision": revision, "model": record["model"],
        "version": record["champion_version"],
    })
    try:
        champion = ws.runs.lineage(f"{record['model']}:{record['champion_version']}")
    except UnknownIdError:  # the old version was deleted: the loop still shows where it was
        champion = None
    if champion is not None:
        _add_loop(ws, champion, budget)
        served.children.append(champion)
    predictions.children.append(served)
    retrain.children.append(predictions)
    return retrain


def _deployed_as(db: sqlite3.Connection, model: str, version: str) -> list[dict[str, Any]]:
    """Every deployment revision that rolled ``model:version`` out, and whether it serves now."""
    current = {(r[0], int(r[1])) for r in db.execute(
        "SELECT name, revision FROM deployments WHERE state != 'undeployed'")}
    return [
        {"deployment": r[0], "revision": int(r[1]), "action": r[2], "current": (r[0], int(r[1])) in current}
        for r in db.execute(
            "SELECT deployment, revision, action FROM deployment_revisions WHERE model = ? AND version = ? "
            "ORDER BY deployed_at, revision", (model, version))
    ]


def _counts(db: sqlite3.Connection, deployment: str, revision: int, upto: int | None) -> dict[str, int]:
    """Predictions still stored for one revision (up to an id), their errors and labels."""
    sql = ("SELECT count(*), coalesce(sum(p.status = 'error'), 0), count(f.label) FROM predictions p "
           "LEFT JOIN feedback f ON f.deployment = p.deployment AND f.request_id = p.request_id "
           "AND f.row_index = p.row_index WHERE p.deployment = ? AND p.revision = ?")
    args: list[Any] = [deployment, revision]
    if upto is not None:
        sql += " AND p.id <= ?"
        args.append(upto)
    total, errors, labelled = db.execute(sql, args).fetchone()
    return {"predictions": int(total), "errors": int(errors), "labelled": int(labelled)}
