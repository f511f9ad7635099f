"""Runs the project's auto-versioning watcher inside the TUI and reports its state as messages.

The watcher comes from the versioning service (``ws.versions.watcher(on_event)``); this module
starts it from a worker thread, turns its ``WatchEvent`` callbacks into :class:`WatcherState`
messages for the app, and stops it when the app closes or the user toggles it off (``W``). When
another process already watches this project (``BusyError``), the state says so.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from workbench.errors import BusyError, WorkbenchError
from workbench.ui.messages import WatcherState

if TYPE_CHECKING:
    from workbench.core.workspace import Workspace
    from workbench.ui.app import WorkbenchApp
    from workbench.versioning.watch.watcher import WatchEvent


def run_watcher(app: WorkbenchApp, stop: threading.Event) -> None:
    """Blocking: watch until ``stop`` is set. Posts WatcherState messages to ``app``."""

    def on_event(event: WatchEvent) -> None:
        if event.kind == "snapshot":
            app.post_message(WatcherState("watching", last_snapshot=event.snapshot_id))
        elif event.kind in ("fallback", "overflow", "error"):
            app.post_message(WatcherState(f"{event.kind}: {event.message}"))
        elif event.kind == "started":
            app.post_message(WatcherState(f"watching ({watcher.mode})"))

    watcher = app.ws.versions.watcher(on_event)
    try:
        watcher.start()
    except BusyError as exc:
        app.post_message(WatcherState(f"another watcher: {exc.message}"))
        return
    except WorkbenchError as exc:
        app.post_message(WatcherState(f"error: {exc.message}"))
        return
    try:
        stop.wait()
    finally:
        watcher.stop(flush=True, timeout=10)
        app.post_message(WatcherState("off"))


def external_watcher(ws: Workspace) -> str | None:
    """A short description of a watcher run by another process, or None."""
    status = ws.versions.watch_status()
    if not status.active or status.record is None:
        return None
    return f"watched by pid {status.record.pid} ({status.record.mode})"
