"""Schema of the monitoring domain: what deployed models answered, and the labels that came later.

``predictions`` holds one row per *instance* answered by a deployment (a request with a batch of
``n`` rows gives ``n`` rows sharing ``request_id``, told apart by ``row_index``). ``features`` is a JSON
object ``{name: value}`` (names from the model's input signature, else ``f0 .. fN``), ``output``
the JSON value the model gave for that row. A request the model refused (wrong shape, a server
error) is kept with ``status = 'error'`` and the one-line ``error`` reason. Rows are immutable and
keyed by ``(deployment, request_id, row_index)`` so ingesting a spool file twice, or after a crash, adds
nothing twice. ``prediction_sources`` remembers how far each spool file or pod log was ingested.
``feedback`` joins ground truth to predictions by request id (and row index).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0200_predictions",
        """
        CREATE TABLE predictions (
            id INTEGER PRIMARY KEY,
            deployment TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 0,  -- deployment_revisions.revision that answered
            model TEXT NOT NULL DEFAULT '',
            version INTEGER,                      -- the model version number
            request_id TEXT NOT NULL,
            row_index INTEGER NOT NULL DEFAULT 0,
            ts REAL NOT NULL,                     -- unix seconds when the request arrived
            latency_ms REAL,
            status TEXT NOT NULL DEFAULT 'ok',    -- ok | error
            error TEXT NOT NULL DEFAULT '',
            features TEXT NOT NULL DEFAULT '{}',  -- JSON object {feature: value}
            output TEXT NOT NULL DEFAULT 'null',  -- JSON value
            UNIQUE (deployment, request_id, row_index)
        );
        CREATE INDEX predictions_deployment_ts ON predictions(deployment, ts);
        CREATE TABLE prediction_sources (
            source TEXT PRIMARY KEY,              -- a spool file's path, or pod:<namespace>/<name>
            deployment TEXT NOT NULL,
            consumed INTEGER NOT NULL DEFAULT 0,  -- bytes (files) or lines (pod logs) consumed
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE feedback (
            deployment TEXT NOT NULL,
            request_id TEXT NOT NULL,
            row_index INTEGER NOT NULL DEFAULT 0,
            label TEXT NOT NULL,                  -- JSON value (class or number)
            ts REAL NOT NULL,
            PRIMARY KEY (deployment, request_id, row_index)
        ) WITHOUT ROWID;
        """,
    ),
]
