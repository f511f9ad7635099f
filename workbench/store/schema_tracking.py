"""Schema of the tracking domain: named, forward-only migrations (see workbench.store.migrations).

Runs point at snapshots by id (``snapshot_before`` = the code and data that went in, ``snapshot_after``
= the folder once the run ended). Metric points live in compressed blocks (``metric_chunks``, keyed
``(key_id, first_step)``, since 0140; before that one row per point in ``metrics``), where
``metric_keys.id`` is one key of one run, so reading one key of one run is one range read;
``metric_keys`` keeps per-key summaries (last, min, max, count) so listings never
touch the points. Whoever deletes a run must delete its points (by key id) before its
``metric_keys`` rows, so that a reused key id never meets old points. In REAL columns (summaries,
rollups) NaN is stored as NULL (SQLite turns NaN into NULL anyway) and read back as NaN; infinities
are stored as they are. The blocks keep every value bit for bit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

MIGRATIONS: list[tuple[str, str | Callable[[sqlite3.Connection], None]]] = [
    (
        "0101_runs",
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,                 -- sortable: base36 milliseconds + random
            name TEXT NOT NULL DEFAULT '',
            command TEXT NOT NULL DEFAULT '[]',  -- JSON argv
            workdir TEXT NOT NULL DEFAULT '.',   -- relative to the project root
            status TEXT NOT NULL,                -- running | succeeded | failed | cancelled
            exit_code INTEGER,
            reason TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL,
            ended_at REAL,
            executor TEXT NOT NULL DEFAULT 'local',
            source TEXT NOT NULL DEFAULT 'cli',  -- cli (workbench run) | api (a plain python script)
            snapshot_before TEXT,                -- snapshots.id
            snapshot_after TEXT,                 -- snapshots.id
            parent_run TEXT,                     -- rerun of / launched by
            sweep_id TEXT,
            pipeline_run TEXT,
            stage TEXT,
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER,                         -- the process that owns the row while running
            pid_started REAL,                    -- its start time, to tell a reused pid apart
            events_path TEXT NOT NULL DEFAULT '',
            events_offset INTEGER NOT NULL DEFAULT 0,  -- bytes of the events file ingested
            environment TEXT NOT NULL DEFAULT '{}',    -- JSON: python, packages, os, cpu, memory, git
            gpus TEXT NOT NULL DEFAULT '[]',           -- JSON: model, memory, driver per GPU
            executor_info TEXT NOT NULL DEFAULT '{}'   -- JSON: Job.describe()
        );
        CREATE INDEX runs_started ON runs(started_at);
        CREATE INDEX runs_status ON runs(status);
        CREATE INDEX runs_pipeline ON runs(pipeline_run);
        CREATE INDEX runs_sweep ON runs(sweep_id);
        CREATE INDEX runs_parent ON runs(parent_run);

        CREATE TABLE run_params (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,                 -- JSON scalar
            source TEXT NOT NULL DEFAULT 'api',  -- argv | api
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;

        CREATE TABLE run_tags (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;

        CREATE TABLE metric_keys (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 0,
            last_step INTEGER,
            last_value REAL,
            last_time REAL,
            min_value REAL,
            max_value REAL,
            UNIQUE (run_id, key)
        );

        CREATE TABLE metrics (
            run_id TEXT NOT NULL,
            key_id INTEGER NOT NULL,
            step INTEGER NOT NULL,
            time REAL NOT NULL,
            value REAL,                          -- NULL = NaN
            PRIMARY KEY (run_id, key_id, step)
        ) WITHOUT ROWID;

        CREATE TABLE run_logs (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            stream TEXT NOT NULL,                -- stdout | stderr | workbench
            time REAL NOT NULL,
            line TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE run_files (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            direction TEXT NOT NULL,             -- input | output
            path TEXT NOT NULL,                  -- project-relative posix path (or absolute outside it)
            hash TEXT,                           -- content hash the file had (before for inputs)
            size INTEGER,
            source TEXT NOT NULL,                -- audit | snapshot | api | executor
            PRIMARY KEY (run_id, direction, path)
        ) WITHOUT ROWID;
        CREATE INDEX run_files_path ON run_files(path, direction);
        CREATE INDEX run_files_hash ON run_files(hash);

        CREATE TABLE models (
            name TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            description TEXT NOT NULL DEFAULT ''
        );

        CREATE TABLE model_versions (
            name TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            run_id TEXT,
            path TEXT NOT NULL,
            hash TEXT NOT NULL,                  -- content hash in the blob cache
            size INTEGER NOT NULL DEFAULT 0,
            framework TEXT NOT NULL DEFAULT '',
            framework_version TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE INDEX model_versions_run ON model_versions(run_id);
        CREATE INDEX model_versions_hash ON model_versions(hash);

        CREATE TABLE model_aliases (
            name TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
            alias TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (name, alias)
        );
        """,
    ),
    (
        # The points without run_id: key_id already names one key of one run, and rows a third
        # smaller make the bulk insert (the ingest's whole cost) about 1.4x faster.
        "0102_metric_points_by_key",
        """
        CREATE TABLE metric_points (
            key_id INTEGER NOT NULL,             -- metric_keys.id
            step INTEGER NOT NULL,
            time REAL NOT NULL,
            value REAL,                          -- NULL = NaN
            PRIMARY KEY (key_id, step)
        ) WITHOUT ROWID;
        INSERT INTO metric_points (key_id, step, time, value) SELECT key_id, step, time, value FROM metrics;
        DROP TABLE metrics;
        ALTER TABLE metric_points RENAME TO metrics;
        """,
    ),
]


# -- per-run summaries (0103) ---------------------------------------------------------------------
# One row per run holding its params, tags and metric summaries as JSON objects, so a listing of
# ten thousand runs is one query and decodes only what a view touches. The ingester refreshes a
# run's row in the same transaction as its rows (``SUMMARY_REFRESH``); triggers mark the row
# ``stale`` whenever run_params, run_tags or metric_keys change by any other path, and readers
# then read those runs from the normalised tables instead. Numbers are printed with 17
# significant digits (``%!.17g``) so every float reads back exactly; SQLite's own JSON functions
# print REALs with 15 and are not used for them.


def _number_json(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL THEN 'null' WHEN {column} > 1.7976931348623157e308 THEN 'Infinity'"
        f" WHEN {column} < -1.7976931348623157e308 THEN '-Infinity' ELSE printf('%!.17g', {column}) END"
    )


PARAMS_JSON = """(SELECT COALESCE('{' || group_concat(json_quote(key) || ':' || value, ',') || '}', '{}')
    FROM (SELECT key, value FROM run_params WHERE run_id = :run ORDER BY key))"""
TAGS_JSON = """(SELECT COALESCE(
        '{' || group_concat(json_quote(key) || ':' || json_quote(value), ',') || '}', '{}')
    FROM (SELECT key, value FROM run_tags WHERE run_id = :run ORDER BY key))"""
METRICS_JSON = (
    "(SELECT COALESCE('{' || group_concat(json_quote(key) || ':[' || count || ',' || "
    + _number_json("last_value") + " || ',' || COALESCE(last_step, 'null') || ',' || "
    + _number_json("min_value") + " || ',' || " + _number_json("max_value")
    + " || ']', ',') || '}', '{}') FROM (SELECT key, count, last_value, last_step, min_value, max_value"
    " FROM metric_keys WHERE run_id = :run AND count > 0 ORDER BY key))"
)
"""``{key: [count, last, last_step, min, max]}``; ``last`` null = NaN, ``min``/``max`` null = no finite
value."""

SUMMARY_REFRESH = (
    "INSERT INTO run_summaries (run_id, params, metrics, tags, stale) VALUES (:run, "
    + PARAMS_JSON + ", " + METRICS_JSON + ", " + TAGS_JSON + ", 0)"
    " ON CONFLICT (run_id) DO UPDATE SET params = excluded.params, metrics = excluded.metrics,"
    " tags = excluded.tags, stale = 0"
)

_STALE_TRIGGERS = "".join(
    f"""
        CREATE TRIGGER {table}_{kind}_marks_summary AFTER {kind.upper()} ON {table}
        BEGIN UPDATE run_summaries SET stale = 1 WHERE run_id = {row}.run_id AND stale = 0; END;"""
    for table in ("run_params", "run_tags", "metric_keys")
    for kind, row in (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD"))
)
_BUMP = "BEGIN UPDATE tracking_changes SET counter = counter + 1 WHERE id = 1; END;"
_CHANGE_TRIGGERS = "".join(
    f"""
        CREATE TRIGGER {name} AFTER {event} ON {table} {_BUMP}"""
    for name, event, table in (
        ("runs_insert_changes", "INSERT", "runs"),
        ("runs_update_changes",
         "UPDATE OF name, status, exit_code, reason, ended_at, snapshot_before, snapshot_after", "runs"),
        ("runs_delete_changes", "DELETE", "runs"),
        ("run_summaries_insert_changes", "INSERT", "run_summaries"),
        ("run_summaries_update_changes", "UPDATE", "run_summaries"),
        ("model_versions_insert_changes", "INSERT", "model_versions"),
        ("model_versions_delete_changes", "DELETE", "model_versions"),
        ("model_aliases_insert_changes", "INSERT", "model_aliases"),
        ("model_aliases_update_changes", "UPDATE", "model_aliases"),
        ("model_aliases_delete_changes", "DELETE", "model_aliases"),
    )
)

# -- metric rollups (0103) ------------------------------------------------------------------------
# Per key, the points cut into buckets of 64, 4,096 and 262,144 steps (level 1, 2, 3; bucket =
# step >> 6 * level), each with the exact min, max (NULL: no finite value) and the value and time at
# its largest step. Maintained by the ingester in the transaction that writes the points, so a
# downsampled read of a million points reads about 15,000 rows instead of the points.
ROLLUP_SHIFT = 6
ROLLUP_LEVELS = (1, 2, 3)


def _rollup_from_points(level: int) -> str:
    shift = ROLLUP_SHIFT * level
    return f"""
        INSERT INTO metric_rollups
            (key_id, level, bucket, min_value, max_value, last_step, last_value, last_time)
        SELECT g.key_id, {level}, g.bucket, g.lo, g.hi, g.last, m.value, m.time
        FROM (SELECT key_id, step >> {shift} AS bucket, MIN(value) AS lo, MAX(value) AS hi, MAX(step) AS last
              FROM metrics GROUP BY key_id, bucket) g
        JOIN metrics m ON m.key_id = g.key_id AND m.step = g.last;"""


def _rollup_from_level(level: int) -> str:
    below = level - 1
    return f"""
        INSERT INTO metric_rollups
            (key_id, level, bucket, min_value, max_value, last_step, last_value, last_time)
        SELECT g.key_id, {level}, g.bucket, g.lo, g.hi, g.last, r.last_value, r.last_time
        FROM (SELECT key_id, bucket >> {ROLLUP_SHIFT} AS bucket, MIN(min_value) AS lo, MAX(max_value) AS hi,
                     MAX(last_step) AS last
              FROM metric_rollups WHERE level = {below} GROUP BY key_id, bucket >> {ROLLUP_SHIFT}) g
        JOIN metric_rollups r ON r.key_id = g.key_id AND r.level = {below}
             AND r.bucket = g.last >> {ROLLUP_SHIFT * below};"""


MIGRATIONS.append((
    "0103_run_summaries_changes_rollups",
    """
        CREATE TABLE run_summaries (
            run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            params TEXT NOT NULL DEFAULT '{}',   -- JSON {key: value}
            metrics TEXT NOT NULL DEFAULT '{}',  -- JSON {key: [count, last, last_step, min, max]}
            tags TEXT NOT NULL DEFAULT '{}',     -- JSON {key: value}
            stale INTEGER NOT NULL DEFAULT 0     -- 1: read this run from the normalised tables
        ) WITHOUT ROWID;

        CREATE TABLE tracking_changes (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            counter INTEGER NOT NULL             -- bumped by triggers on every visible change
        );
        INSERT INTO tracking_changes (id, counter) VALUES (1, 0);

        CREATE TABLE metric_rollups (
            key_id INTEGER NOT NULL,             -- metric_keys.id
            level INTEGER NOT NULL,              -- 1, 2, 3: buckets of 64, 4096, 262144 steps
            bucket INTEGER NOT NULL,             -- step >> (6 * level)
            min_value REAL,                      -- NULL: no finite value in the bucket
            max_value REAL,
            last_step INTEGER NOT NULL,          -- the bucket's largest step
            last_value REAL,                     -- its value (NULL = NaN)
            last_time REAL NOT NULL,
            PRIMARY KEY (key_id, level, bucket)
        ) WITHOUT ROWID;
    """
    + "\n        INSERT INTO run_summaries (run_id, params, metrics, tags)"
    + " SELECT id, " + PARAMS_JSON.replace(":run", "runs.id") + ", "
    + METRICS_JSON.replace(":run", "runs.id") + ", " + TAGS_JSON.replace(":run", "runs.id") + " FROM runs;"
    + _STALE_TRIGGERS + _CHANGE_TRIGGERS
    + _rollup_from_points(1) + _rollup_from_level(2) + _rollup_from_level(3),
))


# -- dropped events (0110) ------------------------------------------------------------------------
# Event lines of a run that could not be recorded (malformed, over the readers' bound, a corrupt
# packed series, or reported ``dropped`` by the writer), counted by the ingester as it meets them.
MIGRATIONS.append((
    "0110_runs_dropped_events",
    "ALTER TABLE runs ADD COLUMN dropped_events INTEGER NOT NULL DEFAULT 0;",
))


# -- the runs of a model version (0130) -----------------------------------------------------------
# A run that writes bytes identical to an existing version of a model reuses that version instead
# of adding one; this table links every run to the versions it registered or reused (the version's
# own run_id stays the run that first wrote the bytes).
MIGRATIONS.append((
    "0130_model_version_runs",
    f"""
        CREATE TABLE model_version_runs (
            run_id TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            path TEXT NOT NULL,                  -- where this run wrote it
            reused INTEGER NOT NULL DEFAULT 0,   -- 1: identical to the version another run made
            linked_at REAL NOT NULL,
            PRIMARY KEY (run_id, name, version),
            FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON DELETE CASCADE
        ) WITHOUT ROWID;
        CREATE INDEX model_version_runs_version ON model_version_runs(name, version);
        INSERT OR IGNORE INTO model_version_runs (run_id, name, version, path, reused, linked_at)
            SELECT run_id, name, version, path, 0, created_at FROM model_versions WHERE run_id IS NOT NULL;
        CREATE TRIGGER model_version_runs_insert_changes AFTER INSERT ON model_version_runs {_BUMP}
    """,
))


# A run's outputs whose bytes are not (or no longer) the project's file at that path: an isolated
# run's copy-back refused because another run or process changed the path since the run's input
# snapshot, or a file this run wrote and closed that another process overwrote before the run ended.
MIGRATIONS.append((
    "0120_run_conflicts",
    """
        CREATE TABLE run_conflicts (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            path TEXT NOT NULL,                  -- project-relative posix path
            kind TEXT NOT NULL,                  -- not-copied | overwritten
            other_run TEXT,                      -- the run whose bytes the project holds, when known
            reason TEXT NOT NULL,
            hash TEXT,                           -- this run's bytes (in the blob cache), when kept
            project_hash TEXT,                   -- what the project held when the conflict was seen
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, path)
        ) WITHOUT ROWID;
        CREATE INDEX run_conflicts_other ON run_conflicts(other_run);
    """,
))


# -- packed metric points (0140) ------------------------------------------------------------------
# Points move from one row per point (``metrics``) to compressed blocks of up to 4,096 points per key
# (``metric_chunks``, see workbench.store.metric_chunks): about 9 bytes a point on disk instead of
# about 40, and a batch is written as a few blobs instead of a row per point. NaN is now stored as
# itself (bit for bit), no longer as NULL.
def _pack_metric_points(conn: sqlite3.Connection) -> None:
    from workbench.store.metric_chunks import migrate_rows  # numpy: only when the migration runs

    migrate_rows(conn)


MIGRATIONS.append(("0140_metric_chunks", _pack_metric_points))
