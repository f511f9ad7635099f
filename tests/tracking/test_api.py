"""The tracking API: microsecond log_metric, under ``workbench run`` and in a plain ``python train.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from workbench.core.workspace import Workspace

API_SCRIPT = """
import sys
import workbench
workbench.log_params({"lr": 0.01, "layers": [64, 64]})
workbench.set_tag("stage", "dev")
for i in range(1000):
    workbench.log_metric("loss", 1.0 / (i + 1))
workbench.log({"acc": 0.5, "f1": float("nan")}, step=3)
workbench.input("data.txt")
with open("weights.bin", "wb") as f:
    f.write(b"123")
workbench.log_model("weights.bin", name="tiny", framework="custom", framework_version="0.1")
try:
    workbench.log_metric("bad", "high")
except TypeError as exc:
    print("rejected:", exc)
if len(sys.argv) > 1:
    raise RuntimeError("boom")
"""


def _python(cwd: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_log_metric_costs_microseconds(tmp_path: Path) -> None:
    code = f"""
        import os, time
        os.environ["WORKBENCH_EVENTS"] = {str(tmp_path / 'events.jsonl')!r}
        import workbench
        workbench.log_metric("warm", 1.0)
        best = 1e9
        for _ in range(5):  # CPU time of the process (its threads too), not wall-clock: load does not count
            start = time.process_time()
            for i in range(100_000):
                workbench.log_metric("loss", 0.5, step=i)
            best = min(best, (time.process_time() - start) / 100_000 * 1e6)
        print(best)
    """
    done = _python(tmp_path, code)
    assert done.returncode == 0, done.stderr
    micros = float(done.stdout.strip())
    assert micros < 5.0, f"log_metric took {micros:.2f} us"
    lines = (tmp_path / "events.jsonl").read_text().count('"e":"series"')
    assert lines >= 1


def test_api_under_workbench_run(ws: Workspace) -> None:
    (ws.root / "data.txt").write_text("d", encoding="utf-8")
    (ws.root / "train.py").write_text(textwrap.dedent(API_SCRIPT), encoding="utf-8")
    info = ws.runs.execute([sys.executable, "train.py"])
    assert info.status == "succeeded", info.reason
    assert info.params == {"lr": 0.01, "layers": "[64, 64]"} and info.tags == {"stage": "dev"}
    assert info.metrics["loss"].count == 1000 and info.metrics["acc"].last_step == 3
    assert str(info.metrics["f1"].last) == "nan"
    assert "bad" not in info.metrics
    assert "rejected: metric 'bad' must be a number" in [x.text for x in ws.runs.log_lines(info.id)][-1]
    assert "data.txt" in [f.path for f in ws.runs.inputs(info.id)]
    (model,) = ws.runs.run_models(info.id)
    assert (model.name, model.framework, model.framework_version) == ("tiny", "custom", "0.1")


def test_plain_python_script_starts_its_own_run(ws: Workspace) -> None:
    (ws.root / "data.txt").write_text("d", encoding="utf-8")
    done = _python(ws.root, API_SCRIPT)
    assert done.returncode == 0, done.stderr
    (info,) = ws.runs.list()
    assert info.source == "api" and info.status == "succeeded" and info.exit_code == 0
    assert info.metrics["loss"].count == 1000 and info.params["lr"] == 0.01
    assert ws.runs.model_version("tiny").run_id == info.id
    assert "weights.bin" in [f.path for f in ws.runs.outputs(info.id)]
    assert ws.runs.get(info.id).environment.get("packages")

    crashed = _python(ws.root, API_SCRIPT, "crash")
    assert crashed.returncode == 1 and "boom" in crashed.stderr
    latest = ws.runs.get("latest")
    assert latest.status == "failed" and "RuntimeError: boom" in latest.reason
    assert latest.metrics["loss"].count == 1000


def test_outside_a_project_the_api_warns_once_and_does_nothing(tmp_path: Path) -> None:
    code = "import workbench\nfor i in range(3):\n    workbench.log_metric('x', i)\nprint('ok')"
    done = _python(tmp_path, code)
    assert done.returncode == 0 and done.stdout.strip() == "ok"
    assert done.stderr.count("not inside a project") == 1
    assert not (tmp_path / ".workbench").exists()


BOUNDED = """
import workbench
for i in range(200_000):
    workbench.log_metric("loss", i * 0.25, step=i)
workbench.log_metric("k" * 1_000_000, 1.0)          # an absurd key: rejected by the ingester, as before
workbench.log_param("blob", "p" * 1_000_000)
workbench.set_tag("note", "t" * 1_000_000)
workbench.input("/data/" + "d" * 1_000_000)         # cannot fit a line: sent as a 'dropped' event
workbench.log_metric("acc", 0.5, step=7)
"""


def _api_lines(tmp_path: Path, target: str) -> list[bytes]:
    """The lines the API writes for BOUNDED, to an events file or marked on stdout."""
    from workbench.tracking.events import MARKER_BYTES

    events = tmp_path / "events.jsonl"
    code = f"import os\nos.environ['WORKBENCH_EVENTS'] = {target if target == '@stdout' else str(events)!r}\n"
    done = _python(tmp_path, code + BOUNDED)
    assert done.returncode == 0, done.stderr
    if target == "@stdout":
        data = done.stdout.encode()
        assert all(line.startswith(MARKER_BYTES) for line in data.splitlines())
    else:
        data = events.read_bytes()
    return data.splitlines(keepends=True)


def test_every_line_the_api_writes_is_within_the_bound(tmp_path: Path) -> None:
    from workbench.tracking.events import MARKER_BYTES, MAX_EVENT_LINE, MAX_TEXT, decode, unpack_series

    for target in ("file", "@stdout"):
        lines = _api_lines(tmp_path, target)
        marker = 0 if target == "@stdout" else len(MARKER_BYTES)  # a file line could be printed marked
        assert max(len(line) for line in lines) + marker <= MAX_EVENT_LINE
        events = [decode(line) for line in lines]
        steps = [s for e in events if e["e"] == "series" and e["k"] == "loss" for s in unpack_series(e)[0]]
        assert steps == list(range(200_000)) and len([e for e in events if e.get("k") == "loss"]) > 20
        by_kind = {e["e"]: e for e in events if e["e"] != "series"}
        assert by_kind["param"]["v"] == "p" * (2 * MAX_TEXT) and by_kind["tag"]["v"] == "t" * MAX_TEXT
        assert by_kind["dropped"]["kind"] == "input" and by_kind["dropped"]["bytes"] > 1_000_000
        assert "input" not in by_kind


def test_bounded_lines_lose_nothing_the_store_would_keep(ws: Workspace) -> None:
    (ws.root / "bounded.py").write_text(BOUNDED, encoding="utf-8")
    info = ws.runs.execute([sys.executable, "bounded.py"])
    assert info.status == "succeeded", info.reason
    assert info.metrics["loss"].count == 200_000 and info.metrics["acc"].last_step == 7
    # What the store kept before the bound: the first 10,000 characters of the value's JSON.
    assert info.params["blob"] == ('"' + "p" * 9_999) and info.tags["note"] == "t" * 10_000
    assert info.dropped_events == 2  # the absurd key and the path that could not be sent
    notes = [x.text for x in ws.runs.log_lines(info.id) if x.stream == "workbench"]
    assert any("the job could not send: kind input" in n for n in notes)
    assert any("bad metric key" in n for n in notes)


FAILED_WRITE_SCRIPT = """\
import resource, signal, sys
import workbench
from workbench.tracking import api

api.FLUSH_INTERVAL = 1e9  # only the flushes this script asks for
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG instead
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
for i in range(5000):
    workbench.log_metric("loss", i * 0.5, step=i)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))  # the first line is cut after 100 bytes
try:
    api.active_run().flush()
except OSError as exc:
    print("flush failed", exc.errno)
else:
    sys.exit("the flush should have failed")
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
for i in range(5000, 10000):
    workbench.log_metric("loss", i * 0.5, step=i)
"""


def test_a_failed_event_write_is_sent_again_and_nothing_is_lost(tmp_path: Path) -> None:
    import json

    from workbench.tracking.events import unpack_series

    events = tmp_path / "events.jsonl"
    (tmp_path / "failing.py").write_text(FAILED_WRITE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_EVENTS=str(events), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run([sys.executable, "failing.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flush failed")
    steps: list[int] = []
    for line in events.read_bytes().splitlines():  # every line whole: the cut one was completed
        event = json.loads(line)
        assert event["e"] == "series" and event["k"] == "loss"
        steps.extend(unpack_series(event)[0])
    assert sorted(steps) == list(range(10000))
