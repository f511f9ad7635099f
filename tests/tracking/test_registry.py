"""The registry holds models: what real runs register, and identical bytes reusing their version."""

from __future__ import annotations

import sys
import textwrap

import sklearn

from workbench.core.workspace import Workspace
from workbench.tracking import registry

PIPELINE_STEP = """
import os, pickle, sys
import joblib, numpy as np, torch
from sklearn.linear_model import LogisticRegression

C = float(sys.argv[1])
rng = np.random.default_rng(0)
X, y = rng.random((60, 3)), rng.integers(0, 2, 60)
os.makedirs("data/features", exist_ok=True)
os.makedirs("models", exist_ok=True)
with open("data/features/train.pkl", "wb") as f:      # a feature matrix: no model
    pickle.dump(X[:40], f)
joblib.dump({"X": X[40:], "y": y[40:]}, "data/features/test.pkl", compress=3)
joblib.dump(LogisticRegression(C=C).fit(X[:40], y[:40]), "models/clf.joblib", compress=3)
torch.manual_seed(0)
torch.save(torch.nn.Linear(3, 1).state_dict(), "models/head.pt")
torch.save(torch.zeros(4), "data/features/mask.pt")  # a tensor: no model
with open("notes.bin", "wb") as f:
    f.write(b"declared by the script")
import workbench
workbench.log_model("notes.bin", name="notes", framework="custom")
"""


def test_only_models_become_versions_and_identical_bytes_are_reused(ws: Workspace) -> None:
    (ws.root / "step.py").write_text(textwrap.dedent(PIPELINE_STEP), encoding="utf-8")
    first = ws.runs.execute([sys.executable, "step.py", "1.0"])
    assert first.status == "succeeded", [line.text for line in ws.runs.log_lines(first.id)]
    outputs = {f.path for f in ws.runs.outputs(first.id)}
    assert {"data/features/train.pkl", "data/features/test.pkl", "data/features/mask.pt"} <= outputs
    made = {m.name: m for m in ws.runs.run_models(first.id)}
    assert set(made) == {"clf", "head", "notes"}  # no model 'train', 'test' or 'mask'
    assert (made["clf"].framework, made["clf"].framework_version) == ("sklearn", sklearn.__version__)
    assert made["head"].framework == "torch" and made["head"].framework_version  # from the run's packages
    assert made["notes"].framework == "custom"  # declared: a version whatever its bytes

    # Same bytes again: no new version; the run is linked to the existing one, and says so.
    again = ws.runs.execute([sys.executable, "step.py", "1.0"])
    reused = {m.name: m for m in ws.runs.run_models(again.id)}
    assert reused["clf"].version == 1 and reused["clf"].run_id == first.id
    assert reused["notes"].version == 1
    notes = [line.text for line in ws.runs.log_lines(again.id) if line.stream == "workbench"]
    assert "model clf: identical to version 1, reused" in notes
    assert "model notes: identical to version 1, reused" in notes

    # Different bytes make version 2; going back to the first bytes reuses version 1, not 3.
    changed = ws.runs.execute([sys.executable, "step.py", "0.5"])
    assert {m.name: m.version for m in ws.runs.run_models(changed.id)}["clf"] == 2
    back = ws.runs.execute([sys.executable, "step.py", "1.0"])
    assert {m.name: m.version for m in ws.runs.run_models(back.id)}["clf"] == 1
    assert [v.version for v in ws.runs.model_versions("clf")] == [2, 1]
    assert {m.name: m.versions for m in ws.runs.models()}["clf"] == 2


def test_register_or_reuse_links_runs(ws: Workspace) -> None:
    db = ws.db
    with ws.atomic() as conn:
        for run_id in ("r1", "r2", "r3"):
            conn.execute("INSERT INTO runs (id, command, status, started_at)"
                         " VALUES (?, '[]', 'succeeded', 0)", (run_id,))
    v1, reused1 = registry.register_or_reuse(db, name="m", run_id="r1", path="m.pkl", hash="a", size=1)
    v2, reused2 = registry.register_or_reuse(db, name="m", run_id="r2", path="m.pkl", hash="b", size=1)
    v3, reused3 = registry.register_or_reuse(db, name="m", run_id="r3", path="out/m.pkl", hash="a", size=1)
    assert (v1.version, v2.version, v3.version) == (1, 2, 1)
    assert (reused1, reused2, reused3) == (False, False, True)
    assert [v.version for v in registry.versions_of_run(db, "r3")] == [1]
    assert registry.get_version(db, "m:1").run_id == "r1"  # the version keeps the run that made it
    # Another model holding the same bytes is another model: its own version 1.
    other, reused = registry.register_or_reuse(db, name="copy", run_id="r3", path="c.pkl", hash="a", size=1)
    assert (other.name, other.version, reused) == ("copy", 1, False)


CHECKPOINTS = """
import os, sys, torch
os.makedirs("checkpoints", exist_ok=True)
os.makedirs("lightning/checkpoints", exist_ok=True)
model = torch.nn.Linear(3, 1)
for epoch in range(int(sys.argv[1])):
    with torch.no_grad():
        model.weight += 1.0  # each checkpoint holds other bytes
    torch.save(model.state_dict(), f"checkpoints/epoch{epoch}.pt")
    torch.save(model.state_dict(), f"lightning/checkpoints/epoch={epoch}-step={100 * epoch}.ckpt")
torch.save(model.state_dict(), "resnet50.pt")
"""


def test_a_runs_numbered_checkpoints_are_versions_of_one_model_in_their_order(ws: Workspace) -> None:
    """``epoch0.pt`` .. ``epoch11.pt`` of one run are versions 1-12 of one model named after their
    folder (the names share only counter words), numbered as the epochs go (epoch10 after epoch9);
    a file alone keeps its own name, digits and all."""
    (ws.root / "ckpt.py").write_text(CHECKPOINTS, encoding="utf-8")
    run = ws.runs.execute([sys.executable, "ckpt.py", "12"])
    assert run.status == "succeeded", [line.text for line in ws.runs.log_lines(run.id)]
    assert {m.name for m in ws.runs.models()} == {"checkpoints", "resnet50"}
    versions = sorted(ws.runs.model_versions("checkpoints"), key=lambda v: v.version)
    assert len(versions) == 24
    epochs = [v.path for v in versions if v.path.startswith("checkpoints/")]
    assert epochs == [f"checkpoints/epoch{e}.pt" for e in range(12)]
    assert versions[-1].path == "lightning/checkpoints/epoch=11-step=1100.ckpt"


def test_series_names() -> None:
    assert registry.series_names(["ckpt/ckpt_step_1000.pt", "ckpt/ckpt_step_2000.pt", "model.pt"]) == {
        "ckpt/ckpt_step_1000.pt": "ckpt", "ckpt/ckpt_step_2000.pt": "ckpt"}
    assert registry.series_names(["bert-finetuned-epoch3.pt", "bert-finetuned-epoch4.pt"]) == {
        "bert-finetuned-epoch3.pt": "bert_finetuned", "bert-finetuned-epoch4.pt": "bert_finetuned"}
    assert registry.series_names(["0.pt", "1.pt"]) == {"0.pt": "model", "1.pt": "model"}
    assert registry.series_names(["resnet50.pt", "vit16.pt", "a/m1.pkl", "b/m2.pkl", "best.pt"]) == {}
    # Lightning keeps one checkpoint a run, named by its epoch and step: each run's is a version
    # of one model, not a model of its own
    assert registry.series_names(["lightning_logs/version_3/checkpoints/epoch=9-step=600.ckpt"]) == {
        "lightning_logs/version_3/checkpoints/epoch=9-step=600.ckpt": "checkpoints"}
