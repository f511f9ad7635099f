"""A plain ``python train.py`` run: ``workbench.init`` names and tags it, and what it prints is
stored as its log; under ``workbench run`` the script's name applies only where ``-n`` gave none."""

from __future__ import annotations

import sys
import textwrap

from tests.tracking.test_api import _python
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

SCRIPT = """
import logging, sys
import workbench
workbench.init(name="  baseline  run ", tags={"team": "vision"}, params={"lr": 0.1})
print("epoch 1 loss 0.5")
print("partial", end="")
print(" line")
sys.stderr.write("a warning\\n")
logging.basicConfig(level=logging.INFO)
logging.info("from logging")
print("no newline at the end", end="")
"""


def test_a_plain_script_is_named_tagged_and_its_output_stored(ws: Workspace) -> None:
    done = _python(ws.root, SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "epoch 1 loss 0.5" in done.stdout and "a warning" in done.stderr  # still reaches the terminal
    (info,) = ws.runs.list()
    assert info.name == "baseline run" and info.tags == {"team": "vision"} and info.params["lr"] == 0.1
    lines = [(x.stream, x.text) for x in ws.runs.log_lines(info.id) if x.stream != "workbench"]
    assert ("stdout", "epoch 1 loss 0.5") in lines and ("stdout", "partial line") in lines
    assert ("stderr", "a warning") in lines and ("stderr", "INFO:root:from logging") in lines
    assert lines[-1] == ("stdout", "no newline at the end")


def test_capture_can_be_switched_off(ws: Workspace) -> None:
    text = ws.paths.config.read_text()
    assert "capture_own_output = true" in text  # the generated config documents the switch
    ws.paths.config.write_text(text.replace("capture_own_output = true", "capture_own_output = false"))
    done = _python(ws.root, SCRIPT)
    assert done.returncode == 0, done.stderr
    (info,) = ws.runs.list()
    assert not [x for x in ws.runs.log_lines(info.id) if x.stream in ("stdout", "stderr")]


def test_init_names_a_workbench_run_only_without_n(ws: Workspace) -> None:
    (ws.root / "train.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    unnamed = ws.runs.execute([sys.executable, "train.py"])
    assert unnamed.name == "baseline run" and unnamed.tags["team"] == "vision"
    named = ws.runs.execute(RunRequest([sys.executable, "train.py"], name="given"))
    assert named.name == "given"
    lines = [x.text for x in ws.runs.log_lines(unnamed.id) if x.stream == "stdout"]
    assert lines.count("epoch 1 loss 0.5") == 1  # the runner stores the child's output once


def test_the_api_flusher_after_finish_touches_nothing(ws: Workspace) -> None:
    """The API's flusher thread may call the run's ingest just after ``finish`` closed its
    connection: that call does nothing (it raised on the closed connection, or, a moment earlier,
    wrote on the connection while ``finish`` was in a transaction of its own)."""
    code = """
        import workbench
        from workbench.tracking import api
        workbench.init(name="short")
        workbench.log_metric("loss", 0.5, step=1)
        owner = api._run._owner
        workbench.finish()
        with open(owner.events_path, "a") as late:  # a line that arrives after the end
            late.write('{"e":"metric","k":"late","v":1.0}\\n')
        owner.ingest()
        print("ingest after finish: nothing done")
    """
    done = _python(ws.root, code)
    assert done.returncode == 0, done.stderr
    assert "nothing done" in done.stdout and "Error" not in done.stderr
    (info,) = ws.runs.list()
    assert info.status == "succeeded" and info.metrics["loss"].last == 0.5 and "late" not in info.metrics


def test_a_thread_still_printing_when_the_script_ends_does_not_hang_it(ws: Workspace) -> None:
    """The run is finished at exit while a daemon thread keeps printing (through the output
    capture, into the run's log): finishing must not wait on that thread, nor it on finishing."""
    code = """
        import threading, workbench
        workbench.init(name="chatty")
        def chatter():
            while True:
                print("still here")
        threading.Thread(target=chatter, daemon=True).start()
        workbench.log_metric("loss", 0.25, step=1)
    """
    done = _python(ws.root, code)
    assert done.returncode == 0, done.stderr[-2000:]
    (info,) = ws.runs.list()
    assert info.status == "succeeded" and info.metrics["loss"].last == 0.25
    assert any(x.text == "still here" for x in ws.runs.log_lines(info.id))


def test_a_tee_outlives_its_run_and_records_nothing_after_it() -> None:
    """Another thread's ``print`` may still be inside the tee when the run puts the real stream
    back (Python 3.11's ``print`` holds no reference of its own to ``sys.stdout``): the tee is never
    freed, and passes text through without recording it once its run has ended."""
    import gc
    import io
    import weakref

    from workbench.tracking.ownrun import _Tee

    real = io.StringIO()
    recorded: list[tuple[str, str]] = []
    tee = _Tee(real, "stdout", lambda stream, line: recorded.append((stream, line)))
    tee.write("one\ntwo")
    tee.close_record()
    alive = weakref.ref(tee)
    del tee
    gc.collect()
    still = alive()
    assert still is not None, "a retired tee was freed while a print could still be using it"
    still.write("after the end\n")
    assert recorded == [("stdout", "one"), ("stdout", "two")]
    assert real.getvalue() == "one\ntwoafter the end\n"
