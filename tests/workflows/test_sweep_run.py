"""Sweeps end to end: real runs grouped under a sweep, ranking, cancel, failures."""

from __future__ import annotations

import sys
import threading
import time

from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest
from workbench.workflows.sweep_runner import SweepEvent

TRAIN = """import argparse
p = argparse.ArgumentParser()
p.add_argument('--lr', type=float)
p.add_argument('--depth', type=int)
a = p.parse_args()
print(f'loss: {abs(a.lr - 0.01) + a.depth / 100}')
"""


def test_grid_sweep_runs_each_member_and_ranks_them(ws: Workspace) -> None:
    (ws.root / "train.py").write_text(TRAIN)
    events: list[SweepEvent] = []
    info = ws.workflows.sweep(RunRequest([sys.executable, "train.py", "--lr", "{lr}", "--depth", "{depth}"],
                                         name="grid"),
                              ["lr=0.001,0.01", "depth=3:4"], parallel=2, on_event=events.append)
    assert info.status == "succeeded" and info.size == 4 and info.counts == {"succeeded": 4}
    assert [m.params for m in info.members] == [{"lr": 0.001, "depth": 3}, {"lr": 0.001, "depth": 4},
                                                {"lr": 0.01, "depth": 3}, {"lr": 0.01, "depth": 4}]
    for member in info.members:
        run = ws.runs.get(member.run_id or "")
        assert run.sweep_id == info.id and run.status == "succeeded"
        assert run.name == f"grid-{member.idx}"
        assert ws.runs.params(run.id)["lr"] == member.params["lr"]
    assert sorted(e.idx for e in events if e.status == "succeeded") == [0, 1, 2, 3]

    _, ranked = ws.workflows.rank("grid", "loss")
    assert ranked[0].params == {"lr": 0.01, "depth": 3}
    assert ranked[0].metric == 0.03
    _, worst_first = ws.workflows.rank(info.id[:8], "loss", order="max")
    assert worst_first[0].params == {"lr": 0.001, "depth": 4}
    assert ws.workflows.first_metric(info) == "loss"
    assert [s.id for s in ws.workflows.sweeps()] == [info.id]


def test_failing_member_marks_the_sweep_failed(ws: Workspace) -> None:
    (ws.root / "t.py").write_text("import sys\nsys.exit(int(sys.argv[1]))\n")
    info = ws.workflows.sweep([sys.executable, "t.py", "{code}"], ["code=0,4"])
    assert info.status == "failed"
    assert [m.status for m in info.members] == ["succeeded", "failed"]


def test_cancel_stops_pending_and_cancels_running(ws: Workspace) -> None:
    (ws.root / "sleep.py").write_text("import sys, time\ntime.sleep(30)\n")
    cancel = threading.Event()

    def cancel_when_two_run() -> None:
        """Cancel once both parallel members are running jobs (waited for, not a guessed delay)."""
        deadline = time.monotonic() + 60
        while sum(r.status == "running" for r in ws.runs.list()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        cancel.set()

    threading.Thread(target=cancel_when_two_run, daemon=True).start()
    # Uncancelled, each job would sleep 30 s and succeed: the statuses below say the cancel worked.
    info = ws.workflows.sweep([sys.executable, "sleep.py", "{i}"], ["i=1:4"], parallel=2,
                              cancel_event=cancel)
    assert info.status == "cancelled"
    statuses = [m.status for m in info.members]
    assert statuses == ["cancelled"] * 4
    assert [bool(m.run_id) for m in info.members] == [True, True, False, False]
    assert ws.runs.get(info.members[0].run_id or "").status == "cancelled"
