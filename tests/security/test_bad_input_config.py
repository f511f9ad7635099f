"""``.workbench/config.toml``: one typed validation, every refusal one line naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import RANGES, ProjectConfig, load_config, save_config
from workbench.errors import ConfigError


@pytest.mark.parametrize("text, needle", [
    ("[watch]\nquiet_seconds = 0\n", "config 'watch.quiet_seconds' must be between 0.01 and 86400, got 0"),
    ("[watch]\nquiet_seconds = -5\n", "'watch.quiet_seconds' must be between"),
    ("[watch]\nmax_interval_seconds = -1.0\n", "'watch.max_interval_seconds' must be between"),
    ("[watch]\nquiet_seconds = nan\n", "'watch.quiet_seconds' must be between"),
    ("[watch]\nmax_interval_seconds = inf\n", "'watch.max_interval_seconds' must be between"),
    ("[watch]\nquiet_seconds = 10.0\nmax_interval_seconds = 5.0\n", "is below 'watch.quiet_seconds'"),
    ("[store]\nchunk_threshold = 0\n", "'store.chunk_threshold' must be between 65536 and"),
    ("[store]\nchunk_threshold = 99999999999999999\n", "'store.chunk_threshold' must be between"),
    ("[store]\ncompression_level = 99\n", "'store.compression_level' must be between 1 and 22, got 99"),
    ("[executor]\ngpus = -1\n", "'executor.gpus' must be between 0 and 1024"),
    ("[tracking]\nmetric_patterns = ['(unclosed']\n", "'tracking.metric_patterns[0]' is not a valid regex"),
    ("[tracking]\nmetric_patterns = ['(?P<name>\\w+)=(?P<value>\\S+)', '[']\n",
     "'tracking.metric_patterns[1]' is not a valid regex"),
    ("[tracking]\nmetric_patterns = ['loss=(\\S+)']\n", "has no (?P<name>...) and (?P<value>...) groups"),
    ("[tracking]\nmetric_patterns = [1]\n", "'tracking.metric_patterns[0]' must be a string"),
])
def test_out_of_range_and_bad_regex_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = info.value.one_line()
    assert line.startswith(f"{path}: "), line
    assert needle in line, line
    assert "\n" not in line


def test_not_utf8_and_not_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"[ui]\ntheme = \"\xff\xfe\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.one_line() == f"{path}: not UTF-8 text (byte 14) (save it as UTF-8)"
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError, match=r"cannot read .*config\.toml: Is a directory"):
        load_config(path)


def test_every_range_admits_the_default_and_its_bounds(tmp_path: Path) -> None:
    default = ProjectConfig()
    path = tmp_path / "config.toml"
    save_config(path, default)
    assert load_config(path) == default
    for name, (low, high) in RANGES.items():
        section, key = name.split(".")
        for value in (low, high):
            config = ProjectConfig()
            if key == "quiet_seconds":
                config.watch.max_interval_seconds = max(value, config.watch.max_interval_seconds)
            if key == "max_interval_seconds":
                config.watch.quiet_seconds = min(value, config.watch.quiet_seconds)
            if section == "monitor" and key.endswith("_warning"):  # warning <= drifting, checked
                partner = key.replace("_warning", "_drifting")
                setattr(config.monitor, partner, max(value, getattr(config.monitor, partner)))
            if section == "monitor" and key.endswith("_drifting"):
                partner = key.replace("_drifting", "_warning")
                setattr(config.monitor, partner, min(value, getattr(config.monitor, partner)))
            kind = type(getattr(getattr(default, section), key))
            setattr(getattr(config, section), key, kind(value))
            save_config(path, config)
            assert load_config(path) == config, name
