"""The one registry of console actions.

Each action is declared once: binding id, default key(s), the Textual action it
runs, a description, a help group, the scope (which screen owns it), the pane of
the dashboard it belongs to, whether it changes anything (hidden by --read-only)
and whether it is one of the few keys the footer shows. Bindings, the footer, the
`?`/F1 help screen, the command palette and `console.keys` remapping
(App.set_keymap by binding id) are all generated from this table.

A pane's keys work wherever the screen has focus, but the footer shows them only
while that pane has the focus (the pane widget carries a shown copy of each).

Keys are chosen to survive SSH and tmux: letters, digits, F-keys, Enter, Esc;
no ctrl+a/b/s/j/o.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class ActionSpec:
    id: str  # binding id, remappable in config: console.keys.<id>
    key: str  # default key(s), comma separated (Textual key names)
    action: str  # Textual action string run in the owner's namespace
    description: str
    group: str  # heading in the help screen
    scope: str  # app | dashboard | dumps | schedules | run | help
    destructive: bool = False  # changes something: confirmation, hidden by --read-only
    footer: bool = False  # shown in the footer (at most 6 per screen, app scope included)
    display: str | None = None  # key as shown to humans when the key name is ugly
    label: str = ""  # footer label
    pane: str | None = None  # dashboard pane whose footer shows it (databases | jobs | disk | log)


ACTIONS: tuple[ActionSpec, ...] = (
    # ---------------------------------------------------------------- everywhere
    ActionSpec(
        "help",
        "question_mark,f1",
        "app.help",
        "Searchable help of every key",
        "Global",
        "app",
        footer=True,
        display="?/F1",
        label="Help",
    ),
    ActionSpec(
        "palette",
        "colon,ctrl+p",
        "app.command_palette",
        "Command palette (every action)",
        "Global",
        "app",
        display=": ctrl+p",
    ),
    ActionSpec(
        "quit",
        "q",
        "app.request_quit",
        "Quit (running jobs continue in the background)",
        "Global",
        "app",
        footer=True,
        label="Quit",
    ),
    ActionSpec("theme", "f9", "app.cycle_theme", "Next theme (dark, light, high contrast, ANSI)", "Global", "app"),
    # ---------------------------------------------------------------- dashboard
    ActionSpec(
        "select",
        "space",
        "toggle_select",
        "Select / unselect the database under the cursor",
        "Databases",
        "dashboard",
        footer=True,
        display="space",
        label="Select",
        pane="databases",
    ),
    ActionSpec(
        "backup",
        "b",
        "backup",
        "Back up the selected databases (or the one under the cursor)",
        "Databases",
        "dashboard",
        destructive=True,
        footer=True,
        label="Backup",
        pane="databases",
    ),
    ActionSpec(
        "database_detail",
        "enter",
        "open_detail",
        "Open the database under the cursor: its dumps, last runs and server state",
        "Databases",
        "dashboard",
        display="Enter",
        label="Detail",
        pane="databases",
    ),
    ActionSpec(
        "filter",
        "slash",
        "filter",
        "Filter the focused list (databases, log)",
        "Databases",
        "dashboard",
        footer=True,
        display="/",
        label="Filter",
        pane="databases",
    ),
    ActionSpec(
        "select_all",
        "a",
        "select_all",
        "Select every database shown (the filter applies)",
        "Databases",
        "dashboard",
        pane="databases",
    ),
    ActionSpec("select_none", "u", "select_none", "Clear the selection", "Databases", "dashboard", pane="databases"),
    ActionSpec("sort", "s", "sort", "Sort by the next column (click a header to sort by it)", "Databases", "dashboard"),
    ActionSpec(
        "run_detail",
        "enter",
        "open_detail",
        "Open the run under the cursor: each database's result, the events and the log",
        "Jobs",
        "dashboard",
        display="Enter",
        label="Detail",
        pane="jobs",
    ),
    ActionSpec(
        "cancel",
        "c",
        "cancel_run",
        "Cancel the run under the cursor (asks first)",
        "Jobs",
        "dashboard",
        destructive=True,
        footer=True,
        label="Cancel run",
        pane="jobs",
    ),
    ActionSpec(
        "follow",
        "f",
        "toggle_follow",
        "Log: follow / pause the tail",
        "Log",
        "dashboard",
        footer=True,
        label="Follow",
        pane="log",
    ),
    ActionSpec(
        "log_level",
        "l",
        "log_level",
        "Log: cycle the level filter (all, info, warning, error)",
        "Log",
        "dashboard",
        footer=True,
        label="Level",
        pane="log",
    ),
    ActionSpec(
        "log_search",
        "slash",
        "filter",
        "Log: search the lines",
        "Log",
        "dashboard",
        footer=True,
        display="/",
        label="Search",
        pane="log",
    ),
    ActionSpec("focus_databases", "1", "focus_pane('databases')", "Focus the databases pane", "Panes", "dashboard"),
    ActionSpec("focus_jobs", "2", "focus_pane('jobs')", "Focus the jobs pane", "Panes", "dashboard"),
    ActionSpec("focus_disk", "3", "focus_pane('disk')", "Focus the disk pane", "Panes", "dashboard"),
    ActionSpec("focus_log", "4", "focus_pane('log')", "Focus the log pane", "Panes", "dashboard"),
    ActionSpec(
        "maximize",
        "m,f11",
        "toggle_maximize",
        "Maximize / restore the focused pane",
        "Panes",
        "dashboard",
        footer=True,
        label="Max",
    ),
    ActionSpec("pause", "p", "toggle_pause", "Pause / resume live updates", "Panes", "dashboard"),
    ActionSpec("refresh", "r", "refresh_now", "Refresh everything now", "Panes", "dashboard"),
    ActionSpec("dumps", "d", "app.open_dumps", "Dumps browser", "Screens", "dashboard", footer=True, label="Dumps"),
    ActionSpec(
        "schedules",
        "t",
        "app.open_schedules",
        "Schedules (timers): jobs, next runs, run one now",
        "Screens",
        "dashboard",
    ),
    # ---------------------------------------------------------------- dumps browser
    ActionSpec(
        "verify",
        "v",
        "verify",
        "Verify the selected dump (checks appear one by one)",
        "Dumps",
        "dumps",
        footer=True,
        label="Verify",
    ),
    ActionSpec(
        "restore_test",
        "r",
        "restore_test",
        "Restore-test the selected dump (choose a target)",
        "Dumps",
        "dumps",
        destructive=True,
        footer=True,
        label="Restore-test",
    ),
    ActionSpec(
        "delete",
        "x",
        "delete",
        "Delete the selected dump (asks first)",
        "Dumps",
        "dumps",
        destructive=True,
        footer=True,
        label="Delete",
    ),
    ActionSpec(
        "cancel_check",
        "c",
        "cancel_check",
        "Stop the restore-test running on the selected dump (asks first)",
        "Dumps",
        "dumps",
        destructive=True,
    ),
    ActionSpec(
        "restore",
        "o",
        "restore",
        "Restore the selected dump for real (shows the plan; replacing needs the name typed)",
        "Dumps",
        "dumps",
        destructive=True,
        footer=True,
        label="Restore",
    ),
    ActionSpec(
        "dumps_filter",
        "slash",
        "filter",
        "Filter dumps by database or server text",
        "Dumps",
        "dumps",
        display="/",
        label="Filter",
    ),
    ActionSpec(
        "dumps_level",
        "l",
        "cycle_level",
        "Filter by verification level (any, unverified, ≥1..≥4)",
        "Dumps",
        "dumps",
    ),
    ActionSpec("dumps_sort", "s", "sort", "Sort by the next column", "Dumps", "dumps"),
    ActionSpec(
        "dumps_source",
        "w",
        "cycle_source",
        "Where to browse: this host's catalog, then each copy destination (read with rclone, any host's dumps)",
        "Dumps",
        "dumps",
    ),
    ActionSpec(
        "dumps_back",
        "escape",
        "back",
        "Back to the dashboard",
        "Dumps",
        "dumps",
        footer=True,
        display="Esc",
        label="Back",
    ),
    # ---------------------------------------------------------------- schedules
    ActionSpec(
        "run_now",
        "n",
        "run_now",
        "Run the job under the cursor now",
        "Schedules",
        "schedules",
        destructive=True,
        footer=True,
        label="Run now",
    ),
    ActionSpec(
        "schedules_back",
        "escape",
        "back",
        "Back to the dashboard",
        "Schedules",
        "schedules",
        footer=True,
        display="Esc",
        label="Back",
    ),
    # ---------------------------------------------------------------- run detail
    ActionSpec(
        "run_cancel",
        "c",
        "cancel_run",
        "Cancel this run (asks first)",
        "Run",
        "run",
        destructive=True,
        footer=True,
        label="Cancel",
    ),
    ActionSpec("run_back", "escape", "back", "Back", "Run", "run", footer=True, display="Esc", label="Back"),
    # ---------------------------------------------------------------- database detail
    ActionSpec(
        "database_backup",
        "b",
        "backup",
        "Back up this database now",
        "Database",
        "database",
        destructive=True,
        footer=True,
        label="Backup",
    ),
    ActionSpec(
        "database_dumps",
        "d",
        "dumps",
        "Open the dumps browser on this database",
        "Database",
        "database",
        footer=True,
        label="Dumps",
    ),
    ActionSpec(
        "database_back", "escape", "back", "Back", "Database", "database", footer=True, display="Esc", label="Back"
    ),
)

BY_ID: dict[str, ActionSpec] = {a.id: a for a in ACTIONS}
DESTRUCTIVE_ACTIONS: frozenset[str] = frozenset(a.action for a in ACTIONS if a.destructive)
FORBIDDEN_DEFAULT_KEYS = ("ctrl+a", "ctrl+b", "ctrl+s", "ctrl+j", "ctrl+o")


def for_scope(scope: str) -> list[ActionSpec]:
    return [a for a in ACTIONS if a.scope == scope]


def bindings(scope: str) -> list[BindingType]:
    """Textual bindings (with ids, so config can remap them) for one scope. A pane's actions are
    bound here too, hidden from the footer: their keys work whichever pane has the focus."""
    out: list[BindingType] = []
    for a in for_scope(scope):
        out.append(
            Binding(
                a.key,
                a.action,
                a.label or _short(a.description),
                show=a.footer and a.pane is None,
                id=a.id,
                key_display=_footer_key(a) if a.footer else None,
                tooltip=a.description,
            )
        )
    return out


def pane_bindings(pane: str) -> list[BindingType]:
    """The footer's copy of one dashboard pane's keys, bound on the pane itself (so the footer
    shows them while the focus is inside it); the action runs on the screen."""
    return [
        Binding(
            a.key,
            f"screen.{a.action}",
            a.label or _short(a.description),
            show=True,
            id=a.id,
            key_display=a.display,
            tooltip=a.description,
        )
        for a in ACTIONS
        if a.pane == pane and a.footer
    ]


TABLE_KEYS = (
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g,home", "scroll_top", "First row", show=False),
    Binding("G,end", "scroll_bottom", "Last row", show=False),
)
"""Cursor keys every table adds to DataTable's own (arrows, PgUp/PgDn): vi's j/k/g/G, and
Home/End to the first/last row (DataTable's default scrolls sideways)."""


def _footer_key(spec: ActionSpec) -> str | None:
    """The key as the footer shows it: the first of several ("?/F1" → "?"; 80 columns are few)."""
    return spec.display.split("/")[0] if spec.display and len(spec.display) > 1 else spec.display


def _short(description: str) -> str:
    """The footer label: the description up to the first '(' or ':' detail, short."""
    label = description.split(" (", maxsplit=1)[0]
    if ": " in label:
        label = label.split(": ")[1]
    words = label.split()
    return " ".join(words[:2]) if len(words) > 2 else label


def key_label(spec: ActionSpec, keymap: dict[str, str] | None = None) -> str:
    keys = (keymap or {}).get(spec.id, spec.key)
    if spec.display and not (keymap and spec.id in keymap):
        return spec.display
    return ", ".join(_pretty(k) for k in keys.split(","))


def _pretty(key: str) -> str:
    names = {"question_mark": "?", "slash": "/", "colon": ":", "space": "space", "escape": "Esc", "enter": "Enter"}
    key = key.strip()
    return names.get(key, key)


def check_keymap(keys: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Split config.console.keys into a valid keymap and readable problems."""
    good: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, key in keys.items():
        if binding_id not in BY_ID:
            problems.append(f"console.keys.{binding_id}: unknown binding id (see the help screen, ?)")
            continue
        if not key.strip():
            problems.append(f"console.keys.{binding_id}: empty key")
            continue
        good[binding_id] = key
    return good, problems
