"""Alerts: run the project's ``[monitor] on_alert`` command once each time a deployment's state changes.

The last state per deployment lives in ``monitor_states``; the check-and-set runs in one write
transaction, so two processes monitoring at once fire one alert, not two. The command is an argv
(no shell) and gets the alert as one JSON document on stdin; its failure is reported, never raised.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from typing import Any

from workbench.monitor.report import Report
from workbench.store.db import atomic

ALERT_TIMEOUT = 30.0


def alert_document(report: Report, previous: str | None, now: float) -> dict[str, Any]:
    return {
        "deployment": report.deployment, "model": report.model, "version": report.version,
        "state": report.state, "previous": previous, "time": now, "window": report.window,
        "features": [v.to_dict() for v in report.features if v.state != "ok"][:20],
        "prediction": {k: report.prediction[k] for k in ("metric", "score", "state")
                       if k in report.prediction},
        "labels": {k: v for k, v in report.labels.items() if not isinstance(v, dict | list)},
    }


def record_state(db: sqlite3.Connection, report: Report, now: float) -> str | bool | None:
    """Store the report's state; the previous state when it changed (None: first seen), else False."""
    with atomic(db):
        row = db.execute("SELECT state FROM monitor_states WHERE deployment = ?",
                         (report.deployment,)).fetchone()
        previous = row[0] if row else None
        detail = json.dumps({"model": report.model, "version": report.version, "window": report.window,
                             "worst": [v.to_dict() for v in report.features[:3]]})
        db.execute("INSERT OR REPLACE INTO monitor_states (deployment, state, detail, updated_at)"
                   " VALUES (?, ?, ?, ?)", (report.deployment, report.state, detail, now))
    if previous == report.state or (previous is None and report.state == "ok"):
        return False
    return previous


def run_alert(argv: list[str], document: dict[str, Any]) -> str | None:
    """Run the alert command with the document on stdin; a one-line problem, or None when it worked."""
    try:
        done = subprocess.run(argv, input=json.dumps(document).encode(), capture_output=True,
                              timeout=ALERT_TIMEOUT, check=False)
    except FileNotFoundError:
        return f"alert command not found: {argv[0]}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"alert command {argv[0]} failed: {exc}"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"alert command {argv[0]} exited with {done.returncode}: {tail[0][:200]}"
    return None


def stored_states(db: sqlite3.Connection) -> dict[str, str]:
    """The last recorded state of every monitored deployment."""
    rows = db.execute("SELECT deployment, state FROM monitor_states")
    return {str(name): str(state) for name, state in rows}
