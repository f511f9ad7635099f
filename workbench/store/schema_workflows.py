"""Schema of the workflows domain: named, forward-only migrations (see workbench.store.migrations)."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = []
