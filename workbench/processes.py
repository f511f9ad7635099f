"""Process liveness on this host, shared by the packages that record who is following what."""

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
