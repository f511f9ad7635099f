"""Schema of drift monitoring: reference profiles, folded window histograms and alert states.

``monitor_profiles`` holds one reference profile per model version (JSON: per-feature bin edges,
reference counts, quantiles, category frequencies, missing rates, the input signature and the
prediction distribution on the reference data), fixed when the version is registered or given with
``workbench monitor baseline``. ``monitor_buckets`` holds mergeable counts on the profile's bin
edges for consecutive runs of predictions (at most :data:`workbench.monitor.windows.GRAIN` rows,
never across a minute boundary), so any window is a sum of buckets and raw predictions are read
once. ``monitor_cursors`` remembers the last prediction id scanned per deployment;
``monitor_states`` the last state per deployment, so an alert fires once per change.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0210_drift_monitoring",
        """
        CREATE TABLE monitor_profiles (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            source TEXT NOT NULL,                 -- the file profiled (run input or baseline)
            rows INTEGER NOT NULL,
            profile TEXT NOT NULL,                -- JSON, see workbench/monitor/profile.py
            created_at REAL NOT NULL,
            PRIMARY KEY (model, version)
        ) WITHOUT ROWID;
        CREATE TABLE monitor_cursors (
            deployment TEXT PRIMARY KEY,
            last_id INTEGER NOT NULL DEFAULT 0    -- predictions.id scanned up to (inclusive)
        ) WITHOUT ROWID;
        CREATE TABLE monitor_buckets (
            id INTEGER PRIMARY KEY,               -- a rowid table: rows carry KiB blobs
            deployment TEXT NOT NULL,
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            seq INTEGER NOT NULL,                 -- 0, 1, 2 ... per deployment and version
            minute INTEGER NOT NULL,              -- floor(ts / 60) of every row in the bucket
            id_min INTEGER NOT NULL,
            id_max INTEGER NOT NULL,
            rows INTEGER NOT NULL,                -- answered rows (status ok)
            errors INTEGER NOT NULL DEFAULT 0,    -- rows with status error
            counts BLOB NOT NULL,                 -- int64 little-endian, layout from the profile
            conf_sum REAL NOT NULL DEFAULT 0,     -- sum of top-class confidence (CBPE)
            conf_rows INTEGER NOT NULL DEFAULT 0,
            reasons TEXT NOT NULL DEFAULT '{}',   -- JSON {error or schema reason: count}
            UNIQUE (deployment, model, version, seq)
        );
        CREATE TABLE monitor_states (
            deployment TEXT PRIMARY KEY,
            state TEXT NOT NULL,                  -- ok | warning | drifting | degraded
            detail TEXT NOT NULL DEFAULT '{}',    -- JSON: the report summary that set it
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
]
