"""Options several commands share, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path

IDENTITY_HELP = (
    "age identity (secret key) file that reads encrypted dumps for this command, instead of "
    "encryption.identity_file (detached runs it starts get the path, never the key)"
)


def add_identity_option(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """`--identity FILE`, before the command (`dumpdeck --identity K verify …`) or after it (`verify … --identity K`).

    A command's own option leaves the attribute alone unless given, so the top-level one stands."""
    parser.add_argument(
        "--identity",
        metavar="FILE",
        type=Path,
        default=None if top_level else argparse.SUPPRESS,
        help=IDENTITY_HELP,
    )
