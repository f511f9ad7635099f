"""dvc.yaml read into stages, with DVC's meaning of foreach, matrix, vars and ${...}; everything
Workbench does not support refused with file, line and key (no command runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.workflows.dvc import parse_dvc
from workbench.workflows.spec import ParamRef, Pipeline, PipelineError


def _parse(root: Path, text: str) -> Pipeline:
    return parse_dvc(text, root / "dvc.yaml", root)


def _error(root: Path, text: str) -> str:
    with pytest.raises(PipelineError) as caught:
        _parse(root, text)
    return caught.value.one_line()


def test_foreach_over_a_mapping_gives_key_and_item_fields(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("models:\n  us: {size: 1}\n  gb: {size: 2}\n")
    pipeline = _parse(tmp_path, """\
stages:
  build:
    foreach: ${models}
    do:
      cmd: echo ${key} ${item.size} ${flag}
      outs:
        - out/${key}.txt
vars:
  - flag: true
""")
    assert list(pipeline.stages) == ["build@us", "build@gb"]
    assert pipeline.stages["build@gb"].cmd == ["/bin/sh", "-c", "echo gb 2 true"]
    assert pipeline.stages["build@gb"].outputs == ["out/gb.txt"]


def test_foreach_over_dicts_in_a_list_is_named_by_index_and_matrix_by_values(tmp_path: Path) -> None:
    pipeline = _parse(tmp_path, """\
vars:
  - runs: [{lr: 1}, {lr: 2}]
stages:
  fit:
    foreach: ${runs}
    do:
      cmd: fit ${item.lr}
  grid:
    matrix:
      opt: [adam, sgd]
      cfg: [{a: 1}, {a: 2}]
    cmd: grid ${item.opt} ${item.cfg.a}
""")
    assert list(pipeline.stages) == ["fit@0", "fit@1", "grid@adam-cfg0", "grid@adam-cfg1",
                                     "grid@sgd-cfg0", "grid@sgd-cfg1"]
    assert pipeline.stages["grid@sgd-cfg1"].cmd[2] == "grid sgd 2"


def test_params_keys_sections_and_other_files_relative_to_wdir(tmp_path: Path) -> None:
    pipeline = _parse(tmp_path, """\
stages:
  train:
    wdir: src
    cmd: python train.py --opts ${opts}
    vars:
      - opts: {depth: 3, fast: true, name: a b}
    deps: [train.py, ../data]
    params:
      - lr
      - train
      - ../conf.yaml: [model.depth]
      - ../whole.json:
""")
    stage = pipeline.stages["train"]
    assert stage.workdir == "src" and stage.inputs == ["src/train.py", "data"]
    assert stage.params == {"lr": ParamRef("src/params.yaml", "lr"),
                            "train": ParamRef("src/params.yaml", "train"),
                            "../conf.yaml:model.depth": ParamRef("conf.yaml", "model.depth"),
                            "../whole.json": ParamRef("whole.json", "")}
    assert stage.cmd[2] == "python train.py --opts --depth 3 --fast --name 'a b'"


def test_braces_in_commands_stay_literal(tmp_path: Path) -> None:
    from workbench.workflows.spec import render_command

    pipeline = _parse(tmp_path, "stages:\n  a:\n    cmd: awk '{print $1}' x \\${HOME}\n")
    assert render_command(pipeline.stages["a"].cmd, {})[2] == "awk '{print $1}' x ${HOME}"


@pytest.mark.parametrize(("text", "expected"), [
    ("stages:\n  a:\n    cmd: x\ndatasets: []\n", "dvc.yaml:4:1: unsupported key 'datasets'"),
    ("stages:\n  a:\n    cmd: x\n    checkpoint: true\n",
     "dvc.yaml:4:5: stage 'a': unsupported key 'checkpoint'"),
    ("stages:\n  a:\n    cmd: x\n    outs:\n      - m.pkl:\n          checkpoint: true\n",
     "dvc.yaml:5:9: stage 'a': unsupported option 'checkpoint' of out 'm.pkl'"),
    ("stages:\n  a:\n    cmd: echo ${nope}\n", "dvc.yaml:3:5: 'stages.a.cmd': could not find 'nope'"),
    ("stages:\n  a:\n    cmd: x\n    deps: [s3://bucket/data]\n",
     "dvc.yaml:4:12: input 's3://bucket/data' is not"),
    ("vars:\n  - a: 1\n  - a: 2\nstages:\n  s:\n    cmd: x\n", "dvc.yaml:1:1: cannot redefine 'a'"),
    ("stages:\n  a:\n    cmd: x\n  a:\n    cmd: y\n", "dvc.yaml:4:3: duplicate key 'a'"),
    ("stages:\n  a:\n    cmd: x\n    outs: [m.pkl]\nartifacts:\n  m:\n    path: other.pkl\n    type: model\n",
     "dvc.yaml:7:5: artifact 'm': 'other.pkl' is not written by any stage"),
    ("stages:\n  a:\n    cmd: x\n    outs: [../up.txt]\n",
     "dvc.yaml:4:12: output '../up.txt' leaves the project"),
    ("stages:\n  a:\n    cmd: x\n    frozen: maybe\n",
     "dvc.yaml:4:5: stage 'a': frozen must be true or false"),
])
def test_unsupported_or_wrong_is_refused_with_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(tmp_path, text)


def test_a_missing_dvc_tracked_input_says_how_to_fetch_it(tmp_path: Path) -> None:
    from workbench.core.workspace import Workspace

    ws, _ = Workspace.init(tmp_path)
    try:
        (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: x\n    deps: [data/raw.csv]\n")
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "raw.csv.dvc").write_text("outs:\n- md5: 0\n  path: raw.csv\n")
        with pytest.raises(PipelineError) as caught:
            ws.workflows.repro()
        assert "dvc.yaml:4:12" in caught.value.one_line() and "dvc pull" in caught.value.one_line()
    finally:
        ws.close()
