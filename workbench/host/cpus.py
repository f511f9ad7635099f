"""How many cores this process may use: for sizing worker processes and thread pools."""

from __future__ import annotations

import os


def cpu_budget(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The cores this process may use: those it may run on, fewer where a cgroup (v2) quota caps it
    (a container given 2 CPUs on a 64-core node sees 64 but gets the time of 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        with open(cpu_max, encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores
