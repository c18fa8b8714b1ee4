"""The console's dumps browser reads a copy destination (`w`): a real `local` destination, a real SFTP server
(`rclone serve sftp` on loopback) and one that is down. The rows come from the destination itself, so a
second host's dumps, which this host's catalog does not have, are listed; the UI never waits for rclone."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from dumpdeck.backend import copies, runner
from dumpdeck.backend.catalog import scan
from dumpdeck.backend.config import load_config
from dumpdeck.tui.app import Intervals, make_app
from dumpdeck.tui.screens.dumps import DumpsScreen
from dumpdeck.tui.widgets.table import KeyedTable

from .helpers import wait_until
from .test_console import until
from .test_copies import SftpServer, _free_port, copy_config, rclone_conf

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (scripts/bootstrap)")

FAST = Intervals(jobs=0.2, log=0.5, servers=2.0, catalog=0.5, disk=5.0)


def status(app) -> str:
    return str(app.screen.query_one("#statusbar").render())


async def test_dumps_browser_browses_destinations_with_a_second_hosts_dumps(write_config, sample_db, tmp_path):
    sftp = SftpServer(tmp_path / "sftp-root", _free_port())
    sftp.start()
    try:
        conf = rclone_conf(tmp_path, sftp)
        path = copy_config(write_config, sample_db, tmp_path, conf)
        a = load_config(path)
        assert runner.run_job(a, "nightly").status == "succeeded"
        [mine] = scan(a.backup.dir).entries
        # a second host: its own server name, state and backup directories, the same destinations
        host_b = tmp_path / "host-b"
        host_b.mkdir()
        other = host_b / "config.yaml"
        other.write_text(
            path.read_text()
            .replace("servers:\n  main:", "servers:\n  replica:")
            .replace("server: main", "server: replica")
            .replace(str(tmp_path / "backups"), str(host_b / "backups"))
            .replace(str(tmp_path / "state"), str(host_b / "state"))
        )
        b = load_config(other)
        assert runner.run_job(b, "nightly").status == "succeeded"
        [theirs] = scan(b.backup.dir).entries
        # this host's console also knows a destination that is down
        with conf.open("a") as f:
            f.write(f"\n[down]\ntype = sftp\nhost = 127.0.0.1\nport = {_free_port()}\nuser = dd\nshell_type = none\n")
        path.write_text(path.read_text() + f'  down:\n    remote: "down:mysql"\n    rclone_config: {conf}\n')
        config = load_config(path)
        assert list(config.copies) == ["offsite", "nas", "down"]
        expected = {
            f"{copies.rel_path(a, mine)}": "main",
            f"{copies.rel_path(b, theirs)}": "replica",
        }

        # a server directory whose name is Rich markup: shown as written, never interpreted
        shutil.copytree(tmp_path / "nas" / "replica", tmp_path / "nas" / "[red]evil")
        rel_b = copies.rel_path(b, theirs)
        assert rel_b is not None
        evil = "[red]evil/" + rel_b.split("/", 1)[1]
        at = {"offsite": expected, "nas": {**expected, evil: "[red]evil"}}

        app = make_app(config, intervals=FAST)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: any(d.key == mine.key for d in app.catalog.dumps), what="local catalog")
            assert {d.server for d in app.catalog.dumps} == {"main"}  # the replica's dump is not on this host
            await pilot.press("d")
            assert isinstance(app.screen, DumpsScreen)
            screen = app.screen
            table = screen.query_one("#dumps", KeyedTable)
            await until(pilot, lambda: table.row_count == 1, what="this host's dump")

            for dest in ("offsite", "nas"):
                await pilot.press("w")
                assert screen.source == dest
                n = len(at[dest])
                await until(pilot, lambda dest=dest, n=n: f"Dumps at {dest} {n}/{n}" in status(app), what=dest)
                keys = {k.split(":", 2)[2]: table.raw(k) for k in table.row_keys}
                assert {rel: r.server for rel, r in keys.items()} == at[dest]
                # a remote row's details: where, size, sha256, verified-at
                table.focus()
                table.move_cursor(row=table.get_row_index(f"remote:{dest}:{rel_b}"))
                await pilot.pause()
                text = str(screen.query_one("#details").render())
                manifest = keys[rel_b].manifest
                assert f"{dest}:{rel_b}" in text
                assert f"sha256 {manifest.sha256}" in text
                assert "copy verified at " in text and str(keys[rel_b].copy["verified_at"]) in text
                assert theirs.path.stat().st_size == keys[rel_b].size
            server_cell = table.get_row(f"remote:nas:{evil}")[1]
            assert server_cell.plain == "[red]evil"  # a Text: the brackets are shown, not parsed
            table.move_cursor(row=table.get_row_index(f"remote:nas:{evil}"))
            await pilot.pause()
            assert "server [red]evil" in str(screen.query_one("#details").render())

            await pilot.press("w")
            assert screen.source == "down"
            await until(pilot, lambda: "down: cannot read it" in status(app), timeout=120, what="error naming down")
            assert table.row_count == 0
            await pilot.press("w")  # back to this host
            assert screen.source is None
            await until(pilot, lambda: table.row_count == 1 and "Dumps 1/1" in status(app), what="this host again")
    finally:
        sftp.stop()


async def test_unreachable_destination_keeps_the_console_responsive(write_config, sample_db, tmp_path):
    """A destination whose server accepts the connection and then never answers: while rclone waits on it
    (until the destination's timeout), the screen says so and keys still work (the read is in a worker)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # never accepted, never answered: the SSH handshake hangs
    try:
        conf = tmp_path / "rclone.conf"
        port = hole.getsockname()[1]
        obscured = subprocess.run(
            ["rclone", "obscure", "-"], input="pw", capture_output=True, text=True, check=True
        ).stdout.strip()
        conf.write_text(
            f"[down]\ntype = sftp\nhost = 127.0.0.1\nport = {port}\nuser = dd\npass = {obscured}\nshell_type = none\n"
        )
        path = copy_config(write_config, sample_db, tmp_path, None)
        path.write_text(
            path.read_text() + f'  down:\n    remote: "down:mysql"\n    rclone_config: {conf}\n    timeout: 4s\n'
        )
        config = load_config(path)
        app = make_app(config, intervals=FAST)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("d")
            screen = app.screen
            assert isinstance(screen, DumpsScreen)
            await pilot.press("w", "w")  # nas, then down
            assert screen.source == "down"
            assert "reading down…" in status(app)
            await pilot.press("l")  # other keys are handled while rclone waits
            assert screen.level_index == 1
            assert "reading down…" in status(app)
            await until(pilot, lambda: "down: cannot read it" in status(app), timeout=120, what="error naming down")
            assert "down" in status(app).split(":", 1)[0]
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, DumpsScreen), what="back to the dashboard")
    finally:
        hole.close()


async def test_restore_test_a_remote_row_from_a_second_host(write_config, sample_db, tmp_path, mariadb):
    """A host with no local dumps restore-tests another host's copy at a destination from the console: it is
    streamed (nothing lands on its disk), the checks arrive in the ladder, and the scratch database goes."""
    from dumpdeck.backend.outcome import Outcome
    from dumpdeck.backend.state import StateStore
    from dumpdeck.tui.screens.modals import TargetChooser

    path = copy_config(write_config, sample_db, tmp_path, None)
    a = load_config(path)
    assert runner.run_job(a, "nightly").status == "succeeded"
    [entry] = scan(a.backup.dir).entries
    rel = copies.rel_path(a, entry)
    second = tmp_path / "second"
    second.mkdir()
    other = second / "config.yaml"
    other.write_text(
        path.read_text()
        .replace(str(tmp_path / "backups"), str(second / "backups"))
        .replace(str(tmp_path / "state"), str(second / "state"))
    )
    config = load_config(other)

    def databases() -> set[str]:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return {r[0] for r in cur.fetchall()}

    before = databases()
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DumpsScreen)
        assert not app.catalog.dumps  # this host has none of its own
        await pilot.press("w")  # nas
        key = f"remote:nas:{rel}"
        table = screen.query_one("#dumps", KeyedTable)
        await until(pilot, lambda: key in table.row_keys, what="the copy listed")
        table.focus()
        table.move_cursor(row=table.get_row_index(key))
        await pilot.pause()
        await pilot.press("r")
        assert isinstance(app.screen, TargetChooser)
        chooser = app.screen
        targets = [o.id for o in chooser.query_one("OptionList").options]
        chooser.query_one("OptionList").highlighted = targets.index("same")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: app.ladders.get(key) is not None and not app.ladders[key].running,
            timeout=180,
            what="the restore-test to finish",
        )
        ladder = app.ladders[key]
        assert ladder.error is None, ladder.error
        assert ladder.outcome is Outcome.PASSED
        names = {c.name: c.outcome for c in ladder.checks}
        assert names.get("sha256") is Outcome.PASSED and names.get("load") is Outcome.PASSED, names
        await until(
            pilot, lambda: screen.query_one("#ladder", KeyedTable).row_count == len(ladder.checks), what="ladder"
        )
    assert not list(second.rglob("*.sql*"))  # nothing of the dump landed on this host's disk
    assert databases() == before  # the scratch database is gone
    with StateStore.open(config.state_db) as store:
        assert any(f"nas:{rel}" in e.message and e.kind == "restore-test" for e in store.events(None))


async def test_stop_a_remote_restore_test(write_config, sample_db, tmp_path, mariadb):
    """`c` stops a restore-test streaming from a destination (slowed by bwlimit): the ladder says stopped,
    the scratch database is dropped, and no rclone is left running."""
    import psutil

    from dumpdeck.tui.messages import STOPPED
    from dumpdeck.tui.screens.modals import ConfirmModal, TargetChooser

    from .helpers import make_big_table

    make_big_table(mariadb, sample_db, rows=30_000)
    path = copy_config(write_config, sample_db, tmp_path, None)
    a = load_config(path)
    assert runner.run_job(a, "nightly").status == "succeeded"
    [entry] = scan(a.backup.dir).entries
    assert entry.size > 400_000, entry.size  # several seconds at 64k/s
    rel = copies.rel_path(a, entry)
    second = tmp_path / "second"
    second.mkdir()
    other = second / "config.yaml"
    other.write_text(
        path.read_text()
        .replace(str(tmp_path / "backups"), str(second / "backups"))
        .replace(str(tmp_path / "state"), str(second / "state"))
        + "    bwlimit: 64k\n"
    )
    config = load_config(other)
    assert config.copies["nas"].bwlimit == "64k"

    def databases() -> set[str]:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return {r[0] for r in cur.fetchall()}

    def rclone_cats() -> list:
        return [p for p in psutil.Process().children(recursive=True) if "rclone" in p.name() and "cat" in p.cmdline()]

    before = databases()
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DumpsScreen)
        await pilot.press("w")
        key = f"remote:nas:{rel}"
        table = screen.query_one("#dumps", KeyedTable)
        await until(pilot, lambda: key in table.row_keys, what="the copy listed")
        table.focus()
        table.move_cursor(row=table.get_row_index(key))
        await pilot.pause()
        await pilot.press("r")
        assert isinstance(app.screen, TargetChooser)
        chooser = app.screen
        targets = [o.id for o in chooser.query_one("OptionList").options]
        chooser.query_one("OptionList").highlighted = targets.index("same")
        await pilot.press("enter")
        await until(pilot, rclone_cats, what="rclone cat streaming")
        assert app.ladders[key].running
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await until(pilot, lambda: not app.ladders[key].running, timeout=120, what="the restore-test to stop")
        ladder = app.ladders[key]
        assert ladder.error == STOPPED, ladder  # stopped, not finished: no verdict
    wait_until(lambda: not rclone_cats(), timeout=30, what="rclone cat gone")
    assert databases() == before  # the scratch database was dropped
    assert not list(second.rglob("*.sql*"))


async def test_browse_key_without_destinations_says_so(write_config):
    """`w` with no `copies:` configured tells the operator why nothing changed."""
    from dumpdeck.backend.config import load_config
    from dumpdeck.tui.app import make_app

    from .test_console import FAST

    app = make_app(load_config(write_config()), intervals=FAST)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        assert any("No copy destinations" in n.message for n in app._notifications)
