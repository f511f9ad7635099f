"""A real Lightning ``Trainer`` run by ``workbench run``, as its users write one, with each of its
two default loggers: the run's metrics are the logger's series at every step (not the progress
bar's value at each epoch, nor Lightning's chatter on stderr), its params the script's, and its
checkpoint a version of one model whatever its epoch and step."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace

pytest.importorskip("lightning")

SCRIPT = '''\
import argparse

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class Model(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--logger", choices=["tensorboard", "csv"], default="tensorboard")
args = parser.parse_args()
torch.manual_seed(0)
x = torch.randn(320, 8)
y = x @ torch.randn(8)
logger = (L.pytorch.loggers.CSVLogger("logs") if args.logger == "csv"
          else L.pytorch.loggers.TensorBoardLogger("logs"))
trainer = L.Trainer(max_epochs=args.epochs, log_every_n_steps=5, enable_model_summary=False, logger=logger)
trainer.fit(Model(args.lr), DataLoader(TensorDataset(x, y), batch_size=32),
            DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32))
'''


@pytest.mark.parametrize("logger", ["tensorboard", "csv"])
def test_a_lightning_run_records_its_loggers_series(tmp_path: Path, logger: str) -> None:
    if logger == "tensorboard":
        pytest.importorskip("tensorboard")
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text(SCRIPT)
    assert run_workbench(root, "init").returncode == 0
    runs = (2, 3) if logger == "csv" else (3,)  # two runs: their checkpoints are versions of one model
    for epochs in runs:
        done = run_workbench(root, "run", "--json", "--", sys.executable, "train.py", "--logger", logger,
                             "--epochs", str(epochs), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout)
    assert run["params"] == {"lr": 0.05, "epochs": 3, "logger": logger}
    assert {"train_loss", "val_loss"} <= set(run["metrics"])
    assert not {"v_num", "using", "max_epochs"} & set(run["metrics"])  # bar and stderr chatter
    ws = Workspace.open(root)
    try:
        loss = ws.runs.metric_series(run["id"], "train_loss")
        assert loss.steps == list(range(4, 30, 5))  # every 5th of 30 steps, as logged
        assert loss.values[0] > loss.values[-1] > 0
        assert ws.runs.metric_series(run["id"], "val_loss").steps == [9, 19, 29]  # each epoch's end
        logs = [line.text for line in ws.runs.log_lines(run["id"])]
        assert any("metric train_loss: the series" in line and "replaces the one read" in line
                   for line in logs)
        assert [(m.name, m.versions) for m in ws.runs.models()] == [("checkpoints", len(runs))]
    finally:
        ws.close()
