"""`dumpdeck prune [--dry-run] [--json]`: apply the retention policies, showing every decision and its reason."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from dumpdeck.backend import retention
from dumpdeck.backend.catalog import clean_partials
from dumpdeck.backend.naming import printable
from dumpdeck.backend.units import format_bytes

from ..output import outcome_style, print_json, style, table


def register(sub) -> None:
    p = sub.add_parser(
        "prune",
        help="delete old dumps per the retention policies (see the plan with --dry-run)",
        description="Plan retention for every dump (or one job's) and delete what no rule keeps. Each dump is "
        "listed as keep or delete with its reasons. The newest dump verified to level 2 (else the "
        "newest dump) of each database is always kept; with no policy set nothing is deleted; legacy "
        "files are kept unless --include-legacy. Databases whose latest dump attempt failed are "
        "skipped unless --force. Before anything of a database is deleted, the dump kept as its floor "
        "is checked again (sha256 now, level 1); one that fails is recorded as failed and the next "
        "must pass; if none passes, nothing of that database is deleted. --dry-run shows the re-check "
        "too (without recording it).",
        epilog="exit codes: 0 done, 1 a deletion failed or a floor re-check found a bad dump (or no good one), "
        "2 usage or configuration error",
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="show the plan, delete nothing")
    p.add_argument("--job", help="only the dumps of this job's server and databases, with its policy")
    p.add_argument("--include-legacy", action="store_true", help="let policies delete legacy files too")
    p.add_argument("--force", action="store_true", help="prune even databases whose latest dump attempt failed")
    p.add_argument(
        "--remote",
        metavar="DEST",
        help="apply copies.DEST.retention at that destination instead (floor: its newest verified copy, "
        "re-checked there before anything of the database is deleted)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _run_remote(args, ctx) -> int:
    from dumpdeck.backend import copies
    from dumpdeck.backend.state import StateStore

    config = ctx.config
    copies.destination(config, args.remote)
    with StateStore.open(config.state_db) as store:
        rp = copies.apply_remote(config, store, copies.plan_remote(config, store, args.remote), dry_run=args.dry_run)
    if args.json:
        print_json(
            {
                "destination": rp.destination,
                "dry_run": args.dry_run,
                "decisions": [
                    {"path": rp.rels[id(d.entry)], "database": d.entry.database, "keep": d.keep, "reasons": d.reasons}
                    for d in rp.decisions
                ],
                "held": rp.held,
                "deleted": rp.deleted,
                "errors": rp.errors,
            }
        )
        return 1 if rp.held or rp.errors else 0
    rows = [
        [
            style("keep", ok=True) if d.keep else style("DELETE", ok=False),
            printable(rp.rels[id(d.entry)]),
            d.entry.when.astimezone().strftime("%Y-%m-%d %H:%M"),
            "; ".join(d.reasons),
        ]
        for d in rp.decisions
    ]
    if rows:
        sys.stdout.write(table(["ACTION", "AT " + rp.destination, "WHEN", "WHY"], rows) + "\n")
    else:
        sys.stdout.write(f"no dumps at {rp.destination}\n")
    verb = "would delete" if args.dry_run else "deleted"
    sys.stdout.write(f"\n{verb} {len(rp.deleted)} dump(s) at {rp.destination}\n")
    for db in rp.held:
        sys.stderr.write(
            f"dumpdeck: {printable(db)}: no copy at {rp.destination} passed the floor re-check; nothing deleted\n"
        )
    for err in rp.errors:
        sys.stderr.write(f"dumpdeck: {printable(err)}\n")
    return 1 if rp.held or rp.errors else 0


def run(args, ctx) -> int:
    from dumpdeck.backend.catalog import scan
    from dumpdeck.backend.state import StateStore

    if args.remote:
        return _run_remote(args, ctx)
    from dumpdeck.backend import copies

    config = ctx.config
    job = config.job(args.job) if args.job else None
    catalog = scan(config.backup.dir)
    now = datetime.now(UTC)
    with StateStore.open(config.state_db) as store:
        pinned = copies.unshipped(config, store, catalog)
    decisions = retention.plan_for_config(
        config, catalog, job=job, now=now, include_legacy=args.include_legacy, pinned=pinned
    )

    held: dict[tuple, str] = {}
    if not args.force:
        store = StateStore.open(config.state_db)
        try:
            for server, db in {(d.entry.server, d.entry.database) for d in decisions if not d.keep}:
                attempt = store.latest_attempt(server, db) if server else None
                if attempt is not None and attempt.status in ("failed", "timed-out", "lost"):
                    held[(server, db)] = (
                        f"latest dump attempt (run {attempt.run_id}) {attempt.status}: "
                        "not pruned after a failure (--force to override)"
                    )
        finally:
            store.close()
    for d in decisions:
        why = held.get((d.entry.server, d.entry.database))
        if why and not d.keep:
            d.keep = True
            d.reasons.insert(0, why)

    rechecks = retention.recheck_floors(decisions, record=not args.dry_run)
    found_bad = [d for rc in rechecks for d in rc.checked if d.recheck is not None and d.recheck.failed]
    held_dbs = [rc for rc in rechecks if rc.held]
    partial_list = clean_partials(catalog.partials, min_age=config.retention.partial_max_age, dry_run=True, now=now)
    deleted = (
        []
        if args.dry_run
        else retention.apply(
            decisions,
            dry_run=False,
            partials=catalog.partials,
            partial_max_age=config.retention.partial_max_age,
            now=now,
        )
    )
    to_delete = [d for d in decisions if not d.keep]
    failed = [] if args.dry_run else [d for d in to_delete if d.entry.path not in deleted]
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "decisions": [
                    {
                        "path": str(d.entry.path),
                        "server": d.entry.server,
                        "database": d.entry.database,
                        "when": d.entry.when,
                        "size": d.entry.size,
                        "keep": d.keep,
                        "reasons": d.reasons,
                        "verified_level": d.entry.verified_level,
                        "legacy": d.entry.legacy,
                    }
                    for d in decisions
                ],
                "rechecks": [
                    {
                        "server": rc.server,
                        "database": rc.database,
                        "held": rc.held,
                        "floor": str(rc.floor.entry.path) if rc.floor else None,
                        "checked": [
                            {
                                "path": str(d.entry.path),
                                "outcome": d.recheck.outcome.value,
                                "summary": d.recheck.summary,
                            }
                            for d in rc.checked
                            if d.recheck is not None
                        ],
                    }
                    for rc in rechecks
                ],
                "partials": [str(p) for p in partial_list],
                "deleted": [str(p) for p in deleted],
                "freed_bytes": sum(d.entry.size for d in to_delete) if not failed else None,
            }
        )
        return 1 if failed or found_bad or held_dbs else 0
    if not decisions:
        sys.stdout.write(f"no dumps in {config.backup.dir}\n")
    rows = []
    for d in decisions:
        rows.append(
            [
                style("keep", ok=True) if d.keep else style("DELETE", ok=False),
                f"{d.entry.server or '-'}/{d.entry.database}",
                d.entry.when.astimezone().strftime("%Y-%m-%d %H:%M"),
                format_bytes(d.entry.size),
                f"L{d.entry.verified_level}",
                "; ".join(d.reasons),
            ]
        )
    if rows:
        sys.stdout.write(table(["ACTION", "DATABASE", "WHEN", "SIZE", "VERIFIED", "WHY"], rows) + "\n")
    if rechecks:
        sys.stdout.write(
            "\nfloor re-check before deleting (sha256 now, level 1)"
            + (" — dry run, not recorded" if args.dry_run else "")
            + ":\n"
        )
        for rc in rechecks:
            for d in rc.checked:
                if d.recheck is None:
                    continue
                o = d.recheck.outcome
                tail = " → kept as the floor" if d is rc.floor else ""
                sys.stdout.write(
                    f"  {outcome_style(o.mark, o)} {printable(rc.label)}  {d.entry.path.name}: "
                    f"{printable(d.recheck.summary)}{tail}\n"
                )
            if rc.held:
                sys.stdout.write(
                    style(
                        f"  {rc.label}: NOTHING DELETED: no dump of this database passed the re-check; "
                        f"run `dumpdeck verify` on its dumps and take a new backup",
                        ok=False,
                    )
                    + "\n"
                )
    freed = sum(d.entry.size for d in to_delete)
    verb = "would delete" if args.dry_run else "deleted"
    sys.stdout.write(
        f"\n{verb} {len(to_delete)} dump(s), {format_bytes(freed)}; kept {len(decisions) - len(to_delete)}"
        + (f"; {verb} {len(partial_list)} orphan partial file(s)" if partial_list else "")
        + "\n"
    )
    for p in partial_list:
        sys.stdout.write(f"  partial: {p}\n")
    for d in failed:
        sys.stderr.write(f"dumpdeck: could not delete {d.entry.path}\n")
    for rc in held_dbs:
        sys.stderr.write(
            f"dumpdeck: {printable(rc.label)}: no dump passed the floor re-check; nothing of it was deleted\n"
        )
    return 1 if failed or found_bad or held_dbs else 0
