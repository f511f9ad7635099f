"""`workbench compare` shows how the runs' inputs and code differ, not only params and metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

TRAIN = "import sys\nrows = open('data.csv').read().splitlines()\nprint(f'loss: {len(rows) / 10}')\n"


def test_compare_lists_changed_inputs_and_code(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (project_dir / "train.py").write_text(TRAIN)
    (project_dir / "data.csv").write_text("a,b\n1,2\n")
    first = ws.runs.execute(RunRequest([sys.executable, "train.py"], name="first")).id
    (project_dir / "train.py").write_text(TRAIN.replace("/ 10", "/ 20"))
    (project_dir / "data.csv").write_text("a,b\n1,2\n3,4\n")
    (project_dir / "extra.py").write_text("X = 1\n")
    second = ws.runs.execute(RunRequest([sys.executable, "train.py"], name="second")).id

    result = cli(project_dir, "compare", first, second, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data["inputs"]) >= {"data.csv", "train.py"}
    assert all(len(set(hashes)) == 2 for hashes in data["inputs"].values())
    changes = {c["path"]: c["change"] for c in data["code"][0]["changes"]}
    assert changes == {"train.py": "modified", "data.csv": "modified", "extra.py": "added"}

    shown = cli(project_dir, "compare", first, second, "--diff")
    assert shown.code == 0
    assert "inputs that differ" in shown.out and "data.csv" in shown.out
    assert f"code and data of {second} against {first} (3 files)" in shown.out
    assert "-print(f'loss: {len(rows) / 10}')" in shown.out
    assert "+print(f'loss: {len(rows) / 20}')" in shown.out

    same = ws.runs.execute(RunRequest([sys.executable, "train.py"], name="third")).id
    again = cli(project_dir, "compare", second, same)
    assert f"code and data of {same}: identical to {second}'s" in again.out


def test_compare_with_an_imported_run_says_not_compared(  # type: ignore[no-untyped-def]
        ws: Workspace, project_dir: Path, cli, tmp_path: Path) -> None:
    import tarfile

    data = Path(__file__).parent.parent / "importers" / "data" / "wandb-offline.tar.gz"
    with tarfile.open(data) as tar:
        tar.extractall(tmp_path, filter="data")
    report = json.loads(cli(project_dir, "import", "wandb", str(tmp_path / "wandb"), "--json").out)
    imported = sorted(report["run_ids"].values())[0]
    (project_dir / "train.py").write_text(TRAIN)
    (project_dir / "data.csv").write_text("a,b\n1,2\n")
    mine = ws.runs.execute(RunRequest([sys.executable, "train.py"], name="mine")).id
    shown = cli(project_dir, "compare", mine, imported)
    assert shown.code == 0, shown.err
    flat = " ".join(shown.out.split())  # the console wraps at its width
    assert f"code and data of {imported}: not compared ({imported} has no input snapshot)" in flat
    assert "identical" not in shown.out
    data_json = json.loads(cli(project_dir, "compare", mine, imported, "--json").out)
    assert data_json["code"][0]["compared"] is False
