"""Schema of the deploy domain: named, forward-only migrations (see workbench.store.migrations).

``deployments`` holds one row per deployment name (its current state); ``deployment_revisions``
keeps every change to it (deploy, scale, rollback, undeploy) with who did it, when, which model
version, how many replicas, the exact spec and objects applied, and how it ended. Rollback reads the
spec of an earlier revision back from here and applies it again.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "deploy_0001_deployments",
        """
        CREATE TABLE deployments (
            name TEXT PRIMARY KEY,
            target TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            run_id TEXT,
            artifact_hash TEXT NOT NULL,
            framework TEXT NOT NULL,
            replicas INTEGER NOT NULL,
            revision INTEGER NOT NULL,
            state TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            endpoint TEXT NOT NULL DEFAULT '',
            runtime TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE deployment_revisions (
            deployment TEXT NOT NULL REFERENCES deployments(name),
            revision INTEGER NOT NULL,
            action TEXT NOT NULL,
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            run_id TEXT,
            artifact_hash TEXT NOT NULL,
            replicas INTEGER NOT NULL,
            spec TEXT NOT NULL,
            objects TEXT NOT NULL DEFAULT '[]',
            deployed_by TEXT NOT NULL,
            deployed_at REAL NOT NULL,
            result TEXT NOT NULL DEFAULT 'pending',
            message TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (deployment, revision)
        );
        """,
    ),
]
