"""The `dumpdeck` command: argparse front door shared by the console and the headless commands.

`dumpdeck` alone (or `dumpdeck console`) opens the console; every other
subcommand is headless. Subcommands live in cli/commands/, one module each.
Exit codes: 0 success, 1 a backup/check failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path

from dumpdeck import __version__
from dumpdeck.backend.config import Config, load_config, readable_identity, with_identity
from dumpdeck.backend.credentials import capture_env_secrets
from dumpdeck.backend.encryption import use_identity
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.naming import printable
from dumpdeck.backend.private import restrict_umask

from . import commands
from .commands import console as console_cmd
from .options import add_identity_option

EPILOG = """\
configuration: --config PATH, else $DUMPDECK_CONFIG, else the first of ~/.config/dumpdeck/config.yaml,
  $XDG_CONFIG_DIRS/dumpdeck/config.yaml (default /etc/xdg), /etc/dumpdeck/config.yaml
  (`dumpdeck config keys` lists every key; config.example.yaml documents them).
exit codes: 0 success, 1 a backup or check failed, 2 usage or configuration error,
  3 the job is already running, 4 not checked (verify/restore-test could not run a check:
  nothing was found wrong, but the level asked for is not proven).
run `dumpdeck COMMAND --help` for the options of a command.
"""


class Context:
    """What every command gets: the parsed arguments and a lazily loaded configuration."""

    def __init__(
        self, config_path: Path | None, parser: argparse.ArgumentParser | None = None, identity: Path | None = None
    ):
        self.config_path = config_path
        self.identity = identity  # --identity: encryption.identity_file for this command
        self.parser = parser  # the whole command tree (completion and the man page are made from it)
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            if self.identity is not None:
                self._config = with_identity(self._config, self.identity)
            capture_env_secrets(self._config)  # no child process inherits a secret variable
            use_identity(self._config.encryption.identity_file)  # every reader of an encrypted dump uses it
        return self._config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dumpdeck",
        description="dumpdeck: an operator console and headless engine for MySQL/MariaDB logical backups "
        "that are checksummed, verified and restore-tested.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        type=Path,
        help="configuration file (default: $DUMPDECK_CONFIG, else ~/.config/dumpdeck/config.yaml, "
        "$XDG_CONFIG_DIRS/dumpdeck/config.yaml, /etc/dumpdeck/config.yaml: the first that exists)",
    )
    add_identity_option(parser, top_level=True)
    parser.add_argument("--version", action="version", version=f"dumpdeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def normalise_environment() -> None:
    """NO_COLOR set to an empty string means nothing (no-color.org); Textual would take it as set."""
    if os.environ.get("NO_COLOR") == "":
        del os.environ["NO_COLOR"]


def main(argv: list[str] | None = None) -> int:
    normalise_environment()
    restrict_umask()  # state, logs, locks, the report: never readable by others, whatever the umask
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args.config, parser, args.identity)
    # a subcommand sets `func`; `dumpdeck` alone opens the console
    func = getattr(args, "func", None) or console_cmd.run_default
    try:
        if args.identity is not None:  # checked now: some commands (verify FILE) run without a configuration
            use_identity(readable_identity(args.identity))
        return int(func(args, ctx) or 0)
    except DumpdeckError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except BrokenPipeError:
        return 0


def _print_error(message: str) -> None:
    lines = [printable(line) for line in message.split("\n")] or [message]
    if len(lines) == 1:
        sys.stderr.write(f"dumpdeck: error: {lines[0]}\n")
    else:
        sys.stderr.write("dumpdeck: error: configuration is invalid:\n")
        for line in lines:
            sys.stderr.write(f"  {line}\n")


if __name__ == "__main__":
    sys.exit(main())
