"""`dumpdeck demo`: a sandbox MariaDB with sample databases and the console on it, in one command."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dumpdeck import demo
from dumpdeck.backend.units import format_duration

from ..output import style

DESCRIPTION = """\
Start a throwaway MariaDB server (a sandbox mariadbd in a directory of its own, on a
unix socket, no TCP port unless --port is given), load sample databases into it
(shop, blog, legacy_crm, "sales archive"), take one backup of each, write a demo
config and open the console on it. No MySQL server of your own is needed; only the
mariadb-server and mariadb-client packages.

When the console closes (or on Ctrl-C) the sandbox stops and its directory is removed,
unless --keep is given. A second `dumpdeck demo` while one runs shares its sandbox;
the sandbox stops when the last of them exits."""

EPILOG = """\
files: DIR/dumpdeck-demo.yaml (config), DIR/server (datadir, socket, error.log),
  DIR/backups, DIR/state, DIR/demo.json (sandbox pid, socket, the demo processes using it).
  Default DIR: $XDG_STATE_HOME/dumpdeck/demo (~/.local/state/dumpdeck/demo).
examples:
  dumpdeck demo                 sandbox + console; everything removed on exit
  dumpdeck demo --keep          keep the sandbox running after the console closes
  dumpdeck demo --no-console    set up and leave it running; open later with dumpdeck --config …
  dumpdeck demo --stop          stop a kept demo (its files stay; the next `dumpdeck demo` restarts fast)
  dumpdeck demo --stop --purge  stop it and remove its files
exit codes: 0 success (or the console's own exit code), 1 failed,
  2 mariadbd/mariadb-install-db missing (the install command is printed) or bad usage"""


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="try dumpdeck on a sandbox MariaDB with sample databases",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dir", type=Path, metavar="DIR", help="the demo's own directory (default: $XDG_STATE_HOME/dumpdeck/demo)"
    )
    p.add_argument("--keep", action="store_true", help="leave the sandbox running on exit and print where it lives")
    p.add_argument("--stop", action="store_true", help="stop a running (kept) demo and exit")
    p.add_argument(
        "--purge", action="store_true", help="with --stop: also remove the demo's files (datadir, dumps, config, state)"
    )
    p.add_argument("--port", type=int, metavar="N", help="also listen on TCP 127.0.0.1:N (default: unix socket only)")
    p.add_argument(
        "--no-console",
        action="store_true",
        help="set up the demo, print how to open the console, and leave it running (implies --keep)",
    )
    p.add_argument(
        "--seed-backups",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take one backup of each sample database on first start so the dumps browser is not empty (default: on)",
    )
    p.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)  # tests: smaller data
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- console


def console_runner() -> tuple[Callable[..., int] | None, str | None]:
    """(tui.app.run_console, None), or (None, why the console cannot be opened)."""
    try:
        from dumpdeck.tui import app
    except Exception as exc:  # a broken terminal library must not take the demo down with it
        return None, f"the console could not be loaded ({type(exc).__name__}: {exc})"
    return app.run_console, None


# --------------------------------------------------------------------------- helpers


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _dir_flag(directory: Path) -> str:
    return "" if directory == demo.default_demo_dir() else f" --dir {shlex.quote(str(directory))}"


def _where(session: demo.DemoSession) -> None:
    q = shlex.quote
    flag = _dir_flag(session.directory)
    _out(f"  directory  {session.directory}")
    _out(f"  socket     {session.socket}   (mariadb --socket={q(str(session.socket))} -u root)")
    _out(f"  TCP        {'127.0.0.1:' + str(session.port) if session.port else 'none (unix socket only)'}")
    _out(f"  config     {session.config_path}")
    _out(f"open the console:  dumpdeck --config {q(str(session.config_path))}")
    _out(f"stop it:           dumpdeck demo --stop{flag}   (add --purge to remove its files too)")


def _timings(session: demo.DemoSession) -> str:
    t = session.timings
    parts = []
    if "sandbox_start" in t:
        parts.append(f"sandbox start {t['sandbox_start']:.1f}s")
    if "data_load" in t:
        parts.append(f"data load {t['data_load']:.1f}s ({session.rows_loaded:,} rows)")
    if "seed_backups" in t:
        parts.append(f"seed backups {t['seed_backups']:.1f}s ({len(session.seeded)} dumps)")
    return ", ".join(parts)


@contextlib.contextmanager
def _exit_on_hangup():
    """SIGTERM/SIGHUP end the demo like Ctrl-C does, so the sandbox is stopped, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- commands


def run(args, ctx) -> int:
    directory = args.dir.expanduser().absolute() if args.dir else demo.default_demo_dir()
    if args.purge and not args.stop:
        from dumpdeck.backend.errors import UsageError

        raise UsageError("--purge goes with --stop: dumpdeck demo --stop --purge")
    if args.stop:
        return _stop(directory, purge=args.purge)
    if args.port is not None and not (1 <= args.port <= 65535):
        from dumpdeck.backend.errors import UsageError

        raise UsageError(f"--port {args.port}: not a TCP port (1..65535)")

    runner, why_not = (None, None) if args.no_console else console_runner()
    keep = args.keep or runner is None
    session: demo.DemoSession | None = None
    rc = 0
    with _exit_on_hangup():
        try:
            session = demo.start(
                directory,
                port=args.port,
                keep=keep,
                seed=args.seed_backups,
                scale=args.scale,
                on_step=lambda msg: _out(f"dumpdeck demo: {msg}"),
            )
            _report_start(session, args.port)
            if runner is None:
                if why_not:
                    _out(style(f"dumpdeck demo: {why_not}; the demo keeps running so you can open it later.", ok=False))
                with contextlib.suppress(Exception):
                    demo.finish(session)  # kept: this only deregisters this process
                _out("the demo sandbox is running:")
                _where(session)
                return 0
            _out(f"dumpdeck demo: opening the console on {session.config_path}")
            note = None if keep else "the demo sandbox stays up until they end; this terminal waits for them"
            reopen = f"dumpdeck demo{_dir_flag(session.directory)}"
            rc = int(runner(session.config(), read_only=False, theme=None, quit_note=note, reopen=reopen) or 0)
        finally:
            if session is not None and runner is not None:
                _finish(session, keep)
    return rc


def _report_start(session: demo.DemoSession, port: int | None) -> None:
    timing = _timings(session)
    if timing:
        _out(f"dumpdeck demo: ready in {format_duration(sum(session.timings.values()))}: {timing}")
    if session.seed_warnings:
        for w in session.seed_warnings:
            _out(f"  note: {w}")
    if session.reused:
        if session.shared_with:
            pids = ", ".join(str(p) for p in session.shared_with)
            if session.kept_by_other:
                _out(
                    f"dumpdeck demo: this sandbox was started with --keep (used by dumpdeck demo pid {pids}); "
                    "it keeps running after this console closes."
                )
            else:
                _out(
                    style(
                        f"dumpdeck demo: this sandbox belongs to another `dumpdeck demo` (pid {pids}) that is "
                        "still running. Both share it; it stops when the last of them exits "
                        "(pass --keep to keep it running).",
                        ok=False,
                    )
                )
        elif session.kept_by_other:
            _out("dumpdeck demo: reusing the demo kept by an earlier `dumpdeck demo --keep`.")
        else:
            _out("dumpdeck demo: reusing a sandbox whose `dumpdeck demo` is gone; this one now owns it.")
        if port is not None and port != session.port:
            _out(
                style(
                    f"dumpdeck demo: --port {port} ignored: the running sandbox "
                    f"{'listens on ' + str(session.port) if session.port else 'has no TCP port'}; "
                    "stop it first (dumpdeck demo --stop) to change that.",
                    ok=False,
                )
            )


def _wait_for_runs(session: demo.DemoSession) -> None:
    """What the console's quit dialog promised: the sandbox stays up until the runs started in it end.
    Ctrl-C (or SIGTERM) here cancels them, waits for them to stop, and then the sandbox stops."""
    from dumpdeck.backend.jobs import cancel_run
    from dumpdeck.backend.state import StateStore

    config = session.config()
    if not Path(config.state_db).exists():
        return
    with StateStore.open(config.state_db) as store:
        announced = False
        try:
            while True:
                store.reap_lost()
                active = store.list_runs(active_only=True)
                if not active:
                    return
                if not announced:
                    ids = ", ".join(f"#{r.id}" for r in active)
                    _out(
                        f"dumpdeck demo: waiting for run(s) {ids} to end before stopping the sandbox "
                        f"(watch them: dumpdeck --config {shlex.quote(str(session.config_path))}; "
                        "Ctrl-C cancels them)"
                    )
                    announced = True
                time.sleep(1.0)
        except KeyboardInterrupt:
            active = store.list_runs(active_only=True)
            _out(f"dumpdeck demo: cancelling run(s) {', '.join(f'#{r.id}' for r in active)}")
            for r in active:
                cancel_run(store, r.id)
            deadline = time.monotonic() + 60
            while store.list_runs(active_only=True) and time.monotonic() < deadline:
                time.sleep(0.2)
                store.reap_lost()


def _finish(session: demo.DemoSession, keep: bool) -> None:
    if keep:
        # Keep: nothing to stop; just deregister (keeps the server whatever the others do).
        with contextlib.suppress(Exception):
            demo.finish(session)
        _out("dumpdeck demo: the sandbox keeps running (--keep):")
        _where(session)
        return
    _wait_for_runs(session)
    result = demo.finish(session)
    if result.stopped:
        _out(f"dumpdeck demo: sandbox stopped{' and ' + str(session.directory) + ' removed' if result.purged else ''}.")
    elif result.kept:
        _out("dumpdeck demo: the sandbox was kept by another `dumpdeck demo --keep`; it keeps running:")
        _where(session)
    elif result.still_used_by:
        pids = ", ".join(str(p) for p in result.still_used_by)
        _out(f"dumpdeck demo: the sandbox is still used by dumpdeck demo pid {pids}; it stops when that exits.")


def _stop(directory: Path, purge: bool) -> int:
    st = demo.status(directory)
    if not st.exists:
        _out(f"dumpdeck demo: no demo in {directory}; nothing to stop.")
        return 0
    result = demo.stop(directory, purge=purge)
    if result.was_running:
        pid = st.info.sandbox_pid if st.info else None
        _out(f"dumpdeck demo: stopped the sandbox in {directory}" + (f" (mariadbd pid {pid})" if pid else "") + ".")
    else:
        _out(f"dumpdeck demo: the sandbox in {directory} was not running.")
    if result.cut_off:
        pids = ", ".join(str(p) for p in result.cut_off)
        _out(
            style(
                f"dumpdeck demo: note: dumpdeck demo pid {pids} was still using it; its console lost its server.",
                ok=False,
            )
        )
    if result.purged:
        _out(f"dumpdeck demo: removed the demo's files from {directory}.")
    else:
        _out(
            f"dumpdeck demo: its files stay in {directory}; `dumpdeck demo{_dir_flag(directory)}` restarts it, "
            f"`dumpdeck demo --stop --purge{_dir_flag(directory)}` removes them."
        )
    return 0
