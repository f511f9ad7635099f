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
