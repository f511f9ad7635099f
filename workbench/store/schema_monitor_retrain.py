"""Schema of retraining: each ``workbench retrain`` of a deployment, the loop back to training.

One row per retrain: which deployment (and revision, model version) it started from, how many of the
deployment's predictions and labels existed then (``predictions_upto`` is the last ``predictions.id``
seen), the run it made and the version that run registered, how champion and challenger scored on
labelled production data, and what was decided (``kept`` | ``deployed`` | ``not-compared``), with the
deployment revision the winner was rolled out as. Read together it is the lineage deployment ->
predictions -> retrain run -> new version.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0205_retrains",
        """
        CREATE TABLE retrains (
            id INTEGER PRIMARY KEY,
            deployment TEXT NOT NULL,
            revision INTEGER NOT NULL,
            model TEXT NOT NULL,
            champion_version TEXT NOT NULL,
            source_run TEXT,                       -- the run (or pipeline stage run) re-run
            run_id TEXT,                           -- the retrain run
            challenger_version TEXT,
            predictions_upto INTEGER NOT NULL DEFAULT 0,
            predictions INTEGER NOT NULL DEFAULT 0,
            labelled INTEGER NOT NULL DEFAULT 0,
            metric TEXT NOT NULL DEFAULT '',
            champion_score REAL,
            challenger_score REAL,
            decision TEXT NOT NULL DEFAULT 'not-compared',
            deployed_revision INTEGER,
            created_at REAL NOT NULL
        );
        CREATE INDEX retrains_deployment ON retrains(deployment, id);
        """,
    ),
]
