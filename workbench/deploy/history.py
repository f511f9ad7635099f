"""The deploy domain's rows: the current state of each deployment and its revision history.

``deployments`` holds one row per deployment (what it serves now, its state, its runtime: local
replicas or cluster namespace); ``deployment_revisions`` one row per change (deploy, scale, rollback,
undeploy): who, when, which model version, how many replicas, the spec and the objects applied, and
how it ended. :class:`DeploymentHistory` is the only code that reads or writes them;
:class:`~workbench.deploy.service.DeployService` orchestrates the targets around it.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from workbench.deploy.types import DeploySpec, Revision
from workbench.errors import DeployError, UnknownIdError, WorkbenchError


class DeploymentHistory:
    """Reads and writes ``deployments`` and ``deployment_revisions`` for one project."""

    def __init__(self, db: Callable[[], sqlite3.Connection],
                 atomic: Callable[[], AbstractContextManager[sqlite3.Connection]]) -> None:
        self._db = db
        self._atomic = atomic

    # -- the current state ---------------------------------------------------------------------
    def find(self, name: str) -> sqlite3.Row | None:
        """The deployment's row, undeployed or not; None when the name was never deployed."""
        row: sqlite3.Row | None = self._db().execute(
            "SELECT * FROM deployments WHERE name = ?", (name,)
        ).fetchone()
        return row

    def row(self, name: str) -> dict[str, Any]:
        """A live (not undeployed) deployment's row; UnknownIdError otherwise."""
        row = self.find(name)
        if row is None or row["state"] == "undeployed":
            raise UnknownIdError(f"no deployment named '{name}'", "see 'workbench deployments'")
        return dict(row)

    def rows(self) -> list[sqlite3.Row]:
        return list(self._db().execute("SELECT * FROM deployments ORDER BY name").fetchall())

    def next_revision(self, name: str) -> int:
        row = self._db().execute(
            "SELECT MAX(revision) FROM deployment_revisions WHERE deployment = ?", (name,)
        ).fetchone()
        return int(row[0] or 0) + 1

    # -- writing -------------------------------------------------------------------------------
    def record(self, spec: DeploySpec, revision: int, action: str, objects: list[dict[str, Any]]) -> None:
        """Start a revision: the deployment row points at it (state progressing), its entry is added."""
        now = time.time()
        with self._atomic() as db:
            exists = db.execute("SELECT 1 FROM deployments WHERE name = ?", (spec.name,)).fetchone()
            values = (
                spec.target,
                spec.namespace,
                spec.model.name,
                spec.model.version,
                spec.model.run_id,
                spec.model.hash,
                spec.model.framework,
                spec.replicas,
                revision,
                now,
            )
            if exists:
                db.execute(
                    "UPDATE deployments SET target=?, namespace=?, model=?, version=?, run_id=?,"
                    " artifact_hash=?, framework=?, replicas=?, revision=?, updated_at=?,"
                    " state='progressing', message=''"
                    " WHERE name=?",
                    (*values, spec.name),
                )
            else:
                db.execute(
                    "INSERT INTO deployments (target, namespace, model, version, run_id, artifact_hash,"
                    " framework, replicas, revision, updated_at, name, state, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?, 'progressing', ?)",
                    (*values, spec.name, now),
                )
            db.execute(
                "INSERT INTO deployment_revisions (deployment, revision, action, model, version, run_id,"
                " artifact_hash, replicas, spec, objects, deployed_by, deployed_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    spec.name,
                    revision,
                    action,
                    spec.model.name,
                    spec.model.version,
                    spec.model.run_id,
                    spec.model.hash,
                    spec.replicas,
                    json.dumps(spec.to_json()),
                    json.dumps(objects),
                    _user(),
                    now,
                ),
            )

    def finish(
        self,
        name: str,
        revision: int,
        *,
        state: str,
        message: str,
        result: str,
        runtime: dict[str, Any] | None = None,
        endpoint: str | None = None,
        replicas: int | None = None,
    ) -> None:
        """End a revision: the deployment's state and runtime, the revision's result."""
        with self._atomic() as db:
            sets = ["state = ?", "message = ?", "updated_at = ?"]
            args: list[Any] = [state, message, time.time()]
            for column, value in (
                ("runtime", None if runtime is None else json.dumps(runtime)),
                ("endpoint", endpoint),
                ("replicas", replicas),
            ):
                if value is not None:
                    sets.append(f"{column} = ?")
                    args.append(value)
            db.execute(f"UPDATE deployments SET {', '.join(sets)} WHERE name = ?", (*args, name))
            self._set_result(db, name, revision, result, message)

    def finish_revision(self, name: str, revision: int, result: str, message: str) -> None:
        """End a revision without touching the deployment row (it still describes the old one)."""
        with self._atomic() as db:
            self._set_result(db, name, revision, result, message)

    @staticmethod
    def _set_result(db: sqlite3.Connection, name: str, revision: int, result: str, message: str) -> None:
        db.execute(
            "UPDATE deployment_revisions SET result = ?, message = ? WHERE deployment = ? AND revision = ?",
            (result, message, name, revision),
        )

    def restore_row(self, name: str, row: Any, message: str) -> None:
        """Point the deployment back at what ``row`` served (a failed update left it running)."""
        with self._atomic() as db:
            db.execute(
                "UPDATE deployments SET model=?, version=?, run_id=?, artifact_hash=?, framework=?,"
                " replicas=?, revision=?, state=?, message=?, updated_at=? WHERE name=?",
                (
                    row["model"],
                    row["version"],
                    row["run_id"],
                    row["artifact_hash"],
                    row["framework"],
                    row["replicas"],
                    row["revision"],
                    "degraded",
                    message,
                    time.time(),
                    name,
                ),
            )

    def set_runtime(self, name: str, runtime: dict[str, Any]) -> None:
        """Replace the deployment's runtime record (its replicas and front door) only."""
        with self._atomic() as db:
            db.execute("UPDATE deployments SET runtime = ? WHERE name = ?", (json.dumps(runtime), name))

    def set_revision(self, name: str, revision: int) -> None:
        with self._atomic() as db:
            db.execute("UPDATE deployments SET revision = ? WHERE name = ?", (revision, name))

    # -- revisions -----------------------------------------------------------------------------
    def spec_of(self, name: str, revision: int) -> DeploySpec:
        row = self._db().execute(
            "SELECT spec FROM deployment_revisions WHERE deployment = ? AND revision = ?", (name, revision)
        ).fetchone()
        if row is None:
            raise UnknownIdError(
                f"'{name}' has no revision {revision}", f"see 'workbench deployments {name} --history'"
            )
        return DeploySpec.from_json(json.loads(row["spec"]))

    def live_server(self, name: str) -> str | None:
        """The model server a live deployment runs ("" for MLServer before there was a choice), or
        None when it is not deployed or its revision cannot be read."""
        row = self.find(name)
        if row is None or row["state"] == "undeployed":
            return None
        try:
            return self.spec_of(name, int(row["revision"])).server or "mlserver"
        except WorkbenchError:
            return None

    def previous_revision(self, name: str, current: DeploySpec) -> int:
        """The latest revision that served successfully a model version other than ``current``'s."""
        rows = self._db().execute(
            "SELECT revision, artifact_hash FROM deployment_revisions WHERE deployment = ?"
            " AND result = 'available' AND action != 'scale' ORDER BY revision DESC",
            (name,),
        ).fetchall()
        for r in rows:
            if r["artifact_hash"] != current.model.hash:
                return int(r["revision"])
        raise DeployError(
            f"'{name}' has no earlier revision serving another model version",
            f"see 'workbench deployments {name} --history'",
        )

    def revisions(self, name: str) -> list[Revision]:
        rows = self._db().execute(
            "SELECT * FROM deployment_revisions WHERE deployment = ? ORDER BY revision", (name,)
        ).fetchall()
        if not rows:
            raise UnknownIdError(f"no deployment named '{name}'", "see 'workbench deployments'")
        return [
            Revision(
                revision=r["revision"],
                action=r["action"],
                model=r["model"],
                version=r["version"],
                run_id=r["run_id"],
                artifact_hash=r["artifact_hash"],
                replicas=r["replicas"],
                deployed_by=r["deployed_by"],
                deployed_at=r["deployed_at"],
                result=r["result"],
                message=r["message"],
            )
            for r in rows
        ]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
