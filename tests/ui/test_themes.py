"""Theme files: one folder (themes/), shipped in the wheel, every file validates, a bad one is reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from workbench.ui.themes import PACKAGED_THEMES, load_themes, parse_theme

REPO = Path(__file__).resolve().parents[2]
REPO_THEMES = REPO / "themes"


def test_themes_live_in_one_folder() -> None:
    """No second copy inside the package: the checkout reads the top-level folder itself."""
    assert not (REPO / "workbench" / "_themes").exists(), "themes/ is the only source; drop the copy"
    assert PACKAGED_THEMES == REPO_THEMES
    assert {"workbench-dark.toml", "workbench-light.toml"} <= {p.name for p in REPO_THEMES.glob("*.toml")}


@pytest.mark.slow
def test_the_wheel_ships_every_theme_and_the_app_finds_them(tmp_path: Path) -> None:
    """Build the real wheel (setuptools' PEP 517 backend, offline), then load themes from it."""
    src = tmp_path / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("workbench", "themes"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    out = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta as b; print(b.build_wheel({str(out)!r}))"],
        cwd=src, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = out / build.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as zf:
        shipped = {Path(n).name: zf.read(n) for n in zf.namelist() if n.startswith("workbench/_themes/")}
        zf.extractall(tmp_path / "site")
    assert shipped == {p.name: p.read_bytes() for p in REPO_THEMES.glob("*.toml")}
    probe = ("import json; from workbench.ui.themes import PACKAGED_THEMES, load_themes; l = load_themes(); "
             "print(json.dumps([str(PACKAGED_THEMES), sorted(t.name for t in l.themes), l.problems]))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    folder, names, problems = json.loads(ran.stdout)
    assert Path(folder) == tmp_path / "site" / "workbench" / "_themes"
    assert {"workbench-dark", "workbench-light", "workbench-midnight"} <= set(names)
    assert problems == []


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
