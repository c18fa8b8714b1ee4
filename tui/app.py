"""The dumpdeck console: a Textual App that is a window onto the backend.

It holds no job state of its own. Dumps run in the backend's detached runner;
the App polls the state store, the catalog, the servers, the disk and the log
file in thread workers (one-shot poll → message → render → re-arm timer, never
overlapping), keeps the latest snapshots, and lets the active screen render them.
Verification and restore-tests run in App-level workers (they survive leaving the
dumps browser) and stream their checks as messages.

`make_app(config, ...)` is the factory tests use; `run_console(config)` runs it.
"""

from __future__ import annotations

import gc
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from textual import on, work
from textual.notifications import SeverityLevel
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from dumpdeck.backend.config import Config
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.naming import printable
from dumpdeck.backend.outcome import Outcome
from dumpdeck.themes import STYLESHEET, THEME_NAMES, register_themes, resolve_theme_name

from . import actions
from .adapter import ConsoleBackend, LiveBackend
from .base import ConsoleApp, Ladder
from .commands_palette import ActionsProvider
from .messages import (
    STOPPED,
    ActionFailed,
    CatalogPolled,
    CheckArrived,
    DiskPolled,
    DumpDeleted,
    JobsPolled,
    LadderDone,
    LogPolled,
    RunStarted,
    SchedulesPolled,
    ServerPolled,
)
from .views import (
    CatalogSnapshot,
    DiskSnapshot,
    DumpView,
    JobsSnapshot,
    RunView,
    ScheduleView,
    ServerSnapshot,
)

# how a verification's verdict is announced in a toast
OUTCOME_SEVERITY: dict[Outcome, SeverityLevel] = {
    Outcome.PASSED: "information",
    Outcome.FAILED: "error",
    Outcome.NOT_CHECKED: "warning",
}


@dataclass(frozen=True)
class Intervals:
    jobs: float = 1.0
    log: float = 1.0
    servers: float = 15.0
    catalog: float = 60.0  # also rescanned when a run ends, after a verify, a restore-test or a delete
    disk: float = 60.0


class DumpdeckApp(ConsoleApp):
    TITLE = "dumpdeck"
    CSS_PATH = str(STYLESHEET)
    BINDINGS = actions.bindings("app")
    COMMANDS = {ActionsProvider}
    COMMAND_PALETTE_BINDING = "ctrl+p"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        config: Config,
        *,
        backend: ConsoleBackend | None = None,
        read_only: bool = False,
        theme: str | None = None,
        intervals: Intervals | None = None,
        live: bool = True,
        now: Callable[[], float] | None = None,
        quit_note: str | None = None,
        reopen: str | None = None,
    ):
        super().__init__()
        self.config = config
        self.quit_note = quit_note  # what else quitting means here (the demo: its sandbox waits for the runs)
        # the command that opens this console again (said when quitting with runs active)
        self.reopen = reopen or reopen_command(config)
        self.backend = backend or LiveBackend(config)
        self.read_only = read_only
        self.live = live  # False: poll once, never re-arm (snapshot tests)
        refresh = config.console.refresh
        self.intervals = intervals or Intervals(jobs=refresh, log=refresh)
        self.now: Callable[[], float] = now or self.backend.now
        self.servers: dict[str, ServerSnapshot | None] = {n: None for n in config.servers}
        self.catalog = CatalogSnapshot()
        self.jobs = JobsSnapshot()
        self.disk = DiskSnapshot()
        self.schedules: list[ScheduleView] = []
        self.ladders: dict[str, Ladder] = {}
        self.paused = False
        self.poll_counts: dict[str, int] = {}
        self.keymap: dict[str, str] = {}
        self._keymap_problems: list[str] = []
        self._poll_timers: dict[str, Timer] = {}
        self._polling: set[str] = set()
        self._active_run_ids: set[int] = set()
        self._dumped: set[tuple[int, str]] = set()  # (run, database) of active runs already dumped
        self._cancel_sent: dict[int, float] = {}  # run id → when this console sent its cancel
        self._catalog_force = False
        self._last_full_gc = time.monotonic()
        register_themes(self)
        self._theme_name = resolve_theme_name(theme or config.console.theme)

    def notify(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Every toast: names in it (databases, tables, errors from servers) with control characters escaped,
        and shown as plain text: a name like `[bold]x` or `a[b` is not Rich markup (it was styled, or
        raised MarkupError and lost the toast)."""
        kwargs.setdefault("markup", False)
        super().notify(printable(message, keep_newlines=True), *args, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def on_mount(self) -> None:
        try:
            self.theme = self._theme_name
        except Exception:
            self.notify(f"unknown theme {self._theme_name!r}; themes: {', '.join(THEME_NAMES)}", severity="warning")
            self.theme = resolve_theme_name(None)
        self.keymap, self._keymap_problems = actions.check_keymap(dict(self.config.console.keys))
        if self.keymap:
            self.set_keymap(self.keymap)
        for problem in self._keymap_problems:
            self.notify(problem, severity="warning", timeout=8)
        for name in self.config.servers:
            self._poll_server_soon(name, 0)
        for kind in ("jobs", "log", "catalog"):
            self._arm(kind, 0)

    def get_default_screen(self):
        from .screens.dashboard import DashboardScreen

        return DashboardScreen()

    def get_system_commands(self, screen):
        # Keep Textual's system commands (theme, keys, screenshot…) after ours.
        yield from super().get_system_commands(screen)

    # ------------------------------------------------------------------ polling
    def _arm(self, kind: str, delay: float) -> None:
        """Schedule the next one-shot poll of `kind` (replacing a pending timer)."""
        old = self._poll_timers.pop(kind, None)
        if old is not None:
            old.stop()
        if delay <= 0:
            self._start_poll(kind)
        else:
            self._poll_timers[kind] = self.set_timer(delay, lambda: self._start_poll(kind), name=f"poll-{kind}")

    def _start_poll(self, kind: str) -> None:
        self._poll_timers.pop(kind, None)
        if kind in self._polling:  # a poll is still running: it re-arms when it ends
            return
        self._polling.add(kind)
        if kind.startswith("server:"):
            self._poll_server_worker(kind.split(":", 1)[1])
        elif kind == "jobs":
            self._poll_jobs_worker()
        elif kind == "log":
            self._poll_log_worker()
        elif kind == "catalog":
            self._poll_catalog_worker()
        elif kind == "disk":
            self._poll_disk_worker()
        elif kind == "schedules":
            self._poll_schedules_worker()

    def _poll_server_soon(self, name: str, delay: float) -> None:
        self._arm(f"server:{name}", delay)

    def _done(self, kind: str, delay: float | None) -> None:
        self._polling.discard(kind)
        self.poll_counts[kind] = self.poll_counts.get(kind, 0) + 1
        if self.live and delay is not None:
            self._arm(kind, delay)

    def poll_now(self) -> None:
        for name in self.config.servers:
            self._arm(f"server:{name}", 0)
        for kind in ("jobs", "log"):
            self._arm(kind, 0)
        self.rescan_catalog()

    def rescan_catalog(self) -> None:
        """Rescan the backup directory now, even if no directory mtime moved (an event said so)."""
        self._catalog_force = True
        self._arm("catalog", 0)

    @work(thread=True, group="poll-servers", exit_on_error=False, description="inventory of one server")
    def _poll_server_worker(self, name: str) -> None:
        self.post_message(ServerPolled(self.backend.poll_server(name)))

    @work(thread=True, group="poll-jobs", exit_on_error=False, description="runs and progress from the state store")
    def _poll_jobs_worker(self) -> None:
        self.post_message(JobsPolled(self.backend.poll_jobs()))

    @work(thread=True, group="poll-log", exit_on_error=False, description="tail of the log file")
    def _poll_log_worker(self) -> None:
        self.post_message(LogPolled(self.backend.poll_log()))

    @work(thread=True, group="poll-catalog", exit_on_error=False, description="scan of the backup directory")
    def _poll_catalog_worker(self) -> None:
        force, self._catalog_force = self._catalog_force, False
        self.post_message(CatalogPolled(self.backend.poll_catalog(force=force)))

    @work(thread=True, group="poll-disk", exit_on_error=False, description="volumes and footprint")
    def _poll_disk_worker(self) -> None:
        self.post_message(DiskPolled(self.backend.poll_disk(self.catalog)))

    @work(thread=True, group="poll-schedules", exit_on_error=False, description="jobs and their next runs")
    def _poll_schedules_worker(self) -> None:
        self.post_message(SchedulesPolled(self.backend.poll_schedules()))

    def _render_allowed(self) -> bool:
        """Render only when not paused, a screen is up and mounted (a poll can answer before the
        first screen is composed, or after quitting began), and no modal is on top of it."""
        from textual.app import ScreenStackError
        from textual.screen import ModalScreen

        if self.paused:
            return False
        try:
            screen = self.screen
        except ScreenStackError:
            return False
        return screen.is_mounted and not isinstance(screen, ModalScreen)

    def _render(self, what: str | None = None) -> None:
        """Ask the active screen to render; `what` names the snapshot that changed (None: all)."""
        if self._render_allowed():
            fn = getattr(self.screen, "render_state", None)
            if fn is not None:
                from textual.css.query import NoMatches

                try:
                    fn(what)
                except NoMatches:
                    # The screen's widgets are not composed yet (or are being removed while the
                    # app quits): nothing to render now; the next poll renders it.
                    pass

    @on(ServerPolled)
    def _server_polled(self, message: ServerPolled) -> None:
        snap = message.snapshot
        old = self.servers.get(snap.name)
        if not snap.reachable and old is not None:
            # down: keep what it last said of its databases, and since when it is down
            snap = replace(
                snap,
                databases=snap.databases or old.databases,
                down_since=old.down_since if not old.reachable and old.down_since else snap.polled_at,
            )
        elif not snap.reachable:
            snap = replace(snap, down_since=snap.down_since or snap.polled_at)
        self.servers[snap.name] = snap
        self._done(
            f"server:{snap.name}", self.intervals.servers if snap.reachable else min(10.0, self.intervals.servers)
        )
        if old is None or _server_shown(old) != _server_shown(snap):
            self._render("servers")

    @on(JobsPolled)
    def _jobs_polled(self, message: JobsPolled) -> None:
        self.jobs = self._with_cancels(message.snapshot)
        now_active = {r.id for r in self.jobs.active}
        finished = self._active_run_ids - now_active
        self._active_run_ids = now_active
        dumped = {(r.id, p.database) for r in self.jobs.active for p in r.progress if p.status == "succeeded"}
        new_dumps = dumped - self._dumped
        self._dumped = dumped
        self._done("jobs", self.intervals.jobs)
        if (finished or new_dumps) and self.live:  # a run ended, or one of its dumps: on disk now
            self.rescan_catalog()
        self._render("jobs")

    def _with_cancels(self, snap: JobsSnapshot) -> JobsSnapshot:
        """A cancel this console sent shows as 'cancelling' at once, before the runner's event lands."""
        if not self._cancel_sent:
            return snap
        active = {r.id for r in snap.active}
        self._cancel_sent = {rid: at for rid, at in self._cancel_sent.items() if rid in active}
        runs = tuple(
            replace(r, cancel_requested=r.cancel_requested or self._cancel_sent[r.id])
            if r.id in self._cancel_sent
            else r
            for r in snap.runs
        )
        return replace(snap, runs=runs)

    @on(CatalogPolled)
    def _catalog_polled(self, message: CatalogPolled) -> None:
        changed = message.snapshot is not self.catalog
        self.catalog = message.snapshot
        # an event asked for a rescan while this scan ran: do it now, not in a minute
        self._done("catalog", 0 if self._catalog_force else self.intervals.catalog)
        self._arm("disk", 0)  # free space moves even when the catalog does not
        if changed:
            # The catalog is ~100 long-lived objects per dump (a million for 10,000 dumps). Left
            # in the collector's oldest generation, every full collection walks all of them:
            # pauses of 0.3-2 s every few seconds while the panes churn. Freezing moves them out
            # of the collector's sight; they are still freed by reference counting when the
            # next catalog replaces this one. Cyclic garbage frozen with them (a screen dismissed
            # later) would never be collected, so: young generations are collected first, and at
            # most every 30 minutes everything is unfrozen for one full collection.
            now = time.monotonic()
            if now - self._last_full_gc > 1800:
                gc.unfreeze()
                gc.collect()
                self._last_full_gc = now
            else:
                gc.collect(1)
            gc.freeze()
            self._render("catalog")

    @on(DiskPolled)
    def _disk_polled(self, message: DiskPolled) -> None:
        changed = message.snapshot != self.disk
        self.disk = message.snapshot
        self._done("disk", None)  # the catalog poll re-arms the disk poll
        if changed:
            self._render("disk")

    @on(LogPolled)
    def _log_polled(self, message: LogPolled) -> None:
        self._done("log", self.intervals.log)
        dash = self._dashboard()
        if dash is not None:
            from textual.css.query import NoMatches

            try:
                if message.chunk.lines or message.chunk.reset:
                    dash.add_log_lines(message.chunk.lines, message.chunk.reset)
                dash.set_log_error(message.chunk.error)
            except NoMatches:
                # as in _render: the log pane is not composed yet, or is being removed while the app
                # quits (a CI run met a poll answering during the teardown of a test's console)
                pass

    @on(SchedulesPolled)
    def _schedules_polled(self, message: SchedulesPolled) -> None:
        self.schedules = message.schedules
        self._done("schedules", None)
        self._render("schedules")

    def _dashboard(self):
        from .screens.dashboard import DashboardScreen

        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        return None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures become visible: a toast, and the poll is re-armed."""
        worker = event.worker
        if event.state != WorkerState.ERROR:
            return
        error = worker.error
        text = str(error) if isinstance(error, DumpdeckError) else f"{type(error).__name__}: {error}"
        group = worker.group or ""
        if group.startswith("poll-"):
            kind = group[5:]
            if kind == "servers":
                return  # poll_server never raises; nothing to re-arm by group
            self._done(kind, max(5.0, getattr(self.intervals, kind, 5.0)) if kind != "disk" else None)
            self.notify(f"{worker.description}: {text}", severity="error", timeout=6)
        else:
            self.notify(f"{worker.description} failed: {text}", severity="error", timeout=10)

    # ------------------------------------------------------------------ screens
    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(self.keymap, self.read_only))

    def action_open_dumps(self) -> None:
        from .screens.dumps import DumpsScreen

        if not isinstance(self.screen, DumpsScreen):
            self.push_screen(DumpsScreen())
        self.rescan_catalog()

    def action_open_schedules(self) -> None:
        from .screens.schedules import SchedulesScreen

        if not isinstance(self.screen, SchedulesScreen):
            self.push_screen(SchedulesScreen())
        self._arm("schedules", 0)

    def open_run(self, run_id: int) -> None:
        from .screens.run_detail import RunDetailScreen

        self.push_screen(RunDetailScreen(run_id))

    def open_database(self, key: str) -> None:
        """The database (`server/name`) in detail: its dumps, its last runs, its server's state."""
        from .screens.database import DatabaseScreen

        server, _, database = key.partition("/")
        self.push_screen(DatabaseScreen(server, database))
        self.rescan_catalog()

    def action_cycle_theme(self) -> None:
        names = [n for n in THEME_NAMES if n in self.available_themes]
        i = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(i + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)
        self._render()

    def watch_theme(self, theme: str) -> None:
        # tone colours are taken from the theme when rows render
        self.call_later(self._render)

    # ------------------------------------------------------------------ quitting
    def _quit_message(self) -> str | None:
        active = self.jobs.active
        if not active:
            return None
        ids = ", ".join(f"#{r.id}" for r in active[:5])
        return (
            f"dumpdeck: {len(active)} run(s) still running ({ids}); they continue in the background"
            + (f" ({self.quit_note})" if self.quit_note else "")
            + f". Run `{self.reopen}` to watch them."
        )

    def action_request_quit(self) -> None:
        message = self._quit_message()
        if message is None:
            self.exit(0)
            return
        from .screens.modals import ConfirmModal

        def done(ok: bool | None) -> None:
            if ok:
                self.exit(0, message=message)

        self.push_screen(
            ConfirmModal(
                "Quit the console?",
                message.replace("dumpdeck: ", "") + "\nQuitting does not stop them.",
                confirm_label="Quit",
                cancel_label="Stay",
                danger=False,
            ),
            done,
        )

    async def action_quit(self) -> None:
        self.exit(0, message=self._quit_message())

    # ------------------------------------------------------------------ backups and runs
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (self.read_only and action in actions.DESTRUCTIVE_ACTIONS)

    def start_backup(self, server: str, databases: list[str]) -> None:
        if self.read_only:
            return
        self._start_backup_worker(server, list(databases))

    @work(thread=True, group="actions", exit_on_error=False, description="start a backup run")
    def _start_backup_worker(self, server: str, databases: list[str]) -> None:
        try:
            run_id = self.backend.start_backup(server, databases)
        except DumpdeckError as exc:
            self.post_message(ActionFailed(f"backup of {', '.join(databases)} on {server}", str(exc)))
            return
        self.post_message(RunStarted(run_id, f"{server}: {', '.join(databases)}"))

    def run_job_now(self, job: str) -> None:
        if self.read_only:
            return
        self._run_job_worker(job)

    @work(thread=True, group="actions", exit_on_error=False, description="start a job run")
    def _run_job_worker(self, job: str) -> None:
        try:
            run_id = self.backend.run_job(job)
        except DumpdeckError as exc:
            self.post_message(ActionFailed(f"job {job}", str(exc)))
            return
        self.post_message(RunStarted(run_id, f"job {job}"))

    @on(RunStarted)
    def _run_started(self, message: RunStarted) -> None:
        self.notify(f"run #{message.run_id} started: {message.what}", timeout=4)
        self._arm("jobs", 0)

    @on(ActionFailed)
    def _action_failed(self, message: ActionFailed) -> None:
        self.notify(f"{message.what}: {message.error}", severity="error", timeout=10)

    def confirm_cancel(self, run: RunView) -> None:
        if self.read_only:
            return
        from .screens.modals import ConfirmModal

        what = ", ".join(run.databases) or ", ".join(p.database for p in run.progress) or (run.job or "")

        def done(ok: bool | None) -> None:
            if ok:
                # said at once; the runner's own record follows with the next poll
                self._cancel_sent[run.id] = self.now()
                self.jobs = self._with_cancels(self.jobs)
                self._render("jobs")
                self.notify(f"run #{run.id}: cancelling…", timeout=4)
                self._cancel_worker(run.id)

        self.push_screen(
            ConfirmModal(
                f"Cancel run #{run.id}?",
                f"{what}\nThe runner stops its dumps and removes their partial files.",
                confirm_label=f"Cancel run #{run.id}",
                cancel_label="Keep running",
            ),
            done,
        )

    @work(thread=True, group="actions", exit_on_error=False, description="cancel a run")
    def _cancel_worker(self, run_id: int) -> None:
        try:
            self.backend.cancel_run(run_id)
        except DumpdeckError as exc:
            self.call_from_thread(self._cancel_sent.pop, run_id, None)
            self.post_message(ActionFailed(f"cancel run #{run_id}", str(exc)))
            return
        self.call_from_thread(self._arm, "jobs", 0)

    # ------------------------------------------------------------------ verification
    def start_verify(self, dump: DumpView) -> None:
        if self._ladder_running(dump):
            return
        self.ladders[dump.key] = Ladder(kind="verify", target=None, started=self.now())
        self._refresh_ladder(dump.key)
        self._verify_worker(dump)

    def _ladder_running(self, dump: DumpView) -> bool:
        live = self.ladders.get(dump.key)
        if live is not None and live.running:
            self.notify(f"{live.kind} of this dump is still running", severity="warning")
            return True
        return False

    @work(thread=True, group="verify", exit_on_error=False, description="verify a dump")
    def _verify_worker(self, dump: DumpView) -> None:
        self._ladder_work(
            dump, "verify", lambda on_check: self.backend.verify(dump, on_check, record=not self.read_only)
        )

    def _ladder_work(self, dump: DumpView, kind: str, call, cancel: threading.Event | None = None) -> None:
        """Run a verification (in a worker thread): each check and the outcome go out as messages."""
        try:
            outcome = call(lambda c: self.post_message(CheckArrived(dump.key, c)))
        except DumpdeckError as exc:
            stopped = cancel is not None and cancel.is_set()
            self.post_message(LadderDone(dump.key, kind, None, STOPPED if stopped else str(exc)))
            return
        except Exception as exc:  # shown in the ladder, never a crashed worker
            self.post_message(LadderDone(dump.key, kind, None, f"{type(exc).__name__}: {exc}"))
            return
        if cancel is not None and cancel.is_set() and outcome is not Outcome.PASSED:  # a verdict reached holds
            self.post_message(LadderDone(dump.key, kind, Outcome.NOT_CHECKED, STOPPED))
            return
        self.post_message(LadderDone(dump.key, kind, outcome))

    def choose_restore_target(self, dump: DumpView) -> None:
        if self.read_only or self._ladder_running(dump):
            return
        from .screens.modals import TargetChooser

        def done(target: str | None) -> None:
            if target:
                self.start_restore_test(dump, target)

        self.push_screen(
            TargetChooser(
                f"{dump.server}/{dump.database} · {dump.path.name}",
                self.backend.restore_targets(),
                self.config.restore_test.target,
            ),
            done,
        )

    def start_restore_test(self, dump: DumpView, target: str) -> None:
        if self.read_only:
            return
        ladder = Ladder(kind="restore-test", target=target, started=self.now())
        self.ladders[dump.key] = ladder
        self._refresh_ladder(dump.key)
        self._restore_worker(dump, target, ladder.cancel)

    @work(thread=True, group="restore-test", exit_on_error=False, description="restore-test a dump")
    def _restore_worker(self, dump: DumpView, target: str, cancel: threading.Event) -> None:
        self._ladder_work(
            dump,
            "restore-test",
            lambda on_check: self.backend.restore_test(dump, target, on_check, cancel=cancel),
            cancel,
        )

    def confirm_cancel_check(self, dump: DumpView) -> None:
        """Stop the restore-test running on `dump` (asks first): its load stops, its scratch
        database is dropped, its sandbox stopped."""
        ladder = self.ladders.get(dump.key)
        if self.read_only or ladder is None or not ladder.running:
            self.notify("No restore-test is running on this dump", severity="warning")
            return
        if ladder.kind != "restore-test":
            self.notify("A verify reads the file only; it ends by itself", severity="warning")
            return
        from .screens.modals import ConfirmModal

        def done(ok: bool | None) -> None:
            if ok and ladder.running:
                ladder.cancel.set()
                self.notify("restore-test: stopping…", timeout=4)
                self._refresh_ladder(dump.key)

        self.push_screen(
            ConfirmModal(
                "Stop the restore-test?",
                f"{dump.server}/{dump.database} · {dump.path.name} on {ladder.target}\n"
                "The load stops; the scratch database is dropped and a sandbox is stopped.",
                confirm_label="Stop restore-test",
                cancel_label="Keep testing",
            ),
            done,
        )

    @on(CheckArrived)
    def _check_arrived(self, message: CheckArrived) -> None:
        ladder = self.ladders.get(message.dump_key)
        if ladder is not None:
            ladder.checks.append(message.check)
            self._refresh_ladder(message.dump_key)

    @on(LadderDone)
    def _ladder_done(self, message: LadderDone) -> None:
        ladder = self.ladders.get(message.dump_key)
        if ladder is not None:
            ladder.outcome = message.outcome
            ladder.error = message.error
            self._refresh_ladder(message.dump_key)
        if message.error == STOPPED:
            self.notify(f"{message.kind}: {message.error}", severity="warning", timeout=6)
        elif message.error:
            self.notify(f"{message.kind}: {message.error}", severity="error", timeout=10)
        elif message.outcome is not None:
            self.notify(
                f"{message.kind} {message.outcome.label}",
                severity=OUTCOME_SEVERITY[message.outcome],
                timeout=5,
            )
        self.rescan_catalog()  # the result is recorded in the manifest

    def _refresh_ladder(self, key: str) -> None:
        from textual.app import ScreenStackError

        from .screens.dumps import DumpsScreen

        try:
            screen = self.screen
        except ScreenStackError:  # a worker's message can arrive while the app shuts down
            return
        if isinstance(screen, DumpsScreen) and screen.is_mounted and screen.current_key() == key:
            screen.show_ladder()  # the selected row's: a local dump's, or a destination's

    # ------------------------------------------------------------------ deleting
    def confirm_delete(self, dump: DumpView) -> None:
        if self.read_only:
            return
        from .screens.modals import ConfirmModal

        verified = [
            d
            for d in self.catalog.dumps
            if d.server == dump.server and d.database == dump.database and d.verified_level > 0
        ]
        last_verified = dump.verified_level > 0 and len(verified) == 1
        message = f"{dump.path}\n{dump.server}/{dump.database}, verified to L{dump.verified_level}."
        if last_verified:
            message += "\nThis is the LAST verified dump of this database."

        def done(ok: bool | None) -> None:
            if ok:
                self._delete_worker(dump)

        self.push_screen(
            ConfirmModal(
                "Delete this dump?",
                message,
                confirm_label="Delete dump",
                cancel_label="Keep it",
                require_text=dump.database if last_verified else None,
            ),
            done,
        )

    @work(thread=True, group="actions", exit_on_error=False, description="delete a dump")
    def _delete_worker(self, dump: DumpView) -> None:
        try:
            self.backend.delete_dump(dump)
        except (DumpdeckError, OSError) as exc:
            self.post_message(ActionFailed(f"delete {dump.path.name}", str(exc)))
            return
        self.post_message(DumpDeleted(dump.key))

    @on(DumpDeleted)
    def _dump_deleted(self, message: DumpDeleted) -> None:
        self.catalog = CatalogSnapshot(
            dumps=tuple(d for d in self.catalog.dumps if d.key != message.dump_key),
            partials=self.catalog.partials,
            error=self.catalog.error,
            scanned_at=self.catalog.scanned_at,
        )
        self.ladders.pop(message.dump_key, None)
        self.notify("dump deleted", timeout=3)
        self._render()
        self.rescan_catalog()


def _server_shown(snap: ServerSnapshot) -> tuple:
    """What the panes show of a server snapshot (not when it was polled nor how long it took)."""
    return (snap.reachable, snap.databases, snap.error, snap.label, snap.address)


def reopen_command(config: Config) -> str:
    """The command that opens a console on this configuration: `dumpdeck` for the default one,
    else `dumpdeck --config PATH`."""
    from dumpdeck.backend.config import default_config_path

    if config.path is None:
        return "dumpdeck"
    path = Path(config.path).absolute()
    if path == default_config_path().absolute():
        return "dumpdeck"
    return f"dumpdeck --config {shlex.quote(str(path))}"


def make_app(config: Config, **kwargs) -> DumpdeckApp:
    """The factory tests and the CLI use."""
    return DumpdeckApp(config, **kwargs)


def run_console(
    config: Config,
    *,
    read_only: bool = False,
    theme: str | None = None,
    quit_note: str | None = None,
    reopen: str | None = None,
) -> int:
    """Run the console until the user quits; returns the exit code. Its own actions (verify,
    restore-test, delete) are logged to the configured log file, which its Log pane tails."""
    from dumpdeck.backend.logs import setup_logging

    setup_logging(config)
    app = make_app(config, read_only=read_only, theme=theme, quit_note=quit_note, reopen=reopen)
    app.run()
    return int(app.return_code or 0)
