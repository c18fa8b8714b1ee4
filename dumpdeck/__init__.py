"""dumpdeck: an operator console and headless engine for MySQL and MariaDB logical backups.

The installed package is one namespace:

    dumpdeck.backend   the engine (never imports textual or the console)
    dumpdeck.cli       the `dumpdeck` command: argparse front door and headless subcommands
    dumpdeck.tui       the Textual console
    dumpdeck.demo      the demo sandbox and its sample databases
    dumpdeck.themes    Textual themes and the console stylesheet

In the repository these live in the top-level folders of the same names; pyproject.toml maps them.
"""

__version__ = "0.1.0"
