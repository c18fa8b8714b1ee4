"""`dumpdeck verify FILE | --latest DB [--server S] [--level 1-3] [--json]`: the verification ladder."""

from __future__ import annotations

import sys
from pathlib import Path

from dumpdeck.backend import catalog
from dumpdeck.backend.errors import DumpdeckError, UsageError
from dumpdeck.backend.logs import log_check_outcome, log_check_start, setup_logging
from dumpdeck.backend.naming import printable
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.verify import LEVEL_NAMES, CheckResult, VerifyReport, verify_file

from ..options import add_identity_option
from ..output import outcome_style, print_json, style


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a dump: file, stream, content (levels 1-3)",
        description="Check a dump level by level: L1 file (exists, sha256 matches the manifest), L2 stream "
        "(decodes completely, dump header and '-- Dump completed' footer), L3 content (statement "
        "statistics against the manifest's inventory, nothing outside the database). Stops at the "
        "first failing level; the result is appended to the manifest. An age-encrypted dump (.age) is "
        "decrypted with encryption.identity_file; without it L1 still runs and L2-L3 are not checked (its "
        "manifest shows what was checked in-stream, before encryption, when it was dumped).",
        epilog="exit codes: 0 passed, 1 failed (the dump is bad), 2 usage error, 4 not checked (a check could not "
        "run, e.g. no manifest to compare the sha256 with at --level 1, or no identity for an encrypted dump: "
        "nothing was found wrong, but the level "
        "asked for is not proven)",
    )
    add_target_args(p)
    p.add_argument("--level", "-l", type=int, choices=[1, 2, 3], default=3, help="highest level to check (default 3)")
    p.add_argument("--no-record", action="store_true", help="do not append the result to the manifest")
    p.add_argument(
        "--remote",
        metavar="DEST",
        help="instead: re-check this host's copies at copy destination DEST (size and sha256 there, now); "
        "a copy that fails is recorded failed, stops counting as a retention floor, and is copied again",
    )
    p.add_argument(
        "--subset",
        metavar="N/M",
        help="with --remote: only the N-th of M shares of the copies (restic --read-data-subset style); "
        "e.g. from cron, one seventh a night: --subset $(( $(date +%%u) ))/7",
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    add_identity_option(p)
    p.set_defaults(func=run)


def _run_remote(args, ctx) -> int:
    from dumpdeck.backend import copies
    from dumpdeck.backend.state import StateStore

    config = ctx.config
    subset = copies.parse_subset(args.subset) if args.subset else None
    copies.destination(config, args.remote)

    def show(res) -> None:
        if not args.json:
            o = res.outcome
            sys.stdout.write(f"  {outcome_style(o.mark, o)} {printable(res.remote_path)}: {printable(res.evidence)}\n")

    if not args.json:
        sys.stdout.write(f"copies at {args.remote}" + (f", share {args.subset}" if subset else "") + ":\n")
    with StateStore.open(config.state_db) as store:
        results = copies.verify_copies(
            config, store, catalog.scan(config.backup.dir), args.remote, subset=subset, on_result=show
        )
    outcome = Outcome.combine(r.outcome for r in results) if results else Outcome.NOT_CHECKED
    if args.json:
        print_json(
            {
                "destination": args.remote,
                "subset": args.subset,
                "outcome": outcome.value,
                "copies": [
                    {"path": r.remote_path, "outcome": r.outcome.value, "evidence": r.evidence, "method": r.method}
                    for r in results
                ],
            }
        )
    else:
        bad = sum(1 for r in results if r.outcome is Outcome.FAILED)
        unchecked = sum(1 for r in results if r.outcome is Outcome.NOT_CHECKED)
        sys.stdout.write(
            f"{len(results)} copies checked: {len(results) - bad - unchecked} passed, {bad} failed, "
            f"{unchecked} not checked\n"
            if results
            else "no verified copies to check (not checked)\n"
        )
    return outcome.exit_code


def add_target_args(p) -> None:
    p.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the dump file")
    p.add_argument("--latest", metavar="DB", help="the newest dump of this database (from the backup directory)")
    p.add_argument("--server", "-s", help="with --latest: only dumps of this server")


def resolve_file(args, ctx) -> Path:
    if args.file is not None and args.latest:
        raise UsageError("give either FILE or --latest DB, not both")
    if args.file is not None:
        if not args.file.exists():
            raise UsageError(f"{args.file}: no such file")
        return args.file
    if not args.latest:
        raise UsageError("name a dump FILE or use --latest DB")
    cat = catalog.scan(ctx.config.backup.dir)
    entry = cat.latest(args.latest, args.server)
    if entry is None:
        where = f" of server {args.server}" if args.server else ""
        raise UsageError(f"no dump of database {args.latest!r}{where} in {ctx.config.backup.dir}")
    return entry.path


class Checklist:
    """Prints each check as it completes: ✓ passed, ✗ failed, ? not checked; level, name, evidence."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.level = 0

    def __call__(self, c: CheckResult) -> None:
        if c.level != self.level:
            self.level = c.level
            self.stream.write(style(f"L{c.level} {LEVEL_NAMES.get(c.level, '')}", bold=True, stream=self.stream) + "\n")
        mark = outcome_style(c.outcome.mark, c.outcome, stream=self.stream)
        label = "" if c.outcome is Outcome.PASSED else f"{c.outcome.label}: "
        self.stream.write(f"  {mark} {printable(c.name)}: {label}{printable(c.evidence)}\n")
        self.stream.flush()


def print_summary(report: VerifyReport, stream=None) -> None:
    stream = stream or sys.stdout
    text = f"{report.path.name}: {report.summary} in {report.duration:.1f}s"
    stream.write(outcome_style(text, report.outcome, bold=True, stream=stream) + "\n")


def log_to_file(ctx) -> None:
    """Send this command's log lines (start and outcome) to the configured log file, where the
    console's Log pane shows them. Verifying a FILE needs no configuration: without one there is
    no log file to write."""
    try:
        config = ctx.config
    except DumpdeckError:
        return
    setup_logging(config)


def run(args, ctx) -> int:
    if args.subset and not args.remote:
        raise UsageError("--subset goes with --remote DEST")
    if args.remote:
        if args.file is not None or args.latest:
            raise UsageError("give either --remote DEST or a dump (FILE / --latest DB), not both")
        return _run_remote(args, ctx)
    path = resolve_file(args, ctx)
    log_to_file(ctx)
    log_check_start("verify", path)
    try:
        if args.json:
            report = verify_file(path, args.level, record=not args.no_record)
            print_json(report.to_dict())
        else:
            sys.stdout.write(style(str(path), dim=True) + "\n")
            report = verify_file(path, args.level, on_check=Checklist(), record=not args.no_record)
            print_summary(report)
    except DumpdeckError as exc:
        log_check_outcome("verify", path, error=str(exc))
        raise
    log_check_outcome("verify", path, report)
    notify_result(ctx, report)
    return report.outcome.exit_code


def notify_result(ctx, report: VerifyReport) -> None:
    """A recorded verification outside a run notifies like one inside a run (smart: failures and the
    recovery after them). Best effort: no config, no manifest or a mail failure never changes the result."""
    if not report.recorded:
        return
    try:
        from dumpdeck.backend import manifest as manifest_mod
        from dumpdeck.backend import postrun
        from dumpdeck.backend.state import open_store

        config = ctx.config
        m = manifest_mod.load(report.path)
        if not m.verifications:
            return
        with open_store(config) as store:
            postrun.notify_verification(
                config, store, m.server.get("name", "?"), m.database, str(report.path), m.verifications[-1]
            )
    except Exception:
        return
