"""The words every layer shares, defined once: run and dump statuses, triggers, event levels,
severities, verification levels.

Statuses and severities are `StrEnum`s (levels an `IntEnum`), so a member is also the plain
string (or number) stored in the state database, written into manifests and JSON, and
printed: `RunStatus.TIMED_OUT == "timed-out"`. Code compares and stores members; readers of
old rows get the same strings back. Triggers and event levels are `Literal`s: plain words
that mypy checks at every call.

Codecs are `codecs.Codec`; verification outcomes belong to the verification
ladder. Nothing here imports anything of the project.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum
from typing import Literal, get_args


class RunStatus(StrEnum):
    """A run (one job or ad-hoc selection, one runner process)."""

    QUEUED = "queued"  # written, its runner not yet running it
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every database dumped (and verified at the job's level)
    FAILED = "failed"
    TIMED_OUT = "timed-out"  # every failure was a timeout (max_runtime, backup.timeout, stall)
    CANCELLED = "cancelled"
    LOST = "lost"  # its runner died (killed, crashed, host rebooted): found by the state store
    SKIPPED = "skipped"  # the job was already running under its lock

    @property
    def active(self) -> bool:
        return self in ACTIVE_RUN_STATUSES

    @property
    def bad(self) -> bool:
        """A run that failed the job (a cancelled or skipped run says nothing about its health)."""
        return self in (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST)


ACTIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
FINAL_RUN_STATUSES = frozenset(RunStatus) - ACTIVE_RUN_STATUSES


class DbStatus(StrEnum):
    """One database within a run (a progress row)."""

    PENDING = "pending"
    RUNNING = "running"
    VERIFYING = "verifying"  # dumped (its bytes are final); its verification runs
    RETRYING = "retrying"  # failed; the next attempt waits for its delay
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed-out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def active(self) -> bool:
        return self in (DbStatus.PENDING, DbStatus.RUNNING, DbStatus.VERIFYING, DbStatus.RETRYING)


# Who started a run.
Trigger = Literal["console", "cron", "cli"]
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)

# The level of an event in a run's record.
EventLevel = Literal["info", "warning", "error"]


class Severity(StrEnum):
    """How bad a finding is, in the order of a Nagios check: ok < warning < critical."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def code(self) -> int:
        """The Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL."""
        return _SEVERITY_CODES[self]

    @classmethod
    def worst(cls, severities: Iterable[Severity]) -> Severity:
        """The most severe of `severities`; OK when there are none."""
        return max(severities, key=lambda s: s.code, default=cls.OK)


_SEVERITY_CODES = {Severity.OK: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class VerifyLevel(IntEnum):
    """How far a dump has been proven: each level includes the ones below it."""

    NONE = 0
    FILE = 1  # exists, not empty, sha256 matches the manifest
    STREAM = 2  # decodes completely; header and `-- Dump completed` footer present
    CONTENT = 3  # SQL statistics match the manifest; no USE / CREATE DATABASE
    RESTORE = 4  # loaded into a scratch database and compared

    @property
    def label(self) -> str:
        return _LEVEL_LABELS[self]


_LEVEL_LABELS = {
    VerifyLevel.NONE: "not verified",
    VerifyLevel.FILE: "file",
    VerifyLevel.STREAM: "stream",
    VerifyLevel.CONTENT: "content",
    VerifyLevel.RESTORE: "restore-test",
}
