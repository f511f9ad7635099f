"""workbench.format: one spelling per quantity for the CLI and the TUI."""

from __future__ import annotations

import math

from workbench import format as fmt


def test_sizes_use_binary_units_with_a_space() -> None:
    assert fmt.size(0) == "0 B"
    assert fmt.size(512) == "512 B"
    assert fmt.size(1536) == "1.5 KiB"
    assert fmt.size(3 * 2**20) == "3.0 MiB"
    assert fmt.size(2**40 * 2048) == "2048.0 TiB"
    assert fmt.size(-2048) == "-2.0 KiB"
    assert fmt.size(None) == "" and fmt.size(None, "-") == "-"


def test_durations_keep_a_decimal_under_a_minute() -> None:
    assert fmt.duration(12.5) == "12.5s"
    assert fmt.duration(0) == "0.0s"
    assert fmt.duration(187) == "3m07s"
    assert fmt.duration(2 * 3600 + 5 * 60 + 59) == "2h05m"
    assert fmt.duration(None) == "" and fmt.duration(None, "-") == "-"


def test_ages_take_the_largest_whole_unit() -> None:
    now = 1_000_000.0
    assert fmt.age(now - 45, now) == "45s ago"
    assert fmt.age(now - 12 * 60 - 59, now) == "12m ago"
    assert fmt.age(now - 3 * 3600, now) == "3h ago"
    assert fmt.age(now - 2 * 86400 - 5, now) == "2d ago"
    assert fmt.age(now + 30, now) == "0s ago"  # a clock a little behind the writer's
    assert fmt.age(None, now) == ""


def test_numbers_spell_nan_and_infinities_as_the_json_does() -> None:
    assert fmt.number(math.nan) == "nan"
    assert fmt.number(math.inf) == "inf" and fmt.number(-math.inf) == "-inf"
    assert fmt.number(0.123456) == "0.1235"
    assert fmt.number(123456.0) == "1.235e+05"
    assert fmt.number(3) == "3" and fmt.number("adam") == "adam"
    assert fmt.number(True) == "true" and fmt.number(False) == "false"
    assert fmt.number(None) == "" and fmt.number(None, "-") == "-"


def test_times_are_local(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert fmt.local_time(86400 * 365) == "1971-01-01 00:00:00"
        assert fmt.short_time(86400 * 365 + 3661) == "01-01 01:01"
        assert fmt.local_time(None) == "-" and fmt.short_time(None) == ""
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_the_cli_and_the_tui_share_the_module() -> None:
    """The old per-layer copies are gone: both layers import these functions."""
    from workbench.cli import cmd_runs, common
    from workbench.ui.widgets import table_view

    assert not hasattr(common, "human_bytes") and not hasattr(common, "local_time")
    assert not hasattr(cmd_runs, "_duration") and not hasattr(table_view, "fmt_value")
    assert cmd_runs.fmt is fmt and table_view.fmt is fmt
