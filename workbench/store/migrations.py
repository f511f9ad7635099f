"""Forward-only, named migrations, recorded in the ``migrations`` table.

Each domain keeps its schema in its own module (``schema_versioning``, ``schema_tracking`` ...)
as an ordered list of ``(name, sql)`` pairs. :func:`migrate` applies, in order, every migration
whose name is not yet recorded, each in its own transaction. Never edit or reorder a migration
that has shipped: append a new one.
"""

from __future__ import annotations

import importlib
import sqlite3
import time
from collections.abc import Callable

from workbench.store.db import atomic

Migration = tuple[str, str | Callable[[sqlite3.Connection], None]]
"""A name and either SQL statements or a function run inside the migration's transaction (for a
change SQL cannot express, such as re-encoding rows); the function must not commit."""

# Applied in this order; later domains may reference earlier ones' tables.
SCHEMA_MODULES = (
    "workbench.store.schema_versioning",
    "workbench.store.schema_tracking",
    "workbench.store.schema_executors",
    "workbench.store.schema_deploy",
    "workbench.store.schema_workflows",
    "workbench.store.schema_security",
    "workbench.store.schema_remote",
    "workbench.store.schema_monitor",
    "workbench.store.schema_monitor_retrain",
    "workbench.store.schema_drift",
)


def all_migrations() -> list[Migration]:
    """Every migration of every domain, in application order."""
    found: list[Migration] = []
    for module_name in SCHEMA_MODULES:
        module = importlib.import_module(module_name)
        found.extend(module.MIGRATIONS)
    names = [name for name, _ in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate migration names: {sorted(duplicates)}")
    return found


def applied(conn: sqlite3.Connection) -> set[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT name FROM migrations")}


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    done = applied(conn)
    pending = [(n, sql) for n, sql in all_migrations() if n not in done]
    ran: list[str] = []
    for name, sql in pending:
        with atomic(conn):
            # Re-check under the write lock: another process may have migrated meanwhile.
            if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                continue
            if callable(sql):
                sql(conn)
            else:
                for statement in _split(sql):
                    conn.execute(statement)
            conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
        ran.append(name)
    return ran


def _split(sql: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit our transaction)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
