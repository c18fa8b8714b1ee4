"""The dumps browser: the catalog newest first, filters, the manifest, and the verification ladder.

Verify (`v`), restore-test (`r`) and delete (`x`) are started by the App in its own
workers, so leaving this screen never cancels them; the ladder is kept by the App
per dump and shown here check by check as it arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from dumpdeck.backend.encryption import codec_label
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.manifest import check_outcome
from dumpdeck.backend.naming import printable
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.units import format_bytes, format_duration

from .. import actions
from ..views import CheckView, DumpView
from ..widgets.layout import apply_breakpoints
from ..widgets.table import Cell, KeyedTable, tone_style

LEVEL_FILTERS: tuple[tuple[str, object], ...] = (
    ("any level", None),
    ("unverified", 0),
    ("≥L1", 1),
    ("≥L2", 2),
    ("≥L3", 3),
    ("L4 restore-tested", 4),
)

if TYPE_CHECKING:
    from textual import getters

    from ..base import ConsoleApp


def when_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M") if epoch else "?"


def copies_lines(destinations: list[str], records: list[dict]) -> list[str]:
    """Where a dump's off-host copies are and whether they verified there (from its manifest's copies list);
    a configured destination without a record is pending (a later run copies it)."""
    if not destinations and not records:
        return []
    out = ["off-host copies:"]
    by_dest = {str(r.get("destination")): r for r in records}
    for name in dict.fromkeys([*destinations, *by_dest]):
        r = by_dest.get(name)
        if r is None:
            out.append(f"  … {name}: pending (not copied yet)")
        elif r.get("outcome") == Outcome.PASSED.value:
            out.append(f"  ✓ {name}: {r.get('path')} verified {r.get('verified_at')} ({r.get('method')})")
        else:
            out.append(f"  ✗ {name}: {r.get('error') or r.get('outcome')} (retried by a later run)")
    return out


def remote_key(r: Any) -> str:
    """The row and ladder key of a dump at a destination (a RemoteDump)."""
    return f"remote:{r.destination}:{r.rel}"


def remote_details_text(r: Any) -> str:
    """A dump at a copy destination (a RemoteDump): where it is, and what its manifest there says."""
    lines = [
        f"{r.destination}:{r.rel}",
        f"server {r.server} · database {r.database}",
        f"{when_text(r.when.timestamp())} UTC · {format_bytes(r.size)}",
    ]
    m = r.manifest
    if m is None:
        lines.append(f"incomplete: {r.manifest_error}")
    else:
        lines.append(f"sha256 {m.sha256}")
        lines.append(
            f"codec {codec_label(m.codec, m.encryption is not None) or 'plain'} · best level L{m.verified_level}"
        )
    c = r.copy
    if c is None:
        lines.append(f"no copy record for {r.destination} in its manifest")
    elif r.verified:
        lines.append(f"copy verified at {c.get('verified_at')} ({c.get('method')})")
    else:
        lines.append(f"copy {c.get('outcome')}: {c.get('error')}")
    lines.append(f"r restore-tests it streamed (dumpdeck restore-test --from {r.destination} {r.rel})")
    return "\n".join(lines)


def parse_filter(text: str) -> tuple[dict[str, str], list[str]]:
    """`server:main db:shop level:2 free words` → ({server, db, level}, [words])."""
    fields: dict[str, str] = {}
    words: list[str] = []
    for tok in text.split():
        key, sep, value = tok.partition(":")
        if sep and key in ("server", "db", "database", "level") and value:
            fields["db" if key == "database" else key] = value.lower()
        else:
            words.append(tok.lower())
    return fields, words


def dump_matches(d: DumpView, fields: dict[str, str], words: list[str], level: object) -> bool:
    if "server" in fields and fields["server"] not in d.server.lower():
        return False
    if "db" in fields and fields["db"] not in d.database.lower():
        return False
    if "level" in fields:
        try:
            if d.verified_level < int(fields["level"].lstrip(">=")):
                return False
        except ValueError:
            pass
    for w in words:
        if w not in d.database.lower() and w not in d.server.lower() and w not in d.path.name.lower():
            return False
    if level == 0 and d.verified_level != 0:
        return False
    return not (isinstance(level, int) and level > 0 and d.verified_level < level)


class DumpsScreen(Screen[None]):
    if TYPE_CHECKING:  # the console's own App, with its state and actions
        app = getters.app(ConsoleApp)

    SCOPE = "dumps"
    BINDINGS = actions.bindings("dumps")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self, scope: tuple[str, str] | None = None) -> None:
        super().__init__(id="dumps-screen")
        self.filter_text = ""
        self.level_index = 0
        self.scope = scope  # (server, database): only that database's dumps (opened from its detail)
        self._shown_key: str | None = None
        self.source: str | None = None  # None: this host's catalog; else a copy destination's name (`w`)
        # per destination: its dumps as read (RemoteDump list), or the error naming why they could not be read;
        # absent while a worker reads it
        self.remote: dict[str, list[Any] | str] = {}

    def compose(self) -> ComposeResult:
        yield Static("Dumps", id="statusbar")
        with Horizontal(id="dumps-body"):
            with Vertical(id="dumps-list", classes="pane"):
                yield Input(
                    placeholder="filter: words, server:NAME db:NAME level:N", id="dumps-filter", classes="filter"
                )
                yield KeyedTable(
                    [
                        ("when", "When (UTC)"),
                        ("server", "Server"),
                        ("database", "Database"),
                        ("size", "Size"),
                        ("level", "Lvl"),
                        ("result", "Last check"),
                        ("codec", "Codec"),
                    ],
                    id="dumps",
                )
            with Vertical(id="dumps-side"):
                with VerticalScroll(id="details-pane", classes="pane"):
                    yield Static("", id="details")
                with Vertical(id="ladder-pane", classes="pane"):
                    yield KeyedTable(
                        [("level", "L"), ("check", "Check"), ("result", "Result"), ("evidence", "Evidence")],
                        id="ladder",
                    )
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        apply_breakpoints(self)
        self.query_one("#dumps-filter", Input).display = False
        self.query_one("#details-pane").border_title = "Manifest"
        self.query_one("#ladder-pane").border_title = "Verification"
        self.query_one("#dumps", KeyedTable).focus()
        self.render_state()

    def on_screen_resume(self) -> None:
        apply_breakpoints(self)
        self.render_state()

    # ------------------------------------------------------------------ rendering
    def visible_dumps(self) -> list[DumpView]:
        fields, words = parse_filter(self.filter_text)
        level = LEVEL_FILTERS[self.level_index][1]
        dumps = self.app.catalog.dumps
        if self.scope is not None:
            server, database = self.scope
            dumps = tuple(d for d in dumps if d.server == server and d.database == database)
        return [d for d in dumps if dump_matches(d, fields, words, level)]

    def render_state(self, what: str | None = None) -> None:
        if not self.is_mounted or what not in (None, "catalog"):
            return
        if self.source is not None:
            self.render_remote(self.source)
            return
        app = self.app
        dumps = self.visible_dumps()
        rows = []
        for d in dumps:
            tone = "bad" if d.last_result == "failed" or d.manifest_error else ("ok" if d.verified_level else "warn")
            result = (
                "manifest error"
                if d.manifest_error
                else (Outcome.of(d.last_result).label if d.last_result else ("legacy" if d.legacy else "-"))
            )
            rows.append(
                (
                    d.key,
                    (
                        Cell(when_text(d.when), d.when),
                        d.server,
                        d.database,
                        Cell(format_bytes(d.size), d.size, justify="right"),
                        Cell(
                            f"L{d.verified_level}" if d.verified_level else "-",
                            d.verified_level,
                            style=tone_style(app, tone) if tone != "ok" else tone_style(app, "ok"),
                        ),
                        Cell(result, result, style=tone_style(app, tone)),
                        d.codec or "-",
                    ),
                    d,
                )
            )
        table = self.query_one("#dumps", KeyedTable)
        table.sync(rows)
        level_name = LEVEL_FILTERS[self.level_index][0]
        total = len(app.catalog.dumps)
        parts = [f"Dumps {len(dumps)}/{total}", f"level: {level_name}"]
        if self.scope is not None:
            parts.append(f"database {self.scope[0]}/{self.scope[1]}")
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        if app.catalog.partials:
            parts.append(f"{len(app.catalog.partials)} partial file(s) being written or left over")
        if app.catalog.error:
            parts.append(app.catalog.error)
        if app.read_only:
            parts.append("READ-ONLY")
        self.query_one("#statusbar", Static).update(" · ".join(parts))
        self.query_one("#dumps-list").border_title = "Catalog (newest first)"
        self.show_details(force=True)

    def render_remote(self, dest: str) -> None:
        """The catalog at copy destination `dest`, as `dumpdeck list --remote` reads it (every server)."""
        app = self.app
        got = self.remote.get(dest)
        fields, words = parse_filter(self.filter_text)
        rows = []
        shown = 0
        for d in got if isinstance(got, list) else []:
            hay = f"{d.server} {d.database} {d.name}".lower()
            if ("server" in fields and fields["server"] not in d.server.lower()) or (
                "db" in fields and fields["db"] not in d.database.lower()
            ):
                continue
            if any(w not in hay for w in words):
                continue
            shown += 1
            tone = "ok" if d.verified else "bad"
            result = "verified" if d.verified else d.status
            level = d.manifest.verified_level if d.manifest is not None else 0
            rows.append(
                (
                    remote_key(d),
                    (
                        Cell(when_text(d.when.timestamp()), d.when.timestamp()),
                        Cell(d.server, d.server),  # a Text: names read from the destination are never markup
                        Cell(d.database, d.database),
                        Cell(format_bytes(d.size), d.size, justify="right"),
                        Cell(f"L{level}" if level else "-", level),
                        Cell(result, result, style=tone_style(app, tone)),
                        Cell(
                            (codec_label(d.manifest.codec, d.manifest.encryption is not None) if d.manifest else "")
                            or "-"
                        ),
                    ),
                    d,
                )
            )
        self.query_one("#dumps", KeyedTable).sync(rows)
        if got is None:
            parts = [f"reading {dest}…"]
        elif isinstance(got, str):
            parts = [f"{dest}: {got}"]
        else:
            parts = [f"Dumps at {dest} {shown}/{len(got)}"]
        parts.append("w: next source")
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        self.query_one("#statusbar", Static).update(Text(printable(" · ".join(parts))))
        self.query_one("#dumps-list").border_title = printable(f"At {dest} (every server, newest first)")
        self.show_details(force=True)

    def current(self) -> DumpView | None:
        """The selected dump of this host's catalog (None on a destination's row: see current_remote)."""
        table = self.query_one("#dumps", KeyedTable)
        key = table.cursor_key
        raw = table.raw(key) if key else None
        return raw if isinstance(raw, DumpView) else None

    def current_key(self) -> str | None:
        """The selected row's key: a local dump's, or `remote:<dest>:<path>` (also the key of its ladder)."""
        d = self.current()
        if d is not None:
            return d.key
        r = self.current_remote()
        return remote_key(r) if r is not None else None

    def current_remote(self) -> Any:
        table = self.query_one("#dumps", KeyedTable)
        key = table.cursor_key
        raw = table.raw(key) if key and self.source is not None else None
        return None if raw is None or isinstance(raw, DumpView) else raw

    def show_details(self, force: bool = False) -> None:
        d = self.current()
        r = self.current_remote()
        key = d.key if d else (remote_key(r) if r is not None else None)
        if not force and key == self._shown_key:
            return
        self._shown_key = key
        if d is not None:
            text = printable(self.details_text(d), keep_newlines=True)
        elif r is not None:
            text = printable(remote_details_text(r), keep_newlines=True)
        elif self.source is not None and isinstance(self.remote.get(self.source), str):
            text = printable(f"{self.source}: {self.remote[self.source]}", keep_newlines=True)
        elif self.source is not None and self.source not in self.remote:
            text = printable(f"reading {self.source}… (rclone lsjson, then the manifests)")
        else:
            text = "No dump selected."
        self.query_one("#details", Static).update(Text(text))
        self.show_ladder()

    def details_text(self, d: DumpView) -> str:
        lines = [
            f"{d.path}",
            f"server {d.server} · database {d.database}",
            f"{when_text(d.when)} UTC · {format_bytes(d.size)} · {d.codec or 'plain'}",
        ]
        if d.legacy:
            lines.append("legacy dump (old script naming): no manifest")
        if d.manifest_error:
            lines.append(f"manifest problem: {d.manifest_error}")
        m = d.manifest
        if m is not None:
            srv, tool = m.server or {}, m.tool or {}
            lines += [
                f"source: {srv.get('flavour', '?')} {srv.get('version', '')} {srv.get('host', '')}".rstrip(),
                f"tool: {tool.get('path', '?')} {tool.get('version', '')}".rstrip(),
                f"took {format_duration(m.duration)} · raw {format_bytes(m.bytes_raw)} · "
                f"stored {format_bytes(m.bytes_stored)}",
                f"sha256 {m.sha256[:16]}…",
                f"tables {len(m.tables)} · views {len(m.views)} · "
                f"routines {len(m.procedures) + len(m.functions)} · "
                f"triggers {len(m.triggers)} · events {len(m.events)}",
            ]
            if m.coordinates:
                lines.append("binlog " + ", ".join(f"{k}={v}" for k, v in m.coordinates.items()))
            for w in m.warnings[:5]:
                lines.append(f"warning: {w}")
            if m.flags:
                lines.append("flags: " + ", ".join(m.flags))
            if m.options:
                lines.append("options: " + " ".join(m.options)[:300])
            ver = m.verifications
            if ver:
                lines.append(f"verifications: {len(ver)}, best level L{d.verified_level}")
            lines += copies_lines(list(self.app.config.copies), m.copies)
        return "\n".join(lines)

    def show_ladder(self) -> None:
        d = self.current()
        key = self.current_key()
        table = self.query_one("#ladder", KeyedTable)
        pane = self.query_one("#ladder-pane")
        if key is None:
            table.sync([])
            pane.border_title = "Verification"
            return
        live = self.app.ladders.get(key)
        checks: list[CheckView] = []
        title = "Verification"
        if live is not None:
            checks = list(live.checks)
            if live.running:
                state = "stopping…" if live.cancel.is_set() else "running… (c stops it)"
                if live.kind == "verify":
                    state = "running…"
            elif live.error and live.outcome is None:
                state = "error"
            else:
                state = (live.outcome or Outcome.NOT_CHECKED).label.upper()
            title = f"{live.kind} · {live.target or ''} · {state}".replace(" ·  ·", " ·")
            pane.border_subtitle = live.error or ""
        elif d is not None and d.manifest is not None and d.manifest.verifications:
            v = d.manifest.verifications[-1]
            checks = [
                CheckView(
                    name=str(c.get("name", "?")),
                    outcome=check_outcome(c),
                    evidence=str(c.get("evidence", "")),
                    level=int(c.get("level", v.level) or 0),
                )
                for c in (v.checks or [])
            ]
            title = f"last: L{v.level} {v.outcome.label} at {v.at}"
            pane.border_subtitle = ""
        else:
            pane.border_subtitle = "v verify · r restore-test" if d is not None else "r restore-test (streamed)"
        app = self.app
        rows = []
        for i, c in enumerate(checks):
            rows.append(
                (
                    f"{i}:{c.name}",
                    (
                        f"L{c.level}" if c.level else "",
                        c.name,
                        Cell(c.outcome.label, c.outcome.value, style=tone_style(app, c.outcome.tone)),
                        c.evidence,
                    ),
                    c,
                )
            )
        table.sync(rows)
        pane.border_title = title

    # ------------------------------------------------------------------ events
    @on(DataTable.RowHighlighted, "#dumps")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_details()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (self.app.read_only and action in actions.DESTRUCTIVE_ACTIONS)

    def action_back(self) -> None:
        inp = self.query_one("#dumps-filter", Input)
        if inp.has_focus:
            inp.value = ""
            inp.display = False
            self.query_one("#dumps").focus()
            return
        self.app.pop_screen()

    def action_filter(self) -> None:
        inp = self.query_one("#dumps-filter", Input)
        inp.display = True
        inp.focus()

    def action_cycle_level(self) -> None:
        self.level_index = (self.level_index + 1) % len(LEVEL_FILTERS)
        self.render_state()

    def action_cycle_source(self) -> None:
        """This host → each copy destination → this host. A destination is read in a worker (never the UI)."""
        sources: list[str | None] = [None, *self.app.config.copies]
        if len(sources) == 1:
            self.app.notify("No copy destinations to browse: add them under `copies:` in the config", timeout=5)
            return
        self.source = sources[(sources.index(self.source) + 1) % len(sources)] if self.source in sources else None
        if self.source is not None:
            self.remote.pop(self.source, None)  # read afresh each time it is chosen
            self._read_remote(self.source)
        self.render_state()

    @work(thread=True, group="remote-catalog", exit_on_error=False, description="read a destination's catalog")
    def _read_remote(self, dest: str) -> None:
        from dumpdeck.backend import copies

        result: list[Any] | str
        try:
            result = copies.remote_catalog(self.app.config, dest)
        except DumpdeckError as exc:  # shown in the status line, naming the destination
            result = f"cannot read it: {exc}"
        except Exception as exc:  # never a crashed worker: shown the same way
            result = f"cannot read it: {type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._remote_read, dest, result)

    def _remote_read(self, dest: str, result: list[Any] | str) -> None:
        self.remote[dest] = result
        if self.source == dest:
            self.render_state()

    def action_sort(self) -> None:
        self.query_one("#dumps", KeyedTable).cycle_sort()

    @on(Input.Changed, "#dumps-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.render_state()

    @on(Input.Submitted, "#dumps-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
        self.query_one("#dumps").focus()

    def action_verify(self) -> None:
        d = self.current()
        if d is not None:
            self.app.start_verify(d)

    def action_restore_test(self) -> None:
        d = self.current()
        if d is not None:
            self.app.choose_restore_target(d)
            return
        r = self.current_remote()
        if r is not None:
            self.choose_remote_target(r)

    def choose_remote_target(self, r: Any) -> None:
        """Restore-test a copy where it is stored: streamed by `rclone cat` into the load, like
        `dumpdeck restore-test --from DEST PATH`; its checks arrive in the ladder like a local one's."""
        app = self.app
        live = app.ladders.get(remote_key(r))
        if app.read_only or (live is not None and live.running):
            return
        if r.manifest is None:
            app.notify(printable(f"{r.destination}:{r.rel}: {r.manifest_error}"), severity="error", markup=False)
            return
        from .modals import TargetChooser

        def done(target: str | None) -> None:
            if target:
                self.start_remote_restore_test(r, target)

        app.push_screen(
            TargetChooser(
                printable(f"{r.destination}:{r.rel}"), app.backend.restore_targets(), app.config.restore_test.target
            ),
            done,
        )

    def start_remote_restore_test(self, r: Any, target: str) -> None:
        from dumpdeck.backend import copies

        from ..adapter import check_view
        from ..base import Ladder

        app = self.app
        key = remote_key(r)
        ladder = Ladder(kind="restore-test", target=target, started=app.now())
        app.ladders[key] = ladder
        self.show_ladder()
        label = f"{r.destination}:{r.rel}"

        def call(on_check) -> Outcome:
            report = copies.restore_test_remote(
                app.config, r, target=target, on_check=lambda c: on_check(check_view(c)), cancel=ladder.cancel
            )
            copies.record_remote_restore_test(app.config, r, report, origin="console")
            return report.outcome

        def run() -> None:  # checks and the verdict go to the App as a local restore-test's do
            from ..messages import STOPPED, CheckArrived, LadderDone

            try:
                outcome = call(lambda c: app.post_message(CheckArrived(key, c)))
            except Exception as exc:  # shown in the ladder, never a crashed worker
                why = str(exc) if isinstance(exc, DumpdeckError) else f"{type(exc).__name__}: {exc}"
                app.post_message(LadderDone(key, "restore-test", None, STOPPED if ladder.cancel.is_set() else why))
                return
            if ladder.cancel.is_set() and outcome is not Outcome.PASSED:
                app.post_message(LadderDone(key, "restore-test", Outcome.NOT_CHECKED, STOPPED))
                return
            app.post_message(LadderDone(key, "restore-test", outcome))

        # the App's worker: leaving this screen never cancels it
        app.run_worker(
            run,
            thread=True,
            group="restore-test",
            exit_on_error=False,
            description=f"restore-test {label}",
        )

    def action_restore(self) -> None:
        """Restore for real: the plan in a modal, a detached restore run (shown in the Jobs pane)."""
        d = self.current()
        if d is None or self.app.read_only:
            return
        from .modals import RestoreModal

        def done(req) -> None:
            if req is not None:
                self._start_restore(req)

        self.app.push_screen(
            RestoreModal(self.app.config, d.path, d.server, d.database, f"{d.server}/{d.database} · {d.path.name}"),
            done,
        )

    @work(thread=True, group="restore", exit_on_error=False, description="start a restore")
    def _start_restore(self, req) -> None:
        from dumpdeck.backend.restore_real import start_restore

        run = start_restore(self.app.config, req, trigger="console", detach=True)
        self.app.call_from_thread(
            self.app.notify, f"restore run {run.id} started: {req.target_db} on {req.target_server}", timeout=6
        )

    def action_delete(self) -> None:
        d = self.current()
        if d is not None:
            self.app.confirm_delete(d)

    def action_cancel_check(self) -> None:
        d = self.current()
        if d is not None:
            self.app.confirm_cancel_check(d)
            return
        r = self.current_remote()
        ladder = self.app.ladders.get(remote_key(r)) if r is not None else None
        if r is None or ladder is None or not ladder.running or self.app.read_only:
            self.app.notify("No restore-test is running on this dump", severity="warning")
            return
        from .modals import ConfirmModal

        def done(ok: bool | None) -> None:
            if ok and ladder.running:
                ladder.cancel.set()  # the stream and the load stop; the scratch database is dropped
                self.app.notify("restore-test: stopping…", timeout=4)
                self.show_ladder()

        self.app.push_screen(
            ConfirmModal(
                "Stop the restore-test?",
                printable(f"{r.destination}:{r.rel} on {ladder.target}")
                + "\nThe stream and the load stop; the scratch database is dropped and a sandbox is stopped.",
                confirm_label="Stop restore-test",
                cancel_label="Keep testing",
            ),
            done,
        )
