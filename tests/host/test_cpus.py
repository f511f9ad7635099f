"""The cores a process may use: affinity, and a cgroup v2 quota below it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.host.cpus import cpu_budget


def test_cpu_budget_follows_affinity_and_the_cgroup_quota(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    cpu_max = tmp_path / "cpu.max"
    for text, cores in (("max 100000\n", 64), ("200000 100000\n", 2), ("150000 100000\n", 2),
                        ("50000 100000\n", 1), ("garbage\n", 64)):
        cpu_max.write_text(text)
        assert cpu_budget(str(cpu_max)) == cores, text
    assert cpu_budget(str(tmp_path / "absent")) == 64
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    cpu_max.write_text("800000 100000\n")
    assert cpu_budget(str(cpu_max)) == 2
