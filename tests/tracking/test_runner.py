"""The run orchestrator with real processes: capture, exit codes, signals, cancel, crashes, concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.errors import ExecutorError
from workbench.executors.base import Channel
from workbench.tracking.events import encode
from workbench.tracking.request import RunRequest

PY = sys.executable


def _script(ws: Workspace, name: str, body: str) -> str:
    (ws.root / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return name


def test_run_records_params_metrics_files_logs_and_models(ws: Workspace) -> None:
    (ws.root / "data.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    (ws.root / "stale.txt").write_text("old", encoding="utf-8")
    _script(ws, "train.py", """
        import argparse, pickle, sys
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float)
        p.add_argument("--epochs", type=int)
        a = p.parse_args()
        rows = open("data.csv").read()
        for e in range(a.epochs):
            print(f"epoch={e} loss={1 / (e + 1)}")
        print("warning: something", file=sys.stderr)
        from sklearn.dummy import DummyClassifier
        with open("model.pkl", "wb") as f:
            pickle.dump(DummyClassifier().fit([[0], [1]], [0, 1]), f)
        with open("notes.txt", "w") as f:
            f.write("done")
    """)
    lines: list[tuple[str, bytes]] = []
    request = RunRequest([PY, "train.py", "--lr", "0.1", "--epochs=3"], name="first", tags=["team=cv"])
    info = ws.runs.execute(request, on_line=lambda c, line: lines.append((c, line)))
    assert info.status == "succeeded" and info.exit_code == 0 and info.name == "first"
    assert info.params == {"lr": 0.1, "epochs": 3} and info.tags == {"team": "cv"}
    assert info.metrics["loss"].count == 3 and info.metrics["loss"].last == pytest.approx(1 / 3)
    assert ws.runs.metric_series(info.id, "loss").steps == [0, 1, 2]
    assert ("stdout", b"epoch=0 loss=1.0") in lines and ("stderr", b"warning: something") in lines
    inputs = {f.path: f for f in ws.runs.inputs(info.id)}
    outputs = {f.path: f for f in ws.runs.outputs(info.id)}
    assert "data.csv" in inputs and inputs["data.csv"].hash == ws.versions.hash_file(ws.root / "data.csv")
    assert {"model.pkl", "notes.txt"} <= set(outputs) and "stale.txt" not in outputs
    assert info.snapshot_before and info.snapshot_after and info.snapshot_before != info.snapshot_after
    (model,) = ws.runs.run_models(info.id)
    assert model.name == "model" and model.version == 1 and model.path == "model.pkl"
    assert model.hash == outputs["model.pkl"].hash
    exported = ws.root / ".workbench" / "tmp" / "exported"
    ws.versions.export_object(model.hash, exported)
    assert exported.read_bytes() == (ws.root / "model.pkl").read_bytes()
    env = info.environment
    assert env["python"] and "pytest" in env["packages"] and env["cpu_count"] >= 1
    logs = list(ws.runs.log_lines(info.id))
    # stdout and stderr are read by separate threads: their interleaving is not defined
    assert next(line.text for line in logs if line.stream == "stdout") == "epoch=0 loss=1.0"
    assert "warning: something" in [line.text for line in logs if line.stream == "stderr"]


def test_exit_code_and_signals(ws: Workspace) -> None:
    failed = ws.runs.execute([PY, "-c", "import sys; print('loss: 1'); sys.exit(3)"])
    assert failed.status == "failed" and failed.exit_code == 3 and "3" in failed.reason
    killed = ws.runs.execute([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert killed.status == "failed" and killed.exit_code == 137 and "SIGKILL" in killed.reason


def test_command_not_found_creates_nothing(ws: Workspace) -> None:
    with pytest.raises(ExecutorError, match="command not found"):
        ws.runs.execute(["no-such-program-xyz", "--lr", "1"])
    assert ws.runs.list() == []


def test_binary_garbage_on_stdout(ws: Workspace) -> None:
    info = ws.runs.execute([PY, "-c", "import os; os.write(1, bytes(range(256)) * 50 + b'\\nacc=0.5\\n')"])
    assert info.status == "succeeded" and info.metrics["acc"].last == 0.5
    assert len(list(ws.runs.log_lines(info.id))) >= 2


def test_a_reader_that_dies_leaves_the_job_running_and_the_loss_on_record(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread reading the job's stdout fails after 1,000 lines (a fault put into its line
    handling): the job still runs to its end (the pipe is drained, never left full), and the run
    says its stdout was not read to the end, with a dropped event, rather than look complete."""
    from workbench.executors import local

    calls = {"n": 0}
    real = local.classify

    def failing(channel: Channel, line: bytes, marker: bytes = b"") -> tuple[Channel, bytes]:
        if channel == "stdout":
            calls["n"] += 1
            if calls["n"] > 1000:
                raise RuntimeError("reader fault")
        return real(channel, line, marker)

    monkeypatch.setattr(local, "classify", failing)
    code = "import sys\nfor i in range(200000): print(f'step {i} loss={i}')\nsys.exit(0)"
    info = ws.runs.execute([PY, "-c", code])
    full = ws.runs.get(info.id)
    assert info.status == "succeeded" and info.exit_code == 0
    assert full.dropped_events == 1
    notes = [x.text for x in ws.runs.log_lines(info.id) if x.stream == "workbench"]
    assert any("could not read the job's stdout to its end (RuntimeError: reader fault)" in n for n in notes)
    assert info.metrics["loss"].count == 1000


def test_json_lines_and_trainer_dicts_on_stdout_are_metrics(ws: Workspace) -> None:
    """A script that logs JSON lines, and one that logs as Hugging Face's Trainer does (printed
    dicts), record their metrics with no change to either."""
    code = (
        "import json\n"
        "for step in range(5): print(json.dumps({'step': step, 'loss': 1 / (step + 1)}))\n"
        "for i in range(3): print({'loss': 0.5 - i / 10, 'learning_rate': 5e-05, 'epoch': i / 3})\n"
        "print({'eval_loss': 0.25, 'eval_accuracy': 0.875, 'epoch': 1.0})\n"
    )
    info = ws.runs.execute([PY, "-c", code])
    assert info.status == "succeeded"
    loss = ws.runs.metric_series(info.id, "loss")
    assert loss.steps == list(range(8))  # the printed dicts' points follow the JSON lines' steps
    assert loss.values == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2, 0.5, 0.4, 0.3])
    assert info.metrics["loss"].count == 8 and info.metrics["learning_rate"].count == 3
    assert info.metrics["eval_accuracy"].last == 0.875


def test_a_progress_bar_redrawn_on_stdout_gives_one_point_per_line(ws: Workspace) -> None:
    """Lightning-style bars redrawn with carriage returns into the pipe: each epoch's line is read
    by the update left on screen."""
    code = (
        "import sys\n"
        "for epoch in range(3):\n"
        "    for i in range(200):\n"
        "        sys.stdout.write(f'Epoch {epoch}: {i}/200 [train_loss={epoch + i / 1000:.3f}]\\r')\n"
        "    print(f'Epoch {epoch}: 200/200 [train_loss={epoch + 0.5}]')\n"
    )
    info = ws.runs.execute([PY, "-c", code])
    loss = ws.runs.metric_series(info.id, "train_loss")
    assert (loss.steps, loss.values) == ([0, 1, 2], [0.5, 1.5, 2.5])


def test_name_space_value_lines_on_stdout_are_metrics_at_their_step(ws: Workspace) -> None:
    """nanoGPT's training loop, as printed: ``iter N: loss X, time Yms, mfu Z%`` each 10 iterations
    and ``step N: train loss X, val loss Y`` at each evaluation."""
    code = (
        "for it in range(0, 101, 10):\n"
        "    if it % 50 == 0:\n"
        "        print(f'step {it}: train loss {3 - it / 100:.4f}, val loss {3.1 - it / 100:.4f}')\n"
        "    print(f'iter {it}: loss {3 - it / 100:.4f}, time {20 + it / 10:.2f}ms, mfu {it / 10:.2f}%')\n"
    )
    info = ws.runs.execute([PY, "-c", code])
    assert info.status == "succeeded"
    loss = ws.runs.metric_series(info.id, "loss")
    assert loss.steps == list(range(0, 101, 10)) and loss.values[-1] == pytest.approx(2.0)
    val = ws.runs.metric_series(info.id, "val_loss")
    assert (val.steps, val.values) == ([0, 50, 100], pytest.approx([3.1, 2.6, 2.1]))
    assert set(info.metrics) == {"loss", "time", "mfu", "train_loss", "val_loss"}


def test_metrics_on_stderr_are_read_but_not_from_warnings_or_tracebacks(ws: Workspace) -> None:
    """Lightning's bar and Python's logging write to stderr; a warning or a traceback quoting code
    (``lr = 0.5``) is no metric."""
    code = (
        "import logging, sys, warnings\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "for e in range(3):\n"
        "    sys.stderr.write(f'Epoch {e}: 100%|##| 10/10 [00:01<00:00, train_loss={1 / (e + 1):.3f}]\\n')\n"
        "logging.info('epoch=%d val_acc=%.2f', 5, 0.9)\n"
        "warnings.warn('momentum=0.9 is ignored')\n"
        "try:\n"
        "    lr = 0.5; raise ValueError(f'bad rate={lr}')\n"
        "except ValueError:\n"
        "    import traceback; traceback.print_exc()\n"
    )
    info = ws.runs.execute([PY, "-c", code])
    assert info.status == "succeeded"
    assert set(info.metrics) == {"train_loss", "val_acc"}
    loss = ws.runs.metric_series(info.id, "train_loss")
    assert (loss.steps, loss.values) == ([0, 1, 2], pytest.approx([1.0, 0.5, 0.333]))
    assert ws.runs.metric_series(info.id, "val_acc").steps == [5]


def test_a_file_the_run_writes_then_reads_back_is_its_output_not_its_input(ws: Workspace) -> None:
    """Inputs are what the files held before the run touched them: a cache the script writes and
    loads again is an output only; "r+" and "a+" read the old content (inputs and outputs); "w+"
    starts empty (an output only); a file read and then rewritten is both."""
    for name in ("old.txt", "upd.txt", "app.txt", "wplus.txt"):
        (ws.root / name).write_text("before\n")
    code = (
        "import os\n"
        "open('cache.bin', 'wb').write(b'x' * 100)\n"
        "open('cache.bin', 'rb').read()\n"
        "open(os.path.join('.', 'cache.bin'), 'rb').read()  # another spelling of the same path\n"
        "data = open('old.txt').read(); open('old.txt', 'w').write(data + 'after')\n"
        "open('upd.txt', 'r+').write('x')\n"
        "open('app.txt', 'a+').write('x')\n"
        "open('wplus.txt', 'w+').write('x')\n"
        "import subprocess; subprocess.run(['sh', '-c', 'echo made > made.txt'], check=True)\n"
        "open('made.txt').read()  # written where the hook does not see (as torch.save writes)\n"
    )
    info = ws.runs.execute([PY, "-c", code])
    assert info.status == "succeeded"
    inputs = {f.path for f in ws.runs.inputs(info.id) if f.source == "audit"}
    outputs = {f.path for f in ws.runs.outputs(info.id)}
    assert inputs == {"old.txt", "upd.txt", "app.txt"}
    assert {"cache.bin", "old.txt", "upd.txt", "app.txt", "wplus.txt", "made.txt"} <= outputs


def test_the_same_relative_name_after_a_chdir_is_another_input(ws: Workspace) -> None:
    """A file opened again is settled by its name as opened, until the process changes folder."""
    for folder in ("a", "b"):
        (ws.root / folder).mkdir()
        (ws.root / folder / "x.txt").write_text(folder)
    code = "import os\nos.chdir('a')\nopen('x.txt').read()\nos.chdir('../b')\nopen('x.txt').read()\n"
    info = ws.runs.execute([PY, "-c", code])
    assert {f.path for f in ws.runs.inputs(info.id) if f.source == "audit"} == {"a/x.txt", "b/x.txt"}


def test_stdout_metrics_can_be_switched_off(ws: Workspace) -> None:
    ws.config.tracking.capture_stdout_metrics = False
    info = ws.runs.execute([PY, "-c", "print('loss=0.5')"])
    assert info.metrics == {}


def test_marked_events_on_stdout_are_ingested_not_logged(ws: Workspace) -> None:
    line = "@@workbench@@ " + encode({"e": "metric", "k": "pod_loss", "v": 0.5, "s": 4}).decode().strip()
    info = ws.runs.execute([PY, "-c", f"print({line!r})"])
    assert info.metrics["pod_loss"].last_step == 4
    assert not [x for x in ws.runs.log_lines(info.id) if "@@workbench@@" in x.text]


def test_cancel_event_cancels(ws: Workspace) -> None:
    cancel = threading.Event()
    _script(ws, "slow.py", """
        import time
        try:
            print("started", flush=True)  # inside the try: the cancel may come before the sleep
            time.sleep(60)
        except KeyboardInterrupt:
            print("cleaned up", flush=True)
            raise
    """)

    def on_line(channel: str, line: bytes) -> None:
        if line == b"started":
            cancel.set()

    # Uncancelled, the job would sleep 60 s and succeed: the status says the cancel worked, with no
    # elapsed-time budget (a loaded machine is slow, not wrong).
    info = ws.runs.execute([PY, "slow.py"], on_line=on_line, cancel_event=cancel)
    assert info.status == "cancelled", info.reason
    assert "cleaned up" in [x.text for x in ws.runs.log_lines(info.id)]


def test_concurrent_runs_never_see_locked_database(ws: Workspace) -> None:
    _script(ws, "spam.py", """
        import workbench
        for i in range(3000):
            workbench.log_metric("x", i)
            if i % 500 == 0:
                print(f"step={i} y={i}", flush=True)
    """)
    results: list[object] = []

    def one() -> None:
        with Workspace.open(ws.root) as other:
            try:
                results.append(other.runs.execute([PY, "spam.py"]))
            except Exception as exc:  # pragma: no cover - the failure we look for
                results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 3
    for info in results:
        assert not isinstance(info, Exception), info
        assert info.status == "succeeded", info.reason  # type: ignore[attr-defined]
        assert info.metrics["x"].count == 3000  # type: ignore[attr-defined]


def test_runner_killed_mid_run_is_shown_failed_with_events_kept(ws: Workspace, project_dir: Path) -> None:
    _script(ws, "long.py", """
        import time, workbench
        for i in range(100):
            workbench.log_metric("loss", 1.0 / (i + 1))
        workbench.finish()  # written to the events file now
        print("ready", flush=True)
        time.sleep(60)
    """)
    runner = subprocess.Popen(
        [PY, "-m", "workbench", "run", "--", PY, "long.py"], cwd=project_dir, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    assert runner.stdout is not None
    assert runner.stdout.readline().strip() == b"ready"
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 60  # the next reader marks it failed; poll rather than guess a delay
    while (info := ws.runs.list()[0]).status == "running":
        assert time.monotonic() < deadline, "the killed run is still shown running"
        time.sleep(0.05)
    try:
        assert len(ws.runs.list()) == 1
        assert info.status == "failed" and "killed" in info.reason
        assert info.metrics["loss"].count == 100
    finally:
        for pid in _orphans(project_dir / "long.py"):
            os.kill(pid, signal.SIGKILL)


def _orphans(script: Path) -> list[int]:
    """The training process the killed runner left behind (ours, found by its script path)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmd = proc.info.get("cmdline") or []
        if "long.py" in cmd and proc.info.get("cwd") == str(script.parent):
            found.append(proc.pid)
    return found


def test_existing_sitecustomize_still_runs(ws: Workspace, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "othersite"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import builtins\nbuiltins.CHAINED = 'yes'\n", encoding="utf-8")
    # monkeypatch puts the previous PYTHONPATH back: deleting it made every later test's
    # 'python -m workbench' import another checkout's workbench
    monkeypatch.setenv("PYTHONPATH", str(other))
    (ws.root / "in.txt").write_text("hi", encoding="utf-8")
    code = "import builtins; open('in.txt').read(); print('chained', builtins.CHAINED)"
    info = ws.runs.execute([PY, "-c", code])
    assert "chained yes" in [x.text for x in ws.runs.log_lines(info.id)]
    assert [f.path for f in ws.runs.inputs(info.id)] == ["in.txt"]


def test_rerun_runs_the_input_snapshot_in_a_scratch_folder(ws: Workspace) -> None:
    (ws.root / "value.txt").write_text("1", encoding="utf-8")
    _script(ws, "read.py", "print('v=' + open('value.txt').read())\n")
    first = ws.runs.execute([PY, "read.py"])
    (ws.root / "value.txt").write_text("2", encoding="utf-8")
    again = ws.runs.rerun(first.id)
    assert again.parent_run == first.id and again.snapshot_before == first.snapshot_before
    assert again.metrics["v"].last == 1.0  # the old input, not the edited file
    assert (ws.root / "value.txt").read_text(encoding="utf-8") == "2"


def test_rerun_outputs_come_from_the_scratch_folder_too(ws: Workspace) -> None:
    """A non-Python command (no audit hook) writing in the scratch folder: found by the manifest
    (the model differs between the runs: the shell's pid)."""
    (ws.root / "value.txt").write_text("1", encoding="utf-8")
    (ws.root / ".workbenchignore").write_text("*.tmp\n", encoding="utf-8")
    # model.txt: a LightGBM text model's first lines, which the registry knows by content
    command = ["sh", "-c", "cat value.txt > copy.txt; printf 'tree\\nversion=v4\\n# %s\\n' $$ > model.txt;"
               " echo y > junk.tmp"]
    first = ws.runs.execute(command)
    again = ws.runs.rerun(first.id)
    outputs = {f.path: f for f in ws.runs.outputs(again.id)}
    assert set(outputs) == {"copy.txt", "model.txt"}
    assert outputs["copy.txt"].source == "snapshot" and outputs["copy.txt"].hash
    assert [(m.path, m.framework) for m in ws.runs.run_models(again.id)] == [("model.txt", "lightgbm")]
