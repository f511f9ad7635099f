"""A real Hydra app (``@hydra.main``) run by ``workbench run``, as its users write one: the
overrides on its command line and the config it composed are the run's params; Hydra's own flags
are not."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.tracking._inject._workbench_argparse import hydra_overrides

APP = '''\
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    for epoch in range(cfg.epochs):
        print(f"epoch={epoch} loss={cfg.optim.lr * (cfg.epochs - epoch):.4f}")


main()
'''
CONFIG = "epochs: 3\noptim:\n  lr: 0.01\n  name: adam\nlayers: [64, 32]\ndata:\n  path: data/train.csv\n"


def _project(root: Path) -> Path:
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "config.yaml").write_text(CONFIG)
    (root / "app.py").write_text(APP)
    assert run_workbench(root, "init").returncode == 0
    return root


def _latest_params(root: Path) -> tuple[dict[str, object], dict[str, str], list[str]]:
    ws = Workspace.init(root)[0]
    try:
        run = ws.runs.list()[0]
        logs = [line.text for line in ws.runs.log_lines(run.id)]
        return dict(run.params), ws.runs.param_sources(run.id), logs
    finally:
        ws.close()


def test_overrides_and_the_composed_config_are_the_params(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    done = run_workbench(root, "run", "--", sys.executable, "app.py", "optim.lr=0.1", "+seed=7",
                         "hydra.job.chdir=False")
    assert done.returncode == 0, done.stderr
    params, sources, _ = _latest_params(root)
    assert params == {"optim.lr": 0.1, "seed": 7, "epochs": 3, "optim.name": "adam",
                      "layers": "[64, 32]", "data.path": "data/train.csv"}
    assert sources["optim.lr"] == sources["seed"] == "argparse"  # given on the command line
    assert sources["epochs"] == sources["optim.name"] == "hydra"  # from the composed config


def test_a_multirun_keeps_its_overrides_and_says_why_no_config_is_read(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    done = run_workbench(root, "run", "--", sys.executable, "app.py", "-m", "optim.lr=0.1,0.2")
    assert done.returncode == 0, done.stderr
    params, _, logs = _latest_params(root)
    assert params == {"optim.lr": "0.1,0.2"}  # -m is Hydra's flag, not a param named m
    assert any("2 Hydra configs among the outputs (a multirun)" in line for line in logs)


def test_override_syntax() -> None:
    assert hydra_overrides(["lr=0.1", "++model.depth=34", "+tags=[a,b]", "~drop", "db=mysql",
                            "hydra.run.dir=out", "hydra/launcher=joblib", "name=null", "flag=true",
                            "broken"]) == {"lr": 0.1, "model.depth": 34, "tags": "[a,b]", "db": "mysql",
                                           "name": None, "flag": True}
    assert hydra_overrides(None) == {}
