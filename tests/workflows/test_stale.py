"""Fingerprints: command, params (values and references), input contents; and why they changed."""

from __future__ import annotations

from pathlib import Path

import blake3
import pytest

from workbench.workflows.spec import PipelineError, parse_pipeline
from workbench.workflows.stale import Fingerprint, ParamsFiles, explain, fingerprint, resolve_params


def hasher(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


PIPE = """stages:
  train:
    cmd: python train.py --lr {lr}
    inputs: [train.py, data]
    outputs: [model.pkl]
    params:
      lr: {ref: train.lr}
      epochs: 3
"""


def make(root: Path) -> None:
    (root / "data").mkdir()
    (root / "data" / "a.csv").write_text("1,2\n")
    (root / "data" / "b.csv").write_text("3,4\n")
    (root / "train.py").write_text("print('hi')\n")
    (root / "params.yaml").write_text("train:\n  lr: 0.1\n")


def fp(root: Path) -> Fingerprint:
    stage = parse_pipeline(PIPE, root / "workbench.yaml").stages["train"]
    return fingerprint(stage, root, resolve_params(stage, ParamsFiles(root)), hasher)


def test_fingerprint_changes_with_inputs_params_and_explains(tmp_path: Path) -> None:
    make(tmp_path)
    first = fp(tmp_path)
    assert first.cmd == ["python", "train.py", "--lr", "0.1"]
    assert sorted(first.inputs) == ["data/a.csv", "data/b.csv", "train.py"]
    assert first.digest() == fp(tmp_path).digest()
    assert Fingerprint.from_json(first.to_json()) == first

    (tmp_path / "data" / "b.csv").write_text("changed\n")
    second = fp(tmp_path)
    assert second.digest() != first.digest()
    assert explain(first, second) == ["input 'data/b.csv' changed"]

    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.01\n")
    (tmp_path / "data" / "c.csv").write_text("new\n")
    third = fp(tmp_path)
    reasons = explain(second, third)
    assert "command changed" in reasons
    assert "param 'lr' changed 0.1 -> 0.01" in reasons
    assert "input 'data/c.csv' added" in reasons
    assert explain(None, third) == ["never run"]


def test_missing_params_key_and_file_name_the_place(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "params.yaml").write_text("train: {}\n")
    with pytest.raises(PipelineError, match=r"workbench.yaml:7:11: stage 'train': params file "
                                            r"'params.yaml' has no key 'train.lr'"):
        fp(tmp_path)
    (tmp_path / "params.yaml").unlink()
    with pytest.raises(PipelineError, match=r"params file 'params\.yaml' does not exist"):
        fp(tmp_path)
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(PipelineError, match=r"params\.yaml:2:1: malformed YAML"):
        fp(tmp_path)


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "train.py").unlink()
    with pytest.raises(PipelineError, match=r"workbench.yaml:4:14: stage 'train': input 'train.py' "
                                            r"does not exist and no stage writes it"):
        fp(tmp_path)
