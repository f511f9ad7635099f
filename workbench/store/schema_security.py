"""Schema of the boundary between jobs, the store and the host (docs/security.md).

``run_refusals`` keeps, per run, every path the boundary refused: an event of a container or pod
naming a file outside its workspace, a model outside the project, a file copy-back would not write.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0150_run_refusals",
        """
        CREATE TABLE run_refusals (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,                -- 1, 2 ... in the order refused
            kind TEXT NOT NULL,                  -- the event kind (model, input, output) or copy-back
            path TEXT NOT NULL,                  -- as the job named it (cut at 1000 characters)
            reason TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;
        """,
    ),
]
