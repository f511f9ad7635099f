"""A pipeline stage's ``models:`` entry declares outputs as model versions whatever their bytes; an
undeclared data pickle (a feature matrix) stays data."""

from __future__ import annotations

import pickle

import pytest

from tests.workflows.conftest import write_project
from workbench.core.workspace import Workspace
from workbench.workflows.spec import PipelineError

FEATURES = ("import pickle, sys\npickle.dump({'X': [[1, 2], [3, 4]], 'y': [0, 1]}, "
            "open('features.pkl', 'wb'))\nopen('weights.bin', 'wb').write(b'\\x00custom weights')\n")
PIPELINE = """\
stages:
  train:
    cmd: python train.py
    inputs: [train.py]
    outputs: [features.pkl, weights.bin]
    models: [weights.bin]
"""


def test_a_stage_declares_its_model_and_data_stays_data(ws: Workspace) -> None:
    write_project(ws.root, PIPELINE.replace("python", __import__("sys").executable))
    (ws.root / "train.py").write_text(FEATURES)
    result = ws.workflows.repro()
    assert result.status == "succeeded"
    run_id = ws.runs.list()[0].id
    [version] = ws.runs.run_models(run_id)
    assert (version.name, version.path) == ("weights", "weights.bin")
    assert version.hash == ws.versions.hash_file(ws.root / "weights.bin")
    assert "features" not in {m.name for m in ws.runs.models()}
    assert pickle.loads((ws.root / "features.pkl").read_bytes())["y"] == [0, 1]


def test_a_model_that_is_not_an_output_is_refused_with_its_line(ws: Workspace) -> None:
    write_project(ws.root, PIPELINE.replace("models: [weights.bin]", "models: [elsewhere.bin]"))
    with pytest.raises(PipelineError) as caught:
        ws.workflows.load()
    assert "workbench.yaml:6" in caught.value.one_line()
    assert "model 'elsewhere.bin' is not one of its outputs" in caught.value.one_line()
