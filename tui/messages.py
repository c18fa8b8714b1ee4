"""Typed messages: workers post these; handlers on the main thread own all UI state."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from dumpdeck.backend.outcome import Outcome

from .views import CatalogSnapshot, CheckView, DiskSnapshot, JobsSnapshot, LogChunk, ScheduleView, ServerSnapshot

# a ladder (restore-test) stopped before its verdict: LadderDone's error
STOPPED = "stopped by the operator: the dump was not checked"


@dataclass
class ServerPolled(Message):
    snapshot: ServerSnapshot


@dataclass
class CatalogPolled(Message):
    snapshot: CatalogSnapshot


@dataclass
class JobsPolled(Message):
    snapshot: JobsSnapshot


@dataclass
class DiskPolled(Message):
    snapshot: DiskSnapshot


@dataclass
class LogPolled(Message):
    chunk: LogChunk


@dataclass
class SchedulesPolled(Message):
    schedules: list[ScheduleView]


@dataclass
class CheckArrived(Message):
    """One verification check finished (posted from the verify/restore worker thread)."""

    dump_key: str
    check: CheckView


@dataclass
class LadderDone(Message):
    dump_key: str
    kind: str  # verify | restore-test
    outcome: Outcome | None  # None: it raised (error)
    error: str | None = None


@dataclass
class RunStarted(Message):
    run_id: int | None
    what: str


@dataclass
class ActionFailed(Message):
    what: str
    error: str


@dataclass
class DumpDeleted(Message):
    dump_key: str
