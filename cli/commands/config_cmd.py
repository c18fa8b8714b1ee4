"""`dumpdeck config check|keys`: validate the configuration, print the effective settings, list every key."""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

from dumpdeck.backend.config import permission_warnings, redacted, schema
from dumpdeck.backend.credentials import secret_problems
from dumpdeck.backend.endpoint import resolve

from ..output import print_json, table


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
    k = csub.add_parser(
        "keys",
        help="list every configuration key with its type, default and meaning",
        description="List every key the configuration accepts: its path (<server>, <job> and <database> stand "
        "for names you choose), type or allowed values, default, and what it does. Needs no configuration file.",
    )
    k.add_argument("--json", action="store_true", help="machine-readable output")
    k.set_defaults(func=run_keys)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 2)[1])


def connections(config) -> dict:
    """Per server: the effective host/port/socket/user/TLS and where each value came from (config,
    option file, default). Raises ConfigError when an option file cannot be read."""
    out = {}
    for name, server in config.servers.items():
        ep = resolve(server)
        values: dict[str, Any] = {"user": ep.user}
        if ep.socket is not None:
            values["socket"] = str(ep.socket)
        else:
            values["host"] = ep.host
            values["port"] = ep.port
        values["tls"] = ep.tls.enabled
        if ep.tls.enabled:
            values["tls.verify_server_cert"] = ep.tls.verify_server_cert
            for k in ("ca", "cert", "key"):
                if getattr(ep.tls, k) is not None:
                    values[f"tls.{k}"] = str(getattr(ep.tls, k))
        out[name] = {k: {"value": v, "from": ep.sources.get(k, "default")} for k, v in values.items()}
    return out


def run_check(args, ctx) -> int:
    config = ctx.config  # raises ConfigError (exit 2) with every problem named
    # a secret a job needs that cannot be read is an error; for a server no job uses, a warning
    used = {j.server: j.name for j in config.jobs.values()}
    errors = [f"{p} (needed by job {job})" for srv, job in used.items() for p in secret_problems(config, [srv])]
    warnings = [w for w in permission_warnings(config) if not any(w.split(":")[0] in e for e in errors)]
    settings = redacted(config)
    conns = connections(config)  # an unreadable option file is a configuration error too
    if args.json:
        print_json(
            {
                "valid": not errors,
                "path": str(config.path),
                "errors": errors,
                "warnings": warnings,
                "settings": settings,
                "connections": conns,
            }
        )
        return 2 if errors else 0
    if errors:
        sys.stdout.write(f"# {config.path}: INVALID\n")
    else:
        sys.stdout.write(f"# {config.path}: valid\n")
    sys.stdout.write(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
    sys.stdout.write("# effective connections (config wins over the option file):\nconnections:\n")
    for name, values in conns.items():
        sys.stdout.write(f"  {name}:\n")
        for k, item in values.items():
            sys.stdout.write(f"    {k}: {json.dumps(item['value'])}   # from {item['from']}\n")
    for w in warnings:
        sys.stderr.write(f"dumpdeck: warning: {w}\n")
    for e in errors:
        sys.stderr.write(f"dumpdeck: error: {e}\n")
    return 2 if errors else 0


def run_keys(args, ctx) -> int:
    keys = list(schema())
    if args.json:
        print_json(keys)
        return 0
    rows = [(k.path + (" (required)" if k.required else ""), k.type, k.default, k.doc) for k in keys]
    sys.stdout.write(table(("Key", "Type", "Default", "Meaning"), rows) + "\n")
    return 0
