"""Unmodified training scripts (no ``import workbench``) come out of a run fully recorded."""

from __future__ import annotations

import sys
import textwrap

import pytest

from workbench.core.workspace import Workspace

SKLEARN_SCRIPT = """
import argparse

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
parser.add_argument("--max-iter", type=int, default=100)
parser.add_argument("--out", default="models/digits.joblib")
args = parser.parse_args()

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
model = LogisticRegression(C=args.C, max_iter=args.max_iter)
for epoch in range(3):
    model.set_params(max_iter=args.max_iter * (epoch + 1))
    model.fit(X_train, y_train)
    train_acc, test_acc = model.score(X_train, y_train), model.score(X_test, y_test)
    print(f"epoch={epoch} train_acc={train_acc:.4f} test_acc={test_acc:.4f}")
import os
os.makedirs("models", exist_ok=True)
joblib.dump(model, args.out)
print("accuracy:", model.score(X_test, y_test))
"""

TORCH_SCRIPT = """
import argparse
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--steps", type=int, default=20)
args = parser.parse_args()
torch.manual_seed(0)
data = torch.load("data.pt")
x, y = data["x"], data["y"]
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
for step in range(args.steps):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    if step % 5 == 0:
        print(f"step: {step} loss: {loss.item():.5f}")
torch.save(model.state_dict(), "linear.pt")
"""


def _write(ws: Workspace, name: str, text: str) -> None:
    (ws.root / name).write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.mark.slow
def test_sklearn_digits_script(ws: Workspace) -> None:
    _write(ws, "train.py", SKLEARN_SCRIPT)
    info = ws.runs.execute([sys.executable, "train.py", "--C", "0.5", "--max-iter", "50"])
    assert info.status == "succeeded", info.reason
    # argparse's namespace: dests (max_iter, not the flag's max-iter) and the defaulted --out too
    assert info.params == {"C": 0.5, "max_iter": 50, "out": "models/digits.joblib"}
    assert ws.runs.metric_series(info.id, "test_acc").steps == [0, 1, 2]
    assert info.metrics["test_acc"].last > 0.8 and info.metrics["accuracy"].count == 1
    assert "train.py" in [f.path for f in ws.runs.inputs(info.id)]
    assert "models/digits.joblib" in [f.path for f in ws.runs.outputs(info.id)]
    (version,) = ws.runs.run_models(info.id)
    import sklearn

    assert (version.name, version.framework, version.framework_version) == (
        "digits", "sklearn", sklearn.__version__)
    assert ws.runs.model_version("digits").run_id == info.id
    lineage = ws.runs.lineage("digits:1").to_dict()
    assert lineage["children"][0]["label"] == info.id


@pytest.mark.slow
def test_pytorch_cpu_loop(ws: Workspace) -> None:
    torch = pytest.importorskip(
        "torch", reason="torch is a test extra: pip install torch==2.13.0 (CPU build)"
    )
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    torch.save({"x": x, "y": x @ torch.tensor([[1.0], [2.0], [-1.0], [0.5]])}, ws.root / "data.pt")
    _write(ws, "train_torch.py", TORCH_SCRIPT)
    info = ws.runs.execute([sys.executable, "train_torch.py", "--lr", "0.05", "--steps", "20"])
    assert info.status == "succeeded", info.reason
    assert info.params == {"lr": 0.05, "steps": 20}
    series = ws.runs.metric_series(info.id, "loss")
    assert series.steps == [0, 5, 10, 15] and series.values[-1] < series.values[0]
    assert "data.pt" in [f.path for f in ws.runs.inputs(info.id)]
    assert "linear.pt" in [f.path for f in ws.runs.outputs(info.id)]
    (version,) = ws.runs.run_models(info.id)
    assert (version.name, version.framework) == ("linear", "torch")
    assert version.framework_version == torch.__version__
