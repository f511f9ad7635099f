"""Process liveness and start times on this host, shared by every package that records who is
following what (runs, executor jobs, pipeline and sweep runs)."""

from __future__ import annotations

import os


def pid_exists(pid: int) -> bool:
    """Whether a process with this id runs on this host (one owned by another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_started(pid: int) -> float | None:
    """A process's start time (to tell a reused pid apart), None if it is gone."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None
