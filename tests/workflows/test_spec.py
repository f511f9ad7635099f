"""workbench.yaml parsing and validation: every error names file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.workflows.dag import build_dag
from workbench.workflows.spec import ParamRef, PipelineError, parse_pipeline, render_command

P = Path("/proj/workbench.yaml")


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_pipeline(text, P)


GOOD = """
params: conf/params.yaml
stages:
  prepare:
    cmd: python prepare.py --seed {seed}
    deps: [prepare.py, data/raw]
    outs: [data/clean.csv]
    params:
      seed: 42
  train:
    cmd: ["python", "train.py", "--lr", "{lr}"]
    inputs: [train.py, data/clean.csv]
    outputs: [model.pkl]
    params:
      lr: {ref: train.lr}
      depth: {ref: "other.yaml:model.depth"}
    executor: docker
    image: img:1
    gpus: 1
  eval:
    cmd: python eval.py
    inputs: [model.pkl, ./data/clean.csv]
    outputs: [metrics.json]
    params: [eval.threshold]
"""


def test_parses_stages_in_order_with_params_and_aliases() -> None:
    p = parse(GOOD)
    assert list(p.stages) == ["prepare", "train", "eval"]
    assert p.params_file == "conf/params.yaml"
    prep = p.stages["prepare"]
    assert prep.cmd == ["python", "prepare.py", "--seed", "{seed}"]
    assert prep.inputs == ["prepare.py", "data/raw"] and prep.outputs == ["data/clean.csv"]
    train = p.stages["train"]
    assert train.params == {"lr": ParamRef("conf/params.yaml", "train.lr"),
                            "depth": ParamRef("other.yaml", "model.depth")}
    assert (train.executor, train.image, train.gpus) == ("docker", "img:1", 1)
    assert p.stages["eval"].params == {"eval.threshold": ParamRef("conf/params.yaml", "eval.threshold")}
    assert p.stages["eval"].inputs[1] == "data/clean.csv"
    assert render_command(train.cmd, {"lr": 0.01}) == ["python", "train.py", "--lr", "0.01"]


def test_dag_order_levels_and_edges() -> None:
    p = parse(GOOD + """
  other:
    cmd: python other.py
    inputs: [data]
    outputs: [report.txt]
""")
    dag = build_dag(p)
    assert dag.upstream["train"] == ["prepare"]
    assert sorted(dag.upstream["eval"]) == ["prepare", "train"]
    assert dag.upstream["other"] == ["prepare"]  # reads the folder holding data/clean.csv
    assert dag.levels() == [["prepare"], ["train", "other"], ["eval"]]
    assert dag.topological() == ["prepare", "train", "eval", "other"]
    assert dag.ancestors("eval") == {"prepare", "train", "eval"}
    assert dag.descendants("train") == {"train", "eval"}
    data = dag.to_dict()
    assert {"from": "prepare", "to": "train", "paths": ["data/clean.csv"]} in data["edges"]


def error(text: str) -> str:
    with pytest.raises(PipelineError) as info:
        build_dag(parse(text))
    message = info.value.one_line()
    assert "\n" not in message
    return message


def test_malformed_yaml_gives_line_and_column() -> None:
    msg = error("stages:\n  a:\n    cmd: [python, x.py\n    outs: [y]\n")
    assert msg.startswith("workbench.yaml:4:") and "malformed YAML" in msg


def test_tab_indent_gives_position() -> None:
    msg = error("stages:\n\ta:\n    cmd: x\n")
    assert msg.startswith("workbench.yaml:2:1") and "malformed YAML" in msg


def test_cycle_is_named() -> None:
    msg = error("""stages:
  a:
    cmd: a
    inputs: [c.txt]
    outputs: [a.txt]
  b:
    cmd: b
    inputs: [a.txt]
    outputs: [b.txt]
  c:
    cmd: c
    inputs: [b.txt]
    outputs: [c.txt]
""")
    assert "cycle:" in msg and "a -> b -> c -> a" in msg
    assert msg.startswith("workbench.yaml:2:3")


def test_self_cycle() -> None:
    msg = error("stages:\n  a:\n    cmd: a\n    inputs: [out]\n    outputs: [out/x]\n")
    assert "reads its own output" in msg and msg.startswith("workbench.yaml:4:14")


def test_two_stages_writing_one_output() -> None:
    msg = error("stages:\n  a:\n    cmd: a\n    outputs: [m.pkl]\n  b:\n    cmd: b\n    outputs: [m.pkl]\n")
    assert msg.startswith("workbench.yaml:7:15")
    assert "stages 'a' and 'b' write the same output 'm.pkl'" in msg


def test_overlapping_output_folders() -> None:
    msg = error("stages:\n  a:\n    cmd: a\n    outputs: [out]\n  b:\n    cmd: b\n    outputs: [out/x]\n")
    assert "overlapping outputs" in msg


@pytest.mark.parametrize(("text", "needle", "where"), [
    ("", "the file is empty", "workbench.yaml"),
    ("stages: {}\n", "no stages declared", "workbench.yaml:1:9"),
    ("stage:\n  a: {cmd: x}\n", "unknown top-level key 'stage'", "workbench.yaml:1:1"),
    ("stages:\n  a:\n    outputs: [x]\n", "stage 'a' has no cmd", "workbench.yaml:2:3"),
    ("stages:\n  a:\n    cmd: x\n    output: [y]\n", "unknown key 'output'", "workbench.yaml:4:5"),
    ("stages:\n  a:\n    cmd: x\n    outputs: [/etc/passwd]\n", "is absolute", "workbench.yaml:4:15"),
    ("stages:\n  a:\n    cmd: x\n    inputs: [../up]\n", "leaves the project", "workbench.yaml:4:14"),
    ("stages:\n  a:\n    cmd: x\n  a:\n    cmd: y\n", "duplicate key 'a'", "workbench.yaml:4:3"),
    ("stages:\n  a:\n    cmd: x --lr {lr}\n", "uses {lr} but has no such param", "workbench.yaml:2:3"),
    ("stages:\n  a:\n    cmd: 'x \"unclosed'\n", "cannot split cmd", "workbench.yaml:3:10"),
    ("stages:\n  a:\n    cmd: x\n    gpus: -1\n", "gpus must be", "workbench.yaml:4:11"),
    ("stages:\n  a:\n    cmd: x\n    params: {lr: {value: 1}}\n", "{ref: KEY}", "workbench.yaml:4:18"),
    ("stages:\n  a b:\n    cmd: x\n", "not valid", "workbench.yaml:2:3"),
    ("stages:\n  a:\n    cmd: []\n", "cmd is empty", "workbench.yaml:3:10"),
])
def test_bad_input_messages(text: str, needle: str, where: str) -> None:
    msg = error(text)
    assert needle in msg
    assert msg.startswith(where)


def test_literal_braces_are_kept() -> None:
    p = parse("stages:\n  a:\n    cmd: [python, -c, \"print({{'a': 1}})\"]\n")
    assert render_command(p.stages["a"].cmd, {}) == ["python", "-c", "print({'a': 1})"]
