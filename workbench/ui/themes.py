"""Themes as data files: load, validate and register them with the app.

The built-in themes live in one folder, ``themes/*.toml`` at the repository root, which the build
ships inside the wheel as ``workbench/_themes/*.toml`` (setup.py; a test builds the wheel and checks).
Users can add their own in ``$XDG_CONFIG_HOME/workbench/themes/``. Both folders come from
:mod:`workbench.paths`. Each file holds the fields of :class:`textual.theme.Theme`
(``name``, ``primary`` ... ``dark``) and an optional ``[variables]`` table of extra CSS variables.
A malformed file never stops the app: it is skipped and reported as one line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from workbench.paths import packaged_themes_dir, user_themes_dir

PACKAGED_THEMES = packaged_themes_dir()
DEFAULT_THEME = "workbench-dark"
_COLOR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent",
                 "foreground", "background", "surface", "panel", "boost")
_ALLOWED = {f.name for f in fields(Theme)}


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class LoadedThemes:
    themes: list[Theme]
    problems: list[str]


def user_theme_dir() -> Path:
    return user_themes_dir()


def parse_theme(path: Path) -> Theme:
    """Read and validate one theme file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeFileError(f"{path.name}: {exc}") from None
    unknown = set(data) - _ALLOWED
    if unknown:
        raise ThemeFileError(f"{path.name}: unknown keys {', '.join(sorted(unknown))}")
    for key in ("name", "primary"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ThemeFileError(f"{path.name}: '{key}' is required")
    for key in _COLOR_FIELDS:
        if key in data:
            _check_color(path, key, data[key])
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ThemeFileError(f"{path.name}: [variables] must map names to strings")
    if "dark" in data and not isinstance(data["dark"], bool):
        raise ThemeFileError(f"{path.name}: 'dark' must be true or false")
    return Theme(**data)


def _check_color(path: Path, key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ThemeFileError(f"{path.name}: '{key}' must be a colour string")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{path.name}: '{key}' is not a colour: {value!r}") from None


def load_themes(*folders: Path) -> LoadedThemes:
    """Every valid theme in the packaged folder, then the given folders (later ones override)."""
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for folder in (PACKAGED_THEMES, *folders):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = parse_theme(path)
            except ThemeFileError as exc:
                problems.append(str(exc))
                continue
            themes[theme.name] = theme
    return LoadedThemes(list(themes.values()), problems)
