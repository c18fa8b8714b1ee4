"""`dumpdeck notify test|log`: send a test message to every channel; show the notification log."""

from __future__ import annotations

import sys

from dumpdeck.backend import notify
from dumpdeck.backend.errors import ConfigError
from dumpdeck.backend.naming import printable

from ..output import print_json, table


def register(sub) -> None:
    p = sub.add_parser(
        "notify",
        help="test the notification channels, show what was sent",
        description="E-mail (notify.email) and webhook (notify.webhook) notifications.",
    )
    nsub = p.add_subparsers(dest="notify_command", metavar="ACTION")
    t = nsub.add_parser(
        "test",
        help="send a test message to every configured channel",
        description="Send one test message to every configured channel and report each result.",
        epilog="exit codes: 0 every channel delivered, 1 at least one failed, 2 none configured",
    )
    t.add_argument("--channel", choices=["email", "webhook"], help="only this channel")
    t.set_defaults(func=run_test)
    lg = nsub.add_parser(
        "log",
        help="recent notifications and their delivery (failed ones are retried)",
        description="The notification log from the state store, newest first.",
    )
    lg.add_argument("--limit", type=int, default=20)
    lg.add_argument("--json", action="store_true")
    lg.set_defaults(func=run_log)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 2)[1])


def run_test(args, ctx) -> int:
    config = ctx.config
    available = notify.channels(config)
    if not available:
        raise ConfigError(f"{config.path}: no notification channel is configured (add notify.email or notify.webhook)")
    chosen = [args.channel] if args.channel else available
    if args.channel and args.channel not in available:
        raise ConfigError(f"{config.path}: notify.{args.channel} is not configured")
    message = notify.compose_test(str(config.path) if config.path else None)
    failures = 0
    for d in notify.deliver(config, message, only=chosen):
        if d.ok:
            sys.stdout.write(f"OK      {d.channel}: sent {printable(message.subject)!r}\n")
        else:
            failures += 1
            sys.stdout.write(f"FAILED  {d.channel}: {printable(d.error)}\n")
    return 1 if failures else 0


def run_log(args, ctx) -> int:
    from dumpdeck.backend.state import StateStore

    store = StateStore.open(ctx.config.state_db)
    try:
        rows = store.notifications(args.limit)
    finally:
        store.close()
    if args.json:
        print_json([{k: v for k, v in r.items() if k != "payload"} for r in rows])
        return 0
    sys.stdout.write(
        table(
            ["ID", "WHEN", "CHANNEL", "OK", "TRIES", "SUBJECT", "ERROR"],
            [
                [
                    r["id"],
                    r["at"].strftime("%Y-%m-%d %H:%M:%S") if r["at"] else "",
                    r["channel"],
                    "yes" if r["ok"] else "PENDING",
                    r["attempts"],
                    r["subject"],
                    r["error"] or "",
                ]
                for r in rows
            ],
        )
        + "\n"
    )
    return 0
