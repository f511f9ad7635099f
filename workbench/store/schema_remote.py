"""Schema of the remote domain: named, forward-only migrations (see workbench.store.migrations).

``remotes`` holds the configured remotes (a name, a URL, an optional endpoint and region; never a
credential). The other tables are local bookkeeping that makes a second push or pull cheap, keyed by
the remote's *location* (``remote_key``: URL plus endpoint), so renaming a remote keeps them:
``remote_objects`` the content hashes known to be on the remote, ``remote_snapshots`` the snapshots
whose whole tree is known to be there, ``remote_records`` the digest of each metadata record last
pushed, and ``remote_bundles`` the bundles already merged by a pull. ``alias_history`` keeps every
value an alias had before a pull replaced it (last writer wins; nothing is forgotten).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0180_remotes",
        """
        CREATE TABLE remotes (
            name TEXT PRIMARY KEY,
            url TEXT NOT NULL,                   -- s3://bucket/prefix or file:///abs/path
            endpoint_url TEXT NOT NULL DEFAULT '',
            region TEXT NOT NULL DEFAULT '',
            is_default INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE TABLE remote_objects (
            remote_key TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (remote_key, hash)
        ) WITHOUT ROWID;
        CREATE TABLE remote_snapshots (
            remote_key TEXT NOT NULL,
            snapshot_id TEXT NOT NULL,
            PRIMARY KEY (remote_key, snapshot_id)
        ) WITHOUT ROWID;
        CREATE TABLE remote_records (
            remote_key TEXT NOT NULL,
            kind TEXT NOT NULL,
            record_id TEXT NOT NULL,
            digest TEXT NOT NULL,                -- BLAKE3 of the record as pushed
            PRIMARY KEY (remote_key, kind, record_id)
        ) WITHOUT ROWID;
        CREATE TABLE remote_bundles (
            remote_key TEXT NOT NULL,
            name TEXT NOT NULL,
            merged_at REAL NOT NULL,
            PRIMARY KEY (remote_key, name)
        ) WITHOUT ROWID;
        CREATE TABLE alias_history (
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            replaced_at REAL NOT NULL,
            replaced_by TEXT NOT NULL DEFAULT ''  -- where the newer value came from
        );
        CREATE INDEX alias_history_name ON alias_history(name, alias);
        """,
    ),
]


# What the last look at the remote's bundle listing found (a pull, or ``remote status``), so that
# ``workbench status`` and the TUI can say "behind" from local bookkeeping, with no network.
MIGRATIONS.append((
    "0190_remote_checks",
    """
        CREATE TABLE remote_checks (
            remote_key TEXT PRIMARY KEY,
            checked_at REAL NOT NULL,            -- when the listing was read
            behind INTEGER NOT NULL              -- bundles listed there and not merged here then
        ) WITHOUT ROWID;
    """,
))
