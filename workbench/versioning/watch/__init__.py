"""Auto-versioning: the watcher and its parts (debounce, event filter, inotify observer, lock,
pending-changes record, retention of auto snapshots).

Kept empty on purpose: ``workbench status`` imports :mod:`pending` alone and must not pay for the
watcher, watchdog or ``dataclasses`` (see docs/store.md). Import the module you need, e.g.
``from workbench.versioning.watch.watcher import Watcher``.
"""
