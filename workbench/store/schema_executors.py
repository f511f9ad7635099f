"""Schema of the executors domain: named, forward-only migrations (see workbench.store.migrations).

``executor_jobs`` remembers where each remote run actually lives (a container id, a Job's namespace
and name, the kube context) and which workbench process follows it, so that a restarted workbench
can re-attach to the run or mark it lost with the reason instead of leaving it "running" forever.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "executors_0001_jobs",
        """
        CREATE TABLE executor_jobs (
            run_id      TEXT PRIMARY KEY,
            executor    TEXT NOT NULL,
            handle      TEXT NOT NULL DEFAULT '{}',
            runner_pid  INTEGER,
            runner_host TEXT NOT NULL DEFAULT '',
            state       TEXT NOT NULL DEFAULT 'running',
            reason      TEXT NOT NULL DEFAULT '',
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL
        );
        CREATE INDEX executor_jobs_state ON executor_jobs (state);
        """,
    ),
]
