"""``workbench watch`` as a real process: --json events, --status, kill -9 and catch-up, Ctrl+C, prune."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace


class WatchProcess:
    """``workbench watch --json`` in the background, its JSON lines read by a thread."""

    def __init__(self, cwd: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "watch", "--json", "--quiet", "0.2", *extra],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(self, kind: str, start: int = 0, timeout: float = 240.0,
                 path: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.lines[start:]:
                    if event["event"] == kind and (path is None or path in event["paths"]):
                        return event
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, (
                    f"no {kind} event; got {[e['event'] for e in self.lines]}, rc={self.proc.poll()}")
                self._cond.wait(left)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(60)


def test_kill_9_loses_nothing_and_restart_catches_up(ws: Workspace, project_dir: Path) -> None:
    (project_dir / "a.txt").write_text("one\n")
    first = WatchProcess(project_dir)
    try:
        first.wait_for("snapshot")  # catch-up of a.txt
        mark = len(first.lines)
        (project_dir / "b.txt").write_text("two\n")
        snap_b = first.wait_for("snapshot", start=mark, path="b.txt")

        status = run_workbench(project_dir, "watch", "--status", "--json")
        data = json.loads(status.stdout)
        assert data["active"] and data["pid"] == first.proc.pid and data["mode"] == "events"

        second = run_workbench(project_dir, "watch")
        assert second.returncode == 2 and f"pid {first.proc.pid}" in second.stderr
        assert "Traceback" not in second.stderr

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(240)
    finally:
        first.close()
    stale = json.loads(run_workbench(project_dir, "watch", "--status", "--json").stdout)
    assert not stale["active"] and stale["stale"] and stale["pid"] == first.proc.pid
    (project_dir / "c.txt").write_text("written while no watcher ran\n")
    (project_dir / "a.txt").unlink()

    again = WatchProcess(project_dir)
    try:
        started = again.wait_for("started")
        assert f"pid {first.proc.pid}" in started["message"]  # took over the dead watcher's lock
        catch_up = again.wait_for("snapshot")
        ws2 = Workspace.open(project_dir)
        files = ws2.versions.files(catch_up["snapshot"])
        assert set(files) == {"b.txt", "c.txt"}
        assert ws2.versions.read_file(snap_b["snapshot"], "b.txt") == b"two\n"
        assert ws2.versions.fsck().ok
        ws2.close()
        again.proc.send_signal(signal.SIGINT)  # Ctrl+C: a clean stop
        assert again.proc.wait(240) == 0
        again._reader.join(240)
        assert again.lines[-1]["event"] == "stopped"
        assert again.proc.stderr is not None and "Traceback" not in again.proc.stderr.read()
    finally:
        again.close()
    after = json.loads(run_workbench(project_dir, "watch", "--status", "--json").stdout)
    assert after == {**after, "active": False, "stale": False, "pid": None}
    text = run_workbench(project_dir, "watch", "--status")
    assert text.returncode == 0 and "no watcher running" in text.stdout


def test_prune_auto_cli(ws: Workspace, project_dir: Path) -> None:
    now = time.time()
    with ws.atomic() as db:
        for i in range(5):  # five autos two days ago, within one clock hour of each other
            db.execute("INSERT INTO snapshots (id, root_tree, parent, created_at, kind) "
                       "VALUES (?, 't', NULL, ?, 'auto')", (f"{i:064x}", now - 2 * 86400 + i))
        db.execute("INSERT INTO snapshots (id, root_tree, parent, created_at, kind) "
                   "VALUES (?, 't', NULL, ?, 'manual')", ("f" * 64, now))
    dry = run_workbench(project_dir, "prune-auto", "--rule", "1h:all,30d:1d", "--dry-run", "--json")
    report = json.loads(dry.stdout)
    assert report["dry_run"] and report["examined"] == 5 and len(report["deleted"]) <= 4
    assert len(report["deleted"]) >= 3  # at most two clock days are touched by five seconds
    done = json.loads(run_workbench(project_dir, "prune-auto", "--rule", "1h:all,30d:1d", "--json").stdout)
    assert done["deleted"] == report["deleted"]
    left = ws.db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    assert left == 6 - len(done["deleted"])
    bad = run_workbench(project_dir, "prune-auto", "--rule", "1h:sometimes")
    assert bad.returncode == 2 and "retention" in bad.stderr and "Traceback" not in bad.stderr
    assert os.path.exists(project_dir / ".workbench")
