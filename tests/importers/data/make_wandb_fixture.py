"""Make the W&B fixture the importer tests read: run this with a real wandb installed (no network).

    pip install wandb && python tests/importers/data/make_wandb_fixture.py tests/importers/data

It runs two small trainings in W&B offline mode (WANDB_MODE=offline) and keeps their
``offline-run-*`` folders (the ``.wandb`` record log and ``files/``) in ``wandb-offline.tar.gz``,
with ``wandb-expected.json``: what was logged. The first run logs 1,000 steps, so its history spans
many 32 KiB blocks and records split across them; the second ends with exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path


def main(out: Path) -> None:
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true")
    import wandb

    expected: dict[str, object] = {"wandb_version": wandb.__version__, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        run = wandb.init(project="fixture", name="long", tags=["baseline"],
                         config={"lr": 0.01, "layers": [64, 32], "optimizer": {"name": "adam", "beta": 0.9}})
        for step in range(1000):
            wandb.log({"loss": 1.0 / (step + 1), "eval": {"acc": step / 1000}})
        run.summary["best_acc"] = 0.99
        expected["runs"][run.id] = {  # type: ignore[index]
            "name": "long", "status": "succeeded", "steps": 1000,
            "params": {"lr": 0.01, "layers": [64, 32], "optimizer.name": "adam", "optimizer.beta": 0.9},
            "last": {"loss": 1.0 / 1000, "eval/acc": 999 / 1000, "best_acc": 0.99}}
        wandb.finish()
        run = wandb.init(project="fixture", name="crash", config={"lr": 0.1})
        for step in range(5):
            wandb.log({"loss": 2.0 - step / 10}, step=step * 10)
        expected["runs"][run.id] = {  # type: ignore[index]
            "name": "crash", "status": "failed", "steps": 5, "params": {"lr": 0.1}, "last": {"loss": 1.6}}
        wandb.finish(exit_code=1)
        with tarfile.open(out / "wandb-offline.tar.gz", "w:gz") as tar:
            for folder in sorted(Path("wandb").glob("offline-run-*")):
                tar.add(folder / f"run-{folder.name.rsplit('-', 1)[1]}.wandb",
                        arcname=f"wandb/{folder.name}/run-{folder.name.rsplit('-', 1)[1]}.wandb")
    (out / "wandb-expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
