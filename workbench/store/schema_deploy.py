"""Schema of the deploy domain: named, forward-only migrations (see workbench.store.migrations)."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = []
