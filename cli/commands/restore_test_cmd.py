"""`dumpdeck restore-test FILE | --latest DB [--target same|sandbox|SERVER] [--json]`: level 4."""

from __future__ import annotations

import signal
import sys
import threading

from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.logs import log_check_outcome, log_check_start
from dumpdeck.backend.restore import restore_test

from ..options import add_identity_option
from ..output import print_json, style
from .verify_cmd import Checklist, add_target_args, log_to_file, print_summary, resolve_file


def register(sub) -> None:
    p = sub.add_parser(
        "restore-test",
        help="load a dump into a scratch database and compare (level 4)",
        description="Prove a dump restores: run levels 1-3 (unless already verified for this exact file), load it "
        "into a fresh scratch database `dumpdeck_rt_…` on the target, check every table, view, routine, "
        "trigger and event, count rows and record CHECKSUM TABLE, then drop the scratch database. "
        "A dump that would write outside the scratch database is refused.",
        epilog="targets: sandbox (a throwaway mariadbd started for the test), same (the dump's own server), "
        "or a configured server name. Default: restore_test.target in the config.\n"
        "exit codes: 0 passed, 1 failed (the dump is bad), 2 usage error, 4 not checked (the test could not run: "
        "target unreachable, no space, cancelled; the dump keeps the level it had and is not marked bad)",
    )
    add_target_args(p)
    p.add_argument(
        "--target", "-t", metavar="TARGET", help="sandbox | same | SERVER (default: config restore_test.target)"
    )
    p.add_argument("--parallel", "-j", type=int, metavar="N", help="load connections (default: restore_test.parallel)")
    p.add_argument("--no-record", action="store_true", help="do not append the result to the manifest")
    p.add_argument(
        "--from",
        dest="source",
        metavar="DEST",
        help="test the copy at copy destination DEST instead: FILE is then its path there "
        "(<server>/<database>/<file>, see list --remote DEST), or --latest DB its newest verified copy. "
        "It is streamed through rclone cat into the load (nothing lands on local disk) and its sha256 "
        "is checked against the manifest stored beside it",
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    add_identity_option(p)
    p.set_defaults(func=run)


def _run_remote(args, ctx) -> int:
    from dumpdeck.backend import copies
    from dumpdeck.backend.errors import UsageError

    config = ctx.config
    if (args.file is None) == (args.latest is None):
        raise UsageError("with --from DEST, name the copy: its path there, or --latest DB")
    dump = copies.find_remote(
        config,
        args.source,
        latest=args.latest,
        path=str(args.file) if args.file is not None else None,
        server=args.server,
    )
    log_to_file(ctx)
    label = f"{args.source}:{dump.rel}"
    if not args.json:
        sys.stdout.write(style(label, dim=True) + "\n")
    report = copies.restore_test_remote(
        config, dump, target=args.target, parallel=args.parallel, on_check=None if args.json else Checklist()
    )
    copies.record_remote_restore_test(config, dump, report)
    if args.json:
        print_json(report.to_dict())
    else:
        print_summary(report)
    return report.outcome.exit_code


def run(args, ctx) -> int:
    if args.source:
        return _run_remote(args, ctx)
    path = resolve_file(args, ctx)
    config = ctx.config
    if args.parallel is not None and args.parallel < 1:
        from dumpdeck.backend.errors import UsageError

        raise UsageError("--parallel must be at least 1")
    target = args.target or config.restore_test.target
    if target not in ("same", "sandbox") and target not in config.servers:
        from dumpdeck.backend.errors import UsageError

        raise UsageError(
            f"--target {target!r}: not 'same', 'sandbox' or a configured server ({', '.join(config.servers)})"
        )
    cancel = threading.Event()
    log_to_file(ctx)
    log_check_start("restore-test", path, target)

    def on_term(signum, frame):  # SIGTERM: stop loading, the scratch database is still dropped
        cancel.set()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        if args.json:
            report = restore_test(
                path, config, args.target, record=not args.no_record, parallel=args.parallel, cancel=cancel
            )
            print_json(report.to_dict())
        else:
            sys.stdout.write(style(f"{path}  → target {args.target or config.restore_test.target}", dim=True) + "\n")
            report = restore_test(
                path,
                config,
                args.target,
                on_check=Checklist(),
                record=not args.no_record,
                parallel=args.parallel,
                cancel=cancel,
            )
            print_summary(report)
    except DumpdeckError as exc:
        log_check_outcome("restore-test", path, error=str(exc))
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
    log_check_outcome("restore-test", path, report)
    from .verify_cmd import notify_result

    notify_result(ctx, report)
    return report.outcome.exit_code
