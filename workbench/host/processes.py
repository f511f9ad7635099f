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
    if os.path.isdir("/proc/self"):  # Linux: read what psutil reads, without importing it (~15 ms)
        return _proc_started(pid)
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def _proc_started(pid: int) -> float | None:
    """psutil's ``Process(pid).create_time()`` on Linux: the boot time (``btime`` in /proc/stat)
    plus the process's start in clock ticks (field 22 of /proc/PID/stat), the same float."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        ticks = float(data[data.rfind(b")") + 2:].split()[19])
        return ticks / os.sysconf("SC_CLK_TCK") + _boot_time()
    except (OSError, ValueError, IndexError):
        return None


def _boot_time() -> float:
    with open("/proc/stat", "rb") as handle:
        for line in handle:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")
