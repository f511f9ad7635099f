"""Theme files: themes/ and the packaged copy agree, every file validates, a bad one is reported."""

from __future__ import annotations

from pathlib import Path

from workbench.ui.themes import PACKAGED_THEMES, load_themes, parse_theme

REPO_THEMES = Path(__file__).resolve().parents[2] / "themes"


def test_packaged_themes_match_the_repository() -> None:
    repo = {p.name: p.read_bytes() for p in REPO_THEMES.glob("*.toml")}
    packaged = {p.name: p.read_bytes() for p in PACKAGED_THEMES.glob("*.toml")}
    assert repo == packaged
    assert {"workbench-dark.toml", "workbench-light.toml"} <= set(repo)


def test_every_shipped_theme_parses() -> None:
    loaded = load_themes()
    assert not loaded.problems
    names = {t.name for t in loaded.themes}
    assert {"workbench-dark", "workbench-light"} <= names
    assert parse_theme(REPO_THEMES / "workbench-light.toml").dark is False


def test_a_bad_theme_file_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('name = "bad"\nprimary = "not-a-colour"\n')
    (tmp_path / "odd.toml").write_text('name = "odd"\nprimary = "#fff"\nsparkle = 1\n')
    loaded = load_themes(tmp_path)
    assert any("bad.toml" in p and "not a colour" in p for p in loaded.problems)
    assert any("odd.toml" in p and "unknown keys" in p for p in loaded.problems)
    assert "workbench-dark" in {t.name for t in loaded.themes}
