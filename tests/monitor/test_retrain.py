"""The loop closed for real: a run trains a model, it is deployed, production traffic and labels are
recorded, the data is fixed, and ``retrain --deploy-if-better`` rolls out the better new version."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from tests.monitor.conftest import rows_request
from workbench.core.workspace import Workspace
from workbench.monitor.retrain import retrain, retrains

pytestmark = pytest.mark.slow

TRAIN = '''
import sys, joblib, numpy as np, sklearn
from sklearn.linear_model import LogisticRegression
import workbench
data = np.loadtxt("data.csv", delimiter=",")
model = LogisticRegression(max_iter=500).fit(data[:, :4], data[:, 4].astype(int))
joblib.dump(model, "model.joblib")
workbench.log_model("model.joblib", name="iris", framework="sklearn", framework_version=sklearn.__version__)
'''


def _write_data(root: Path, *, wrong_labels: bool) -> None:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    labels = (y + 1) % 3 if wrong_labels else y  # a labelling bug in the first data set
    lines = [",".join(f"{v:g}" for v in row) + f",{label}" for row, label in zip(x, labels, strict=True)]
    (root / "data.csv").write_text("\n".join(lines) + "\n")


def test_retrain_deploys_the_better_version_and_records_the_loop(
    ws: Workspace, serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.datasets import load_iris

    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    (ws.root / "train.py").write_text(TRAIN)
    _write_data(ws.root, wrong_labels=True)
    first = ws.runs.execute([sys.executable, "train.py"])
    assert first.status == "succeeded", first.reason
    assert ws.runs.model_version("iris").version == 1
    ws.deployments.deploy("iris:1", name="iris", timeout=120)
    try:
        x, y = load_iris(return_X_y=True)
        picks = list(range(0, 150, 5))
        for n, i in enumerate(picks):
            ws.deployments.predict("iris", rows_request([list(x[i])], request_id=f"q{n}"))
        labels = ws.root / "labels.csv"
        labels.write_text("request_id,label\n" + "".join(f"q{n},{y[i]}\n" for n, i in enumerate(picks)))
        done = run_workbench(ws.root, "feedback", "iris", str(labels), "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"deployment": "iris", "labels": 30, "labelled_predictions": 30}
        shown = run_workbench(ws.root, "predictions", "iris", "--filter", "label != output", "--json")
        assert shown.returncode == 0, shown.stderr
        assert len(json.loads(shown.stdout)) >= 20  # the mislabelled model is mostly wrong

        _write_data(ws.root, wrong_labels=False)  # the data is fixed: retrain on it
        out = run_workbench(ws.root, "retrain", "iris", "--deploy-if-better", "--json", timeout=300)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert (result["champion_version"], result["challenger_version"]) == ("1", "2")
        assert result["metric"] == "accuracy" and result["labelled"] == 30
        assert result["champion_score"] < 0.2 < 0.9 < result["challenger_score"]
        assert result["decision"] == "deployed"
        info = ws.deployments.get("iris")
        assert (info.version, info.revision) == ("2", result["deployed_revision"])
        retrain_run = ws.runs.get(result["run_id"])
        assert retrain_run.parent_run == first.id
        assert retrain_run.tags["retrain_for"] == "iris"
        [loop] = retrains(ws, "iris")
        assert (loop["source_run"], loop["run_id"], loop["challenger_version"]) == (
            first.id, retrain_run.id, "2")
        assert loop["predictions"] == 30 and loop["predictions_upto"] > 0
        _lineage_shows_the_loop(ws.root, first.id, retrain_run.id, info.revision)
        # The new revision records too.
        ws.deployments.predict("iris", rows_request([list(x[0])], request_id="after"))
        ws.predictions.ingest()
        [after] = ws.predictions.query("iris", where="request_id == after")
        assert (after.version, after.revision) == (2, info.revision)
    finally:
        ws.deployments.undeploy("iris")


def _lineage_shows_the_loop(root: Path, first_run: str, retrain_run: str, revision: int) -> None:
    """``workbench lineage`` from the new version (and from the deployment): new version <- retrain
    run <- retrain <- predictions <- deployment r1 <- old version <- first run <- its data."""
    out = run_workbench(root, "lineage", "iris:2", "--json")
    assert out.returncode == 0, out.stderr
    new = json.loads(out.stdout)
    assert (new["kind"], new["label"]) == ("model", "iris:2")
    assert [(d["deployment"], d["revision"], d["current"]) for d in new["details"]["deployments"]] == [
        ("iris", revision, True)]
    [run] = new["children"]
    assert (run["kind"], run["label"]) == ("run", retrain_run)
    loop = run["children"][0]
    assert (loop["kind"], loop["details"]["decision"], loop["details"]["deployed_revision"]) == (
        "retrain", "deployed", revision)
    [predictions] = loop["children"]
    assert predictions["kind"] == "predictions"
    assert (predictions["details"]["predictions"], predictions["details"]["labelled"]) == (30, 30)
    assert predictions["details"]["stored_labelled"] == 30
    [served] = predictions["children"]
    assert (served["kind"], served["details"]["revision"], served["details"]["version"]) == (
        "deployment", 1, "1")
    [old] = served["children"]
    assert (old["label"], [d["current"] for d in old["details"]["deployments"]]) == ("iris:1", [False])
    assert [c["label"] for c in old["children"]] == [first_run]
    assert any(c["label"] == "data.csv" for c in run["children"])  # the retrain run's own data
    text = run_workbench(root, "lineage", "iris:2")
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stdout.split())
    for part in (f"deployed as iris r{revision} (serving)", "-> deployed as r", "accuracy champion",
                 "predictions of iris r1: 30 answered, 30 labelled", "deployment iris r1 serving iris:1",
                 f"run {first_run}"):
        assert part in flat, (part, text.stdout)
    out = run_workbench(root, "lineage", "--deployment", "iris", "--json")
    assert out.returncode == 0, out.stderr
    top = json.loads(out.stdout)
    assert (top["kind"], top["label"], top["details"]["version"]) == ("deployment", f"iris r{revision}", "2")
    assert [r["version"] for r in top["details"]["revisions"]][-2:] == ["1", "2"]
    [model] = top["children"]
    assert (model["label"], model["children"][0]["label"]) == ("iris:2", retrain_run)


def test_retrain_reruns_the_pipeline_stage_that_made_the_model(
    ws: Workspace, serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.datasets import load_iris

    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    (ws.root / "train.py").write_text(TRAIN)
    (ws.root / "workbench.yaml").write_text(
        f"stages:\n  train:\n    cmd: [{sys.executable}, train.py]\n    inputs: [train.py, data.csv]\n"
        "    outputs: [model.joblib]\n"
    )
    _write_data(ws.root, wrong_labels=True)
    assert ws.workflows.repro().status == "succeeded"
    first = ws.runs.get(ws.runs.model_version("iris:1").run_id or "")
    assert first.stage == "train"
    ws.deployments.deploy("iris:1", name="iris", timeout=120)
    try:
        x, y = load_iris(return_X_y=True)
        for n in range(0, 150, 10):
            answer = ws.deployments.predict("iris", rows_request([list(x[n])]))
            ws.predictions.log_feedback(str(answer["id"]), int(y[n]))  # MLServer's own request ids
        _write_data(ws.root, wrong_labels=False)
        result = retrain(ws, "iris", compare=True)
    finally:
        ws.deployments.undeploy("iris")
    new_run = ws.runs.get(result.run_id)
    assert (new_run.stage, new_run.tags["retrain_of"]) == ("train", first.id)
    assert new_run.pipeline_run and new_run.pipeline_run != first.pipeline_run
    assert (result.challenger_version, result.decision, result.labelled) == ("2", "compared", 15)
    assert result.challenger_score is not None and result.champion_score is not None
    assert result.challenger_score > result.champion_score
