"""Schema of the versioning domain: named, forward-only migrations (see workbench.store.migrations)."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_snapshots",
        """
        CREATE TABLE snapshots (
            id TEXT PRIMARY KEY,            -- 64 hex chars (BLAKE3 of the snapshot record)
            root_tree TEXT NOT NULL,        -- hash of the root directory object
            parent TEXT,                    -- previous snapshot id, NULL for the first
            created_at REAL NOT NULL,       -- unix seconds
            kind TEXT NOT NULL,             -- manual | auto | run-before | run-after | safety
            message TEXT NOT NULL DEFAULT '',
            files INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            new_bytes INTEGER NOT NULL DEFAULT 0,
            changed_paths TEXT NOT NULL DEFAULT '[]'   -- JSON list, for auto snapshots
        );
        CREATE INDEX snapshots_created ON snapshots(created_at);
        CREATE INDEX snapshots_root ON snapshots(root_tree);
        CREATE TABLE object_pins (
            hash TEXT PRIMARY KEY,          -- a blob stored by put_file that gc must keep
            created_at REAL NOT NULL
        );
        """,
    ),
]
