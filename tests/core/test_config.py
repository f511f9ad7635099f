"""The project config: defaults, round trip, and one-line errors for bad keys and types."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import ProjectConfig, dump_config, load_config, save_config
from workbench.errors import ConfigError


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nope.toml") == ProjectConfig()


def test_round_trip_keeps_every_value(tmp_path: Path) -> None:
    config = ProjectConfig()
    config.watch.quiet_seconds = 0.25
    config.tracking.metric_patterns = [r"(?P<name>\w+)=(?P<value>\S+)"]
    config.ui.theme = "workbench-light"
    path = tmp_path / "config.toml"
    save_config(path, config)
    assert load_config(path) == config
    assert "[watch]" in dump_config(config)


def test_int_is_accepted_for_float(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[watch]\nquiet_seconds = 2\n")
    assert load_config(path).watch.quiet_seconds == 2.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[watch]\nquiet = 1\n", "unknown config key 'watch.quiet'"),
        ("[nosuch]\n", "unknown config key 'nosuch'"),
        ("[watch]\nquiet_seconds = 'soon'\n", "must be float"),
        ("[tracking]\ncapture_stdout_metrics = 1\n", "must be bool"),
        ("[watch\n", "fix the TOML syntax"),
    ],
)
def test_bad_config_is_a_config_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert needle in info.value.one_line()
    assert "\n" not in info.value.one_line()
