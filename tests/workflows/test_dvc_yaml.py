"""``workbench repro`` on a DVC project, unchanged: the same stages run and the same output bytes as
real ``dvc repro`` on a copy (one session-scoped DVC run, it starts slowly), nothing of DVC's written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflows.dvc_project import ALL_STAGES, OUTPUTS, write_dvc_project
from workbench.core.workspace import Workspace
from workbench.workflows.spec import PipelineError

CHANGED_STAGES = {"train", "report@short-1", "report@short-2", "report@long-1", "report@long-2"}


def _dvc(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _ran(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}


def _tracked_input(root: Path) -> None:
    """data/data.xml as ``dvc add`` leaves it (written directly: same file, no slow ``dvc add``)."""
    import hashlib

    data = (root / "data" / "data.xml").read_bytes()
    digest = hashlib.md5(data).hexdigest()
    (root / "data" / "data.xml.dvc").write_text(
        f"outs:\n- md5: {digest}\n  size: {len(data)}\n  hash: md5\n  path: data.xml\n")


@pytest.fixture(scope="session")
def dvc_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """What real DVC does with the project: stages run and output bytes, before and after a change of a
    file-qualified param."""
    root = tmp_path_factory.mktemp("dvc") / "proj"
    root.mkdir()
    write_dvc_project(root)
    _tracked_input(root)
    (root / ".dvc").mkdir()  # what 'dvc init --no-scm' writes that repro needs
    (root / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")
    first = _ran(_dvc(root, "repro"))
    bytes_first = {p: (root / p).read_bytes() for p in OUTPUTS}
    (root / "other.yaml").write_text("model:\n  depth: 3\n  unused: 7\n")
    second = _ran(_dvc(root, "repro"))
    bytes_second = {p: (root / p).read_bytes() for p in OUTPUTS}
    return {"first": first, "second": second, "bytes_first": bytes_first, "bytes_second": bytes_second}


def _ran_by_workbench(ws: Workspace) -> set[str]:
    result = ws.workflows.repro()
    assert result.status == "succeeded", (result.message, result.log_tail)
    return {s.stage for s in result.stages if s.status == "ran"}


def test_repro_runs_what_dvc_runs_and_writes_the_same_bytes(ws: Workspace, dvc_reference: dict) -> None:
    write_dvc_project(ws.root)
    _tracked_input(ws.root)
    assert dvc_reference["first"] == ALL_STAGES
    assert _ran_by_workbench(ws) == dvc_reference["first"]
    assert {p: (ws.root / p).read_bytes() for p in OUTPUTS} == dvc_reference["bytes_first"]
    assert [i.action for i in ws.workflows.plan()] == ["skip"] * len(ALL_STAGES)

    (ws.root / "other.yaml").write_text("model:\n  depth: 3\n  unused: 7\n")
    assert dvc_reference["second"] == CHANGED_STAGES
    assert _ran_by_workbench(ws) == dvc_reference["second"]
    assert {p: (ws.root / p).read_bytes() for p in OUTPUTS} == dvc_reference["bytes_second"]
    # An unused key of the same file changes nothing, for DVC as for Workbench.
    (ws.root / "other.yaml").write_text("model:\n  depth: 3\n  unused: 8\n")
    assert {i.action for i in ws.workflows.plan()} == {"skip"}

    assert not (ws.root / "dvc.lock").exists() and not (ws.root / ".dvc").exists()
    train = next(r for r in ws.runs.list() if r.stage == "train")  # the latest train run
    metrics = json.loads((ws.root / "metrics.json").read_text())
    assert ws.workflows.metric_value(train.id, "acc") == pytest.approx(metrics["acc"])
    assert ws.workflows.metric_value(train.id, "eval/f1") == pytest.approx(metrics["eval"]["f1"])
    # 'name' is text, no metric; the step-like plot file is a series the TUI draws.
    assert set(ws.runs.metric_keys(train.id)) == {"acc", "eval/f1", "plots/loss/loss"}
    loss = ws.runs.metric_series(train.id, "plots/loss/loss")
    assert list(loss.steps) == [0, 1, 2]
    assert list(loss.values) == pytest.approx([1.0, 0.5, 1 / 3])
    [model] = ws.runs.run_models(train.id)
    assert (model.name, model.path) == ("clf", "model.pkl")


def test_dag_and_dry_run_read_dvc_yaml_through_the_cli(ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    write_dvc_project(ws.root)
    done = cli(ws.root, "dag", "--json", "--no-status")
    assert done.code == 0, done.err
    dag = json.loads(done.out)
    assert {s["name"] for s in dag["stages"]} == ALL_STAGES
    assert ("prepare", "featurize@en") in [(e["from"], e["to"]) for e in dag["edges"]]
    done = cli(ws.root, "repro", "--dry", "--json")
    assert done.code == 0, done.err
    actions = {item["stage"]: item["action"] for item in json.loads(done.out)}
    assert actions == dict.fromkeys(ALL_STAGES, "run")
    assert not (ws.root / "dvc.lock").exists()


SEMANTICS = """\
stages:
  tick:
    cmd: echo tick >> log.txt
    always_changed: true
    outs:
      - log.txt:
          persist: true
  copy:
    wdir: sub
    cmd: cat ../in.txt > out.txt
    deps: [../in.txt]
    outs: [out.txt]
  frozen:
    cmd: exit 3
    deps: [absent.txt]
    outs: [never.txt]
    frozen: true
"""


def test_always_changed_persist_wdir_and_frozen(ws: Workspace) -> None:
    (ws.root / "sub").mkdir()
    (ws.root / "in.txt").write_text("payload\n")
    (ws.root / "dvc.yaml").write_text(SEMANTICS)
    assert _ran_by_workbench(ws) == {"tick", "copy"}
    assert _ran_by_workbench(ws) == {"tick"}  # always changed; copy is fresh; frozen never runs
    assert (ws.root / "log.txt").read_text() == "tick\ntick\n"  # persisted, not removed before the run
    assert (ws.root / "sub" / "out.txt").read_text() == "payload\n"
    assert {i.stage: i.reasons for i in ws.workflows.plan()}["frozen"] == ["frozen"]


def test_workbench_yaml_wins_over_dvc_yaml(ws: Workspace) -> None:
    write_dvc_project(ws.root)
    (ws.root / "workbench.yaml").write_text("stages:\n  only:\n    cmd: echo hi\n")
    pipeline, _ = ws.workflows.load()
    assert list(pipeline.stages) == ["only"]


def test_a_group_name_selects_its_members_and_a_dvclive_only_file_says_so(ws: Workspace) -> None:
    write_dvc_project(ws.root)
    planned = [item.stage for item in ws.workflows.plan(["featurize"])]
    assert planned == ["prepare", "featurize@en", "featurize@fr"]
    (ws.root / "dvc.yaml").write_text("metrics:\n- dvclive/metrics.json\n")
    with pytest.raises(PipelineError, match="no stages declared"):
        ws.workflows.load()
