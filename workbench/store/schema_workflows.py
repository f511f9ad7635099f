"""Schema of the workflows domain: named, forward-only migrations (see workbench.store.migrations).

``pipeline_runs`` is one ``workbench repro``; ``stage_runs`` holds what happened to each stage in it
(ran, cached, fresh, failed, skipped) with the fingerprint of its inputs and the content hashes of
the outputs it left, which is how a later repro finds a stage it can skip or restore. Stage runs
point at the tracking ``runs`` row that executed them (``run_id``) or supplied their cached
outputs (``source_run``). ``sweeps`` and ``sweep_members`` group the runs of one sweep.
``workflow_hash_cache`` is a stat index so unchanged inputs are not re-read on every repro.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0501_workflows",
        """
        CREATE TABLE pipeline_runs (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            ended_at REAL,
            status TEXT NOT NULL,               -- running | succeeded | failed | cancelled
            targets TEXT NOT NULL DEFAULT '[]', -- JSON list of stage names asked for ([] = all)
            force INTEGER NOT NULL DEFAULT 0,
            jobs INTEGER NOT NULL DEFAULT 1,
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER,
            message TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX pipeline_runs_started ON pipeline_runs(started_at);

        CREATE TABLE stage_runs (
            pipeline_run TEXT NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
            stage TEXT NOT NULL,
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,               -- pending | running | ran | cached | fresh | failed | skipped
            run_id TEXT,                        -- runs.id that executed the stage
            source_run TEXT,                    -- runs.id whose outputs a cached/fresh stage reuses
            fingerprint TEXT,
            parts TEXT NOT NULL DEFAULT '{}',   -- JSON Fingerprint (command, params, input hashes)
            outputs TEXT NOT NULL DEFAULT '{}', -- JSON project path -> content hash
            reason TEXT NOT NULL DEFAULT '',
            warnings TEXT NOT NULL DEFAULT '[]',
            started_at REAL,
            ended_at REAL,
            PRIMARY KEY (pipeline_run, stage)
        );
        CREATE INDEX stage_runs_fingerprint ON stage_runs(fingerprint, status);
        CREATE INDEX stage_runs_stage ON stage_runs(stage, ended_at);

        CREATE TABLE sweeps (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            ended_at REAL,
            status TEXT NOT NULL,               -- running | succeeded | failed | cancelled
            command TEXT NOT NULL,              -- JSON argv template with {param} placeholders
            space TEXT NOT NULL,                -- JSON list of the --param specs as given
            mode TEXT NOT NULL,                 -- grid | random
            size INTEGER NOT NULL,
            parallel INTEGER NOT NULL DEFAULT 1,
            executor TEXT NOT NULL DEFAULT 'local',
            seed INTEGER
        );
        CREATE INDEX sweeps_created ON sweeps(created_at);

        CREATE TABLE sweep_members (
            sweep_id TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            params TEXT NOT NULL,               -- JSON name -> value
            run_id TEXT,
            status TEXT NOT NULL,               -- pending | running | succeeded | failed | cancelled
            PRIMARY KEY (sweep_id, idx)
        ) WITHOUT ROWID;
        CREATE INDEX sweep_members_run ON sweep_members(run_id);

        CREATE TABLE workflow_hash_cache (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            ino INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            hash TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
]
