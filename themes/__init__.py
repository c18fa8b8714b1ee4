"""dumpdeck themes: Theme objects and the console stylesheet.

Every colour of the console lives here. Widget CSS (themes/console.tcss) uses
theme variables only ($primary, $panel, $error, ...), so a theme is a complete
description of the look. NO_COLOR is honoured by Textual itself (monochrome filter).
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parent
STYLESHEET = THEMES_DIR / "console.tcss"

DARK = Theme(
    name="dumpdeck-dark",
    primary="#4EA1D3",
    secondary="#8E7CC3",
    accent="#F0A04B",
    warning="#E5C07B",
    error="#E06C75",
    success="#7BC275",
    foreground="#D8DEE9",
    background="#161A20",
    surface="#1E232B",
    panel="#262C36",
    dark=True,
)

LIGHT = Theme(
    name="dumpdeck-light",
    primary="#1F6FA8",
    secondary="#6A4FB0",
    accent="#B3590B",
    warning="#9A6700",
    error="#B42318",
    success="#2E7D32",
    foreground="#1F2328",
    background="#F6F8FA",
    surface="#FFFFFF",
    panel="#E4E9EF",
    dark=False,
)

HIGH_CONTRAST = Theme(
    name="dumpdeck-high-contrast",
    primary="#00BFFF",
    secondary="#FF00FF",
    accent="#FFFF00",
    warning="#FFFF00",
    error="#FF3030",
    success="#00FF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#202020",
    dark=True,
    luminosity_spread=0.25,
    text_alpha=1.0,
)

THEMES = (DARK, LIGHT, HIGH_CONTRAST)
# Textual's own ANSI themes use the terminal's palette: good over SSH to odd terminals.
BUILTIN_CHOICES = ("ansi-dark", "ansi-light", "textual-dark", "textual-light")
THEME_NAMES = tuple(t.name for t in THEMES) + BUILTIN_CHOICES
DEFAULT_THEME = DARK.name


def register_themes(app) -> None:
    """Register the dumpdeck themes on a Textual App."""
    for theme in THEMES:
        app.register_theme(theme)


def resolve_theme_name(name: str | None) -> str:
    """Map short names (dark, light, high-contrast, ansi) to registered theme names."""
    if not name:
        return DEFAULT_THEME
    aliases = {
        "dark": DARK.name,
        "light": LIGHT.name,
        "high-contrast": HIGH_CONTRAST.name,
        "hc": HIGH_CONTRAST.name,
        "ansi": "ansi-dark",
    }
    return aliases.get(name, name)
