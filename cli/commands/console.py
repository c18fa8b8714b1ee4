"""`dumpdeck console` (and `dumpdeck` alone): the Textual operator console."""

from __future__ import annotations

import sys

from dumpdeck.backend.errors import ConfigError

HINT = "see config.example.yaml for a complete, commented example"


def register(sub) -> None:
    p = sub.add_parser(
        "console",
        help="open the operator console (the default when no command is given)",
        description="The live console: databases, jobs, disk and log panes; the dumps browser; "
        "schedules. Running jobs continue when it closes.",
    )
    _add_options(p)
    p.set_defaults(func=run)


def _add_options(p) -> None:
    from dumpdeck.themes import THEME_NAMES

    p.add_argument(
        "--read-only",
        action="store_true",
        help="hide every action that changes something (backup, cancel, delete, restore-test)",
    )
    p.add_argument(
        "--theme",
        metavar="NAME",
        help=f"colour theme: {', '.join(THEME_NAMES)} (or dark, light, high-contrast, ansi); NO_COLOR is honoured",
    )


def run(args, ctx) -> int:
    from dumpdeck.themes import THEME_NAMES, resolve_theme_name

    try:
        config = ctx.config
    except ConfigError as exc:
        text = str(exc)
        lines = text.splitlines()
        sys.stderr.write("dumpdeck: cannot open the console: the configuration is not usable:\n")
        for line in lines:
            sys.stderr.write(f"  {line}\n")
        if "config.example.yaml" not in text:
            sys.stderr.write(f"  ({HINT})\n")
        return 2
    theme = getattr(args, "theme", None)
    if theme is not None and resolve_theme_name(theme) not in THEME_NAMES:
        sys.stderr.write(f"dumpdeck: error: --theme {theme!r} is not a theme; choose one of {', '.join(THEME_NAMES)}\n")
        return 2
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        sys.stderr.write(
            "dumpdeck: the console needs a terminal; for scripts use the headless commands (dumpdeck --help)\n"
        )
        return 2
    from dumpdeck.tui.app import run_console

    return run_console(config, read_only=bool(getattr(args, "read_only", False)), theme=theme)


def run_default(args, ctx) -> int:
    """`dumpdeck` with no subcommand."""
    return run(args, ctx)
