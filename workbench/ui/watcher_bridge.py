"""Runs the project's auto-versioning watcher inside the TUI and reports its state as messages.

The watcher is :class:`workbench.versioning.watch.watcher.Watcher`; this module starts it from a worker
thread, turns its ``WatchEvent`` callbacks into :class:`WatcherState` messages for the app, and
stops it when the app closes or the user toggles it off (``W``). When another process already
watches this project (``BusyError``), the state says so and shows that watcher's presence record.
"""

from __future__ import annotations

import threading
from typing import Any

from textual.app import App

from workbench.errors import BusyError, WorkbenchError
from workbench.ui.messages import WatcherState


def run_watcher(app: App[Any], stop: threading.Event) -> None:
    """Blocking: watch until ``stop`` is set. Posts WatcherState messages to ``app``."""
    ws = app.ws  # type: ignore[attr-defined]
    from workbench.versioning.watch.watcher import Watcher, WatchEvent

    def on_event(event: WatchEvent) -> None:
        if event.kind == "snapshot":
            app.post_message(WatcherState("watching", last_snapshot=event.snapshot_id))
        elif event.kind in ("fallback", "overflow", "error"):
            app.post_message(WatcherState(f"{event.kind}: {event.message}"))
        elif event.kind == "started":
            app.post_message(WatcherState(f"watching ({watcher.mode})"))

    watcher = Watcher(ws, on_event=on_event)
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


def external_watcher(ws: Any) -> str | None:
    """A short description of a watcher run by another process, or None."""
    from workbench.versioning.watch.lock import watch_status

    status = watch_status(ws.paths.locks)
    if not status.active or status.record is None:
        return None
    return f"watched by pid {status.record.pid} ({status.record.mode})"
