"""The bounded YAML loader (workbench/yamlsafe.py) and the params files read through it.

Recursive aliases, alias bombs ("billion laughs"), absurd nesting and oversized files are refused as
one line naming the file, before anything walks the expanded value; ordinary YAML, aliases and
merge keys included, loads exactly as ``yaml.safe_load`` loads it.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
import yaml

from tests.cli.test_bad_input import alias_bomb
from workbench import yamlsafe
from workbench.errors import ConfigError
from workbench.workflows.spec import ParamRef, PipelineError
from workbench.workflows.stale import ParamsFiles


def _refused(text: str, needle: str) -> str:
    with pytest.raises(ConfigError) as info:
        yamlsafe.load(text, "params.yaml", ConfigError)
    line = info.value.one_line()
    assert line.startswith("params.yaml"), line
    assert needle in line, line
    assert "\n" not in line
    return line


def test_alias_bomb_is_refused_without_expanding_it() -> None:
    tracemalloc.start()
    try:
        _refused(alias_bomb(), "aliases expand to more than 1,000,000 values")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"the refusal itself used {peak / 2**20:.0f} MiB"


def test_a_smaller_bomb_just_under_the_limit_still_loads() -> None:
    data = yamlsafe.load(alias_bomb(levels=5), "params.yaml", ConfigError)  # 9**5 = 59k values
    assert data["k"] == 1 and len(data["l4"]) == 9


@pytest.mark.parametrize("text", ["k: &k [1, *k]\n", "a: &a {b: *a}\n", "- &x [[*x]]\n"])
def test_recursive_alias_is_refused(text: str) -> None:
    _refused(text, "recursive alias at line")


@pytest.mark.parametrize("levels, needle", [(150, "nested deeper than 100 levels"),
                                            (5000, "nested too deeply to read")])
def test_absurd_nesting_is_refused(levels: int, needle: str) -> None:
    _refused("k: " + "[" * levels + "]" * levels + "\n", needle)


def test_nesting_through_a_reused_alias_counts_expanded() -> None:
    """Each part is 60 deep; the alias puts one inside the other: 120 levels once expanded."""
    deep = "[" * 60 + "1" + "]" * 60
    text = f"a: &a {deep}\nb: " + "[" * 60 + "*a" + "]" * 60 + "\n"
    _refused(text, "nested deeper than 100 levels (aliases expanded)")
    shared = yamlsafe.load(f"a: &a {deep}\nb: [*a, *a]\n", "p.yaml", ConfigError)
    assert shared["b"][0] == yaml.safe_load(deep)


def test_oversized_file_is_refused() -> None:
    _refused("#" * (yamlsafe.MAX_BYTES + 1), "larger than 16 MiB")


@pytest.mark.parametrize("text", [
    "train:\n  lr: 0.1\n  layers: [1, 2, 3]\n",
    "base: &base {lr: 0.1, epochs: 3}\nfast:\n  <<: *base\n  lr: 0.5\nboth: [*base, *base]\n",
    "", "# only a comment\n", "just text\n", "when: 2024-01-02\n",
])
def test_ordinary_yaml_loads_as_safe_load_does(text: str) -> None:
    assert yamlsafe.load(text, "p.yaml", ConfigError) == yaml.safe_load(text)


@pytest.mark.parametrize("text, needle", [
    ("k: [1, 2\n", "p.yaml:2:1: malformed YAML"),
    ("k: !!python/object:os.system ls\n", "could not determine a constructor"),
    ("? [a, b]\n: 1\n", "malformed YAML"),  # an unhashable key
])
def test_syntax_and_unsafe_tags_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        yamlsafe.load(text, "p.yaml", ConfigError)
    assert needle in info.value.one_line()


@pytest.mark.parametrize("text, needle", [
    ("k: &k [1, *k]\n", "recursive alias"),
    (alias_bomb(), "aliases expand"),
])
def test_params_file_errors_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError) as info:
        ParamsFiles(tmp_path).get(ParamRef("params.yaml", "k"))
    assert info.value.one_line().startswith("params.yaml: ")
    assert needle in info.value.one_line()


def test_deeply_nested_json_params_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PipelineError, match=r"params file 'params\.json' is malformed"):
        ParamsFiles(tmp_path).get(ParamRef("params.json", "k"))
