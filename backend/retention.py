"""Retention: which dumps to keep, and why; then (and only then) delete the rest.

`plan` decides per database, newest first, and every decision carries its
reasons. Rules that keep a dump (any one is enough):

- `keep_last N`: the N newest dumps;
- `keep_days D`: every dump younger than D days;
- GFS `daily/weekly/monthly/yearly N`: the newest dump in each of the N most
  recent days / ISO weeks / months / years that have a dump (buckets are
  counted back from the newest dump, in UTC; a period without a dump does
  not use up a bucket);
- floors, held whatever the policy says:
  * the newest dump verified to level 2 or more (the stream decodes
    completely and the footer is there: the least that proves a dump is
    whole) is always kept;
  * if no dump of the database reached level 2, its newest dump is kept, so
    retention can never delete the last copy of a database.

What is never deleted:

- anything, when the policy is empty (no key set): retention refuses to
  guess and keeps everything;
- legacy files of the old bash scripts, unless asked (`include_legacy`);
- dumps without a readable manifest (kept for inspection; `dumpdeck list`
  shows why).

Dumps whose last verification failed do not take a keep_last or GFS slot
(a bad dump must not push a good one out) and do not count as a floor; they
are kept while younger than keep_days, and deleted otherwise.

`apply` deletes the dump, then its manifest, logging each deletion, and
removes orphan `.partial` files older than `retention.partial_max_age`
whose flock can be taken (no live writer).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .catalog import Catalog, DumpEntry, PartialFile, clean_partials
from .catalog import delete as catalog_delete
from .config import Config, JobConfig, RetentionPolicy
from .errors import DumpdeckError
from .outcome import Outcome
from .selection import covers
from .units import format_duration
from .verify import VerifyReport, verify_file
from .vocabulary import VerifyLevel

log = logging.getLogger("dumpdeck.retention")

FLOOR_LEVEL = VerifyLevel.STREAM  # the least that proves a dump is whole


@dataclass
class Decision:
    entry: DumpEntry
    keep: bool
    reasons: list[str] = field(default_factory=list)
    recheck: VerifyReport | None = None  # the floor re-check of this dump at prune time, if it was one

    @property
    def action(self) -> str:
        return "keep" if self.keep else "delete"


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _age(now: datetime, when: datetime) -> str:
    return format_duration(max(0.0, (now - when).total_seconds()))


BUCKETS = (
    ("daily", lambda d: d.strftime("%Y-%m-%d")),
    ("weekly", lambda d: "{:04d}-W{:02d}".format(*d.isocalendar()[:2])),
    ("monthly", lambda d: d.strftime("%Y-%m")),
    ("yearly", lambda d: d.strftime("%Y")),
)


def describe(policy: RetentionPolicy) -> str:
    parts = []
    if policy.keep_last is not None:
        parts.append(f"keep_last {policy.keep_last}")
    if policy.keep_days is not None:
        parts.append(f"keep_days {policy.keep_days:g}")
    for name, _ in BUCKETS:
        if getattr(policy, name):
            parts.append(f"{name} {getattr(policy, name)}")
    return ", ".join(parts) or "no policy"


def _failed_verification(e: DumpEntry) -> bool:
    """Only a failed verification condemns a dump; one that could not check (not checked) does not."""
    return e.last_result is Outcome.FAILED


def plan(
    entries: Iterable[DumpEntry],
    policy: RetentionPolicy,
    now: datetime | None = None,
    *,
    include_legacy: bool = False,
    pinned: Mapping[str, str] | None = None,
) -> list[Decision]:
    """Decide keep/delete for every entry (grouped per server and database), with reasons.
    Decisions come back in the order of `entries`. `pinned` (dump key → reason) are kept whatever
    the policy says (backend.copies: dumps not copied to any destination yet)."""
    now = _utc(now or datetime.now(UTC))
    entries = list(entries)
    decisions: dict[int, Decision] = {}
    groups: dict[tuple[str | None, str], list[DumpEntry]] = {}
    for e in entries:
        groups.setdefault((e.server, e.database), []).append(e)
    for group in groups.values():
        for d in _plan_group(group, policy, now, include_legacy):
            why = (pinned or {}).get(d.entry.key)
            if why is not None and not d.entry.legacy:
                d.keep = True
                d.reasons.append(why)
            decisions[id(d.entry)] = d
    return [decisions[id(e)] for e in entries]


def _plan_group(group: list[DumpEntry], policy: RetentionPolicy, now: datetime, include_legacy: bool) -> list[Decision]:
    group = sorted(group, key=lambda e: _utc(e.when), reverse=True)
    out = {id(e): Decision(e, False, []) for e in group}

    def keep(e: DumpEntry, reason: str) -> None:
        d = out[id(e)]
        d.keep = True
        d.reasons.append(reason)

    managed: list[DumpEntry] = []
    for e in group:
        if e.legacy and not include_legacy:
            keep(e, "legacy file of the old backup scripts: never deleted by retention unless asked (--include-legacy)")
        elif not e.legacy and (e.manifest is None or e.manifest_error):
            keep(e, f"no readable manifest ({e.manifest_error or 'missing'}): kept for inspection")
        else:
            managed.append(e)

    if policy.empty:
        for e in managed:
            keep(e, "no retention policy is set: everything is kept")
        return [out[id(e)] for e in group]

    good = [e for e in managed if not _failed_verification(e)]
    bad = {id(e) for e in managed if _failed_verification(e)}

    if policy.keep_last is not None:
        for i, e in enumerate(good[: policy.keep_last]):
            keep(e, f"keep_last {policy.keep_last}: #{i + 1} newest")
    if policy.keep_days is not None:
        limit = now - timedelta(days=policy.keep_days)
        for e in managed:
            if _utc(e.when) >= limit:
                keep(e, f"keep_days {policy.keep_days:g}: {_age(now, _utc(e.when))} old")
    for name, key in BUCKETS:
        count = getattr(policy, name)
        if not count:
            continue
        seen: list[str] = []
        for e in good:
            k = key(_utc(e.when))
            if k in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(k)
            keep(e, f"{name} {count}: newest of {k} (bucket {len(seen)} of {count})")

    # floors
    verified = next((e for e in good if (e.verified_level or 0) >= FLOOR_LEVEL), None)
    if verified is not None:
        keep(
            verified,
            f"floor: newest dump verified to level {FLOOR_LEVEL}+ (level {verified.verified_level}) is always kept",
        )
    elif good:
        keep(good[0], f"floor: newest dump of the database (none verified to level {FLOOR_LEVEL} yet) is always kept")

    policy_text = describe(policy)
    for e in managed:
        d = out[id(e)]
        if not d.keep:
            if id(e) in bad:
                d.reasons.append(
                    f"last verification failed: takes no slot; older than the policy keeps "
                    f"({policy_text}), {_age(now, _utc(e.when))} old"
                )
            else:
                d.reasons.append(f"not kept by any rule ({policy_text}); {_age(now, _utc(e.when))} old")
    return [out[id(e)] for e in group]


# --------------------------------------------------------------------------- per config


def policy_for(config: Config, server: str | None, database: str, job: JobConfig | None = None) -> RetentionPolicy:
    """Per-database policy, else the given job's, else the first job covering the database, else default."""
    if database in config.retention.databases:
        return config.retention.databases[database]
    if job is not None and job.retention is not None:
        return job.retention
    for j in config.jobs.values():
        if j.retention is not None and covers(j, server, database):
            return j.retention
    return config.retention.default


def plan_for_config(
    config: Config,
    catalog: Catalog,
    job: JobConfig | None = None,
    now: datetime | None = None,
    *,
    include_legacy: bool = False,
    pinned: Mapping[str, str] | None = None,
) -> list[Decision]:
    """Plan for every dump in the catalog (or only the job's server and databases); `pinned` as in `plan`."""
    entries = list(catalog.entries)
    if job is not None:
        entries = [e for e in entries if e.server is not None and covers(job, e.server, e.database)]
    groups: dict[tuple[str | None, str], list[DumpEntry]] = {}
    for e in entries:
        groups.setdefault((e.server, e.database), []).append(e)
    out: list[Decision] = []
    for (server, database), group in groups.items():
        out.extend(
            plan(group, policy_for(config, server, database, job), now, include_legacy=include_legacy, pinned=pinned)
        )
    return out


# --------------------------------------------------------------------------- floor re-check


@dataclass
class Recheck:
    """The floor re-check of one database before anything of it is deleted."""

    server: str | None
    database: str
    checked: list[Decision] = field(default_factory=list)  # in the order they were checked
    floor: Decision | None = None  # the dump that passed and is kept as the floor

    @property
    def held(self) -> bool:
        """No dump passed: nothing of this database is deleted."""
        return self.floor is None

    @property
    def label(self) -> str:
        return f"{self.server or '-'}/{self.database}"


def _candidates(ds: list[Decision]) -> list[Decision]:
    """Floor candidates, best first: dumps verified to FLOOR_LEVEL+ newest first, then the others newest first.
    A dump whose last verification failed, or whose manifest is unreadable, is never a floor."""
    ok = [d for d in ds if not _failed_verification(d.entry) and not d.entry.manifest_error]
    ok.sort(key=lambda d: _utc(d.entry.when), reverse=True)
    return [d for d in ok if (d.entry.verified_level or 0) >= FLOOR_LEVEL] + [
        d for d in ok if (d.entry.verified_level or 0) < FLOOR_LEVEL
    ]


def recheck_floors(decisions: list[Decision], *, record: bool = True) -> list[Recheck]:
    """Before any dump of a database is deleted, check the dump kept as its floor again at level 1
    (sha256 now, against the manifest or the recorded digest of a legacy file; level 2 when a legacy
    file has no recorded digest yet). A dump that fails is recorded as failed (`record`) and the next
    candidate must pass; the one that passes is kept. When none passes, every dump of the database is
    kept and the Recheck says so (`held`). Databases with nothing to delete are not checked.
    Changes `decisions` in place; `apply` calls it for any database not re-checked yet."""
    groups: dict[tuple[str | None, str], list[Decision]] = {}
    for d in decisions:
        groups.setdefault((d.entry.server, d.entry.database), []).append(d)
    out: list[Recheck] = []
    for (server, database), ds in groups.items():
        if all(d.keep for d in ds) or any(d.recheck is not None and d.recheck.passed for d in ds):
            continue
        rc = Recheck(server, database)
        for d in _candidates(ds):
            report = verify_file(d.entry.path, 1, record=record)
            if report.outcome is Outcome.NOT_CHECKED:  # nothing to compare with yet: prove the stream whole
                report = verify_file(d.entry.path, 2, record=record)
            d.recheck = report
            rc.checked.append(d)
            if report.passed:
                rc.floor = d
                reason = f"floor: re-checked now, {report.summary}"
                if not d.keep:
                    d.keep = True
                    d.reasons = [reason + " (the dump kept before it did not pass)"]
                else:
                    d.reasons.append(reason)
                break
            what = "recorded as failed" if report.failed and record else report.outcome.label
            d.reasons.append(f"floor re-check: {report.summary} ({what}); not a floor")
        if rc.floor is None:
            for d in ds:
                if not d.keep:
                    d.keep = True
                    d.reasons.insert(0, "held: no dump of this database passed the floor re-check; nothing deleted")
            log.error(
                "retention: nothing of %s deleted: no dump passed the floor re-check (%d checked)",
                rc.label,
                len(rc.checked),
            )
        out.append(rc)
    return out


# --------------------------------------------------------------------------- apply


def apply(
    decisions: list[Decision],
    *,
    dry_run: bool,
    partials: Iterable[PartialFile] = (),
    partial_max_age: float | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Delete what the plan says (dump, then manifest) and old orphan partials. Returns the deleted
    paths (dumps and partials; in a dry run, what would be deleted). Databases whose floor was not
    re-checked yet are re-checked first (`recheck_floors`): nothing is deleted on a recorded verdict."""
    deleted: list[Path] = []
    recheck_floors(decisions, record=not dry_run)
    # Guard: never empty a database in one go when the plan was built with the floor (defence in depth).
    by_db: dict[tuple[str | None, str], list[Decision]] = {}
    for d in decisions:
        by_db.setdefault((d.entry.server, d.entry.database), []).append(d)
    for key, ds in by_db.items():
        if ds and not any(d.keep for d in ds) and not all(_failed_verification(d.entry) for d in ds):
            raise RuntimeError(f"retention plan would delete every dump of {key[1]!r}; refusing")
    for d in decisions:
        if d.keep:
            continue
        path = Path(d.entry.path)
        if dry_run:
            deleted.append(path)
            continue
        try:
            catalog_delete(path, "retention: " + "; ".join(d.reasons))
        except DumpdeckError as exc:
            log.error("retention: %s", exc)
            continue
        deleted.append(path)
    if partial_max_age is not None:
        removed = clean_partials(partials, min_age=partial_max_age, dry_run=dry_run, now=now)
        for path in removed if not dry_run else ():
            log.info("retention: removed orphan partial %s", path)
        deleted.extend(removed)
    return deleted
