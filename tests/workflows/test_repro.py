"""repro end to end with real scripts, real runs and the real store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.errors import BusyError
from workbench.workflows.repro import StageEvent, pipeline_lock
from workbench.workflows.spec import PipelineError


def statuses(ws: Workspace, **kwargs: object) -> dict[str, str]:
    result = ws.workflows.repro(**kwargs)  # type: ignore[arg-type]
    return {rec.stage: rec.status for rec in result.stages}


def test_runs_then_skips_then_reruns_only_what_changed(pipe: Workspace) -> None:
    root = pipe.root
    plan = {i.stage: (i.action, i.reasons) for i in pipe.workflows.plan()}
    assert plan["upper"] == ("run", ["never run"])
    assert plan["count"] == ("run", ["upstream 'repeat' will re-run"])

    result = pipe.workflows.repro()
    assert result.status == "succeeded"
    assert [r.status for r in result.stages] == ["ran", "ran", "ran"]
    assert (root / "out/repeat.txt").read_text() == "HELLO\nHELLO\n"
    assert (root / "count.txt").read_text() == "12"
    # Each stage is an ordinary run linked to the pipeline run.
    run = pipe.runs.get(result.stages[1].run_id or "")
    assert (run.pipeline_run, run.stage, run.status) == (result.pipeline_run, "repeat", "succeeded")
    assert pipe.runs.params(run.id)["k"] == 2

    assert statuses(pipe) == {"upper": "fresh", "repeat": "fresh", "count": "fresh"}
    assert {s: v.state for s, v in pipe.workflows.dag_status().items()} == {
        "upper": "fresh", "repeat": "fresh", "count": "fresh"}

    (root / "params.yaml").write_text("k: 3\n")
    plan = {i.stage: (i.action, i.reasons) for i in pipe.workflows.plan()}
    assert plan["upper"][0] == "skip"
    assert plan["repeat"] == ("run", ["command changed", "param 'k' changed 2 -> 3"])
    assert pipe.workflows.dag_status()["repeat"].state == "stale"
    assert statuses(pipe) == {"upper": "fresh", "repeat": "ran", "count": "ran"}
    assert (root / "count.txt").read_text() == "18"


def test_reverting_a_param_restores_outputs_from_the_store(pipe: Workspace) -> None:
    root = pipe.root
    first = pipe.workflows.repro()
    repeat_run = first.stages[1].run_id
    (root / "params.yaml").write_text("k: 3\n")
    pipe.workflows.repro()
    (root / "params.yaml").write_text("k: 2\n")
    plan = {i.stage: i for i in pipe.workflows.plan()}
    assert plan["repeat"].action == "restore" and plan["repeat"].source_run == repeat_run
    # The dry plan sees the restored output's hash, so count is restorable too (not "upstream will run").
    assert plan["count"].action == "restore"
    events: list[StageEvent] = []
    result = pipe.workflows.repro(on_event=events.append)
    assert [r.status for r in result.stages] == ["fresh", "cached", "cached"]
    assert any(e.status == "cached" and e.source_run == repeat_run for e in events)
    assert (root / "out/repeat.txt").read_text() == "HELLO\nHELLO\n"
    assert (root / "count.txt").read_text() == "12"


def test_deleted_or_edited_output_is_restored_not_rerun(pipe: Workspace) -> None:
    root = pipe.root
    pipe.workflows.repro()
    (root / "count.txt").unlink()
    (root / "out/upper.txt").write_text("edited by hand\n")
    reasons = {i.stage: i.reasons for i in pipe.workflows.plan()}
    assert reasons["upper"] == ["output 'out/upper.txt' modified"]
    assert reasons["count"] == ["output 'count.txt' missing"]
    assert statuses(pipe) == {"upper": "cached", "repeat": "fresh", "count": "cached"}
    assert (root / "count.txt").read_text() == "12"
    assert (root / "out/upper.txt").read_text() == "HELLO\n"


def test_identical_upstream_output_does_not_rerun_downstream(pipe: Workspace) -> None:
    pipe.workflows.repro()
    (pipe.root / "upper.py").write_text("# a comment\n" + (pipe.root / "upper.py").read_text())
    plan = {i.stage: i.action for i in pipe.workflows.plan()}
    assert plan == {"upper": "run", "repeat": "run", "count": "run"}  # dry: outputs unknown yet
    assert statuses(pipe) == {"upper": "ran", "repeat": "fresh", "count": "fresh"}


def test_target_stage_and_force(pipe: Workspace) -> None:
    assert statuses(pipe, stages=["repeat"]) == {"upper": "ran", "repeat": "ran"}
    assert not (pipe.root / "count.txt").exists()
    assert statuses(pipe, stages=["repeat"], force=True) == {"upper": "ran", "repeat": "ran"}
    with pytest.raises(PipelineError) as info:
        pipe.workflows.repro(["nope"])
    assert info.value.one_line() == "no stage 'nope' in workbench.yaml (stages: upper, repeat, count)"


def test_failing_stage_stops_the_pipeline_with_its_log_tail(pipe: Workspace) -> None:
    (pipe.root / "repeat.py").write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    events: list[StageEvent] = []
    result = pipe.workflows.repro(on_event=events.append)
    assert result.status == "failed" and result.failed_stage == "repeat"
    assert [r.status for r in result.stages] == ["ran", "failed", "skipped"]
    assert result.stages[2].reason == "pipeline stopped: stage 'repeat' failed"
    assert "about to fail" in result.log_tail
    assert "stage 'repeat' failed" in result.message and "3" in result.message
    failed = next(e for e in events if e.status == "failed")
    assert "about to fail" in failed.log_tail
    assert pipe.runs.get(result.stages[1].run_id or "").status == "failed"
    assert pipe.workflows.dag_status()["repeat"].state == "failed"


def test_declared_output_not_produced_fails_the_stage(pipe: Workspace) -> None:
    (pipe.root / "upper.py").write_text("print('forgot to write')\n")
    result = pipe.workflows.repro()
    assert result.status == "failed"
    assert result.message == "stage 'upper' did not produce its declared output 'out/upper.txt'"
    assert [r.status for r in result.stages] == ["failed", "skipped", "skipped"]


def test_missing_input_is_a_clear_error(pipe: Workspace) -> None:
    (pipe.root / "raw.txt").unlink()
    with pytest.raises(PipelineError, match=r"workbench.yaml:4:24: stage 'upper': input 'raw.txt' does "
                                            r"not exist and no stage writes it"):
        pipe.workflows.repro()


def test_parallel_jobs_overlap(ws: Workspace) -> None:
    root = ws.root
    script = ("import sys, time\nstart = time.time()\ntime.sleep(0.6)\n"
              "open(sys.argv[1], 'w').write(f'{start} {time.time()}')\n")
    (root / "slow.py").write_text(script)
    (root / "workbench.yaml").write_text("""stages:
  a: {cmd: python slow.py a.txt, inputs: [slow.py], outputs: [a.txt]}
  b: {cmd: python slow.py b.txt, inputs: [slow.py], outputs: [b.txt]}
""")
    result = ws.workflows.repro(jobs=2)
    assert result.status == "succeeded"
    (a0, a1), (b0, b1) = ([float(x) for x in (root / n).read_text().split()] for n in ("a.txt", "b.txt"))
    assert a0 < b1 and b0 < a1, "the two stages did not run at the same time"


def test_check_warns_about_undeclared_reads(pipe: Workspace) -> None:
    (pipe.root / "extra.txt").write_text("x")
    (pipe.root / "upper.py").write_text(
        "import sys\nopen('extra.txt').read()\n"
        "open(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())\n")
    events: list[StageEvent] = []
    result = pipe.workflows.repro(check=True, on_event=events.append)
    warnings = [e.message for e in events if e.status == "warning"]
    assert warnings == ["stage 'upper' read 'extra.txt' but does not declare it as an input"]
    assert result.stages[0].warnings == warnings


def test_one_repro_at_a_time(pipe: Workspace) -> None:
    with pipeline_lock(pipe.paths.locks), pytest.raises(BusyError, match="another repro is running"):
        pipe.workflows.repro()


def test_cancel_stops_the_pipeline(ws: Workspace) -> None:
    (ws.root / "sleep.py").write_text("import time\ntime.sleep(30)\n")
    (ws.root / "workbench.yaml").write_text("""stages:
  a: {cmd: python sleep.py, inputs: [sleep.py], outputs: [a.txt]}
  b: {cmd: python sleep.py, inputs: [a.txt], outputs: [b.txt]}
""")
    cancel = threading.Event()

    def cancel_when_a_runs() -> None:
        """Cancel once stage a's job is running (waited for, not a guessed delay)."""
        deadline = time.monotonic() + 60
        while not any(r.status == "running" for r in ws.runs.list()) and time.monotonic() < deadline:
            time.sleep(0.05)
        cancel.set()

    threading.Thread(target=cancel_when_a_runs, daemon=True).start()
    # Uncancelled, a would sleep 30 s and succeed: the statuses below say the cancel worked.
    result = ws.workflows.repro(cancel_event=cancel)
    assert result.status == "cancelled"
    assert [r.status for r in result.stages] == ["cancelled", "skipped"]


def test_restore_never_writes_through_a_symlink_out_of_the_project(pipe: Workspace, tmp_path: Path) -> None:
    pipe.workflows.repro()
    outside = tmp_path / "outside"
    outside.mkdir()
    import shutil

    shutil.rmtree(pipe.root / "out")
    (pipe.root / "out").symlink_to(outside)
    result = pipe.workflows.repro()
    assert not list(outside.iterdir())
    assert result.status == "failed"
    assert result.message.startswith("refusing to write 'out/upper.txt': its folder leads outside")
