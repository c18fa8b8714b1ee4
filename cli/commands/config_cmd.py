"""`dumpdeck config check`: validate the configuration and print the effective settings."""

from __future__ import annotations

import sys

import yaml
from dumpdeck.backend.config import permission_warnings, redacted

from ..output import print_json


def register(sub) -> None:
    p = sub.add_parser(
        "config",
        help="validate and show the configuration",
        description="Validate the configuration file and show the effective settings.",
    )
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    c = csub.add_parser(
        "check",
        help="validate, print effective settings (secrets redacted), warn on loose file modes",
        description="Validate the configuration and print the effective settings with every "
        "secret redacted. Exit 0 when valid, 2 when not.",
    )
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_check)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 2)[1])


def run_check(args, ctx) -> int:
    config = ctx.config  # raises ConfigError (exit 2) with every problem named
    warnings = permission_warnings(config)
    settings = redacted(config)
    if args.json:
        print_json({"valid": True, "path": str(config.path), "warnings": warnings, "settings": settings})
        return 0
    sys.stdout.write(f"# {config.path}: valid\n")
    sys.stdout.write(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
    for w in warnings:
        sys.stderr.write(f"dumpdeck: warning: {w}\n")
    return 0
