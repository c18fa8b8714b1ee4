"""Off-host copies through real rclone: a real SFTP server on loopback (`rclone serve sftp` on a temporary
directory, with a password login) and a `local` destination. Assertions read the destination's files
on disk (the state of the world), not only what dumpdeck recorded."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dumpdeck.backend import copies, runner
from dumpdeck.backend.catalog import scan
from dumpdeck.backend.config import load_config
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.state import StateStore

from .helpers import interrupt, make_big_table, wait_until

ROOT = Path(__file__).resolve().parent.parent
DUMPDECK = [sys.executable, "-m", "dumpdeck"]

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (scripts/bootstrap)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SftpServer:
    """`rclone serve sftp` on loopback over a temporary directory: a real SFTP server to stop and restart."""

    def __init__(self, root: Path, port: int, password: str = "dd-Pw-1"):
        self.root, self.port, self.password = root, port, password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["rclone", "serve", "sftp", str(self.root), "--addr", f"127.0.0.1:{self.port}", "--user", "dd",
             "--pass", self.password],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, timeout=20, what="rclone serve sftp listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def sftp(tmp_path):
    server = SftpServer(tmp_path / "sftp-root", _free_port())
    server.start()
    yield server
    server.stop()


def rclone_conf(tmp_path: Path, sftp: SftpServer, password: str | None = None) -> Path:
    obscured = subprocess.run(
        ["rclone", "obscure", "-"], input=password or sftp.password, capture_output=True, text=True, check=True
    ).stdout.strip()
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        textwrap.dedent(f"""\
        [offsite]
        type = sftp
        host = 127.0.0.1
        port = {sftp.port}
        user = dd
        pass = {obscured}
        shell_type = none
        """)
    )
    conf.chmod(0o600)
    return conf


def copy_config(write_config, sample_db, tmp_path, conf: Path | None, *, extra_dest: str = "", job: str = "") -> Path:
    dests = ""
    if conf is not None:
        dests += (
            f'  offsite:\n    remote: "offsite:mysql"\n    rclone_config: {conf}\n    retry_delay: 1h\n{extra_dest}'
        )
    dests += f"  nas:\n    remote: {tmp_path / 'nas'}\n    retry_delay: 1h\n"
    return write_config(
        f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n    verify: 2\n{job}copies:\n{dests}"
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remote_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DUMPDECK, "--config", str(config_path), *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_copy_made_and_verified_at_sftp_and_local(write_config, sample_db, tmp_path, sftp):
    path = copy_config(write_config, sample_db, tmp_path, rclone_conf(tmp_path, sftp))
    config = load_config(path)
    run = runner.run_job(config, "nightly")
    assert run.status == "succeeded", run.reason
    [entry] = scan(config.backup.dir).entries
    local_sha = sha(entry.path)
    rel = f"main/{entry.path.parent.name}/{entry.path.name}"
    for root in (sftp.root / "mysql", tmp_path / "nas"):
        files = remote_files(root)
        assert set(files) == {rel, rel + ".manifest.json"}, files  # no temporary name left behind
        assert sha(files[rel]) == local_sha
        remote_manifest = json.loads(files[rel + ".manifest.json"].read_text())
        assert remote_manifest["sha256"] == local_sha
    with StateStore.open(config.state_db) as store:
        recs = {r.destination: r for r in store.copies()}
        events = [e.message for e in store.events(run.id) if e.kind == "copy"]
    assert recs["offsite"].outcome is Outcome.PASSED and recs["nas"].outcome is Outcome.PASSED
    assert recs["offsite"].method == copies.READ_BACK  # the SFTP backend has no SHA-256: read back and hashed
    assert recs["nas"].method == copies.HASHSUM  # the local backend computes it
    assert recs["nas"].sha256 == local_sha and recs["nas"].size == entry.path.stat().st_size
    assert len(events) == 2
    # the local manifest lists both copies; the local dump stays
    local_manifest = json.loads(Path(str(entry.path) + ".manifest.json").read_text())
    assert {c["destination"]: c["outcome"] for c in local_manifest["copies"]} == {"offsite": "passed", "nas": "passed"}
    assert entry.path.exists()
    # `list` shows where the copies are
    out = cli(path, "list")
    assert out.returncode == 0 and "offsite✓" in out.stdout and "nas✓" in out.stdout, out.stdout


def test_unreachable_and_wrong_credentials_do_not_block_other_destinations(write_config, sample_db, tmp_path, sftp):
    conf = rclone_conf(tmp_path, sftp, password="wrong-password")
    conf.write_text(conf.read_text() + textwrap.dedent(f"""\
        [down]
        type = sftp
        host = 127.0.0.1
        port = {_free_port()}
        user = dd
        pass = {conf.read_text().split("pass = ")[1].splitlines()[0]}
        shell_type = none
        """))  # fmt: skip
    path = copy_config(
        write_config, sample_db, tmp_path, conf,
        extra_dest=f"  down:\n    remote: \"down:mysql\"\n    rclone_config: {conf}\n    retry_delay: 1h\n",
    )  # fmt: skip
    config = load_config(path)
    run = runner.run_job(config, "nightly")
    assert run.status == "succeeded", run.reason  # the local dump is good; copies never fail a backup
    with StateStore.open(config.state_db) as store:
        recs = {r.destination: r for r in store.copies()}
        failures = [e.message for e in store.events(run.id) if e.kind == "copy-failed"]
    assert recs["nas"].outcome is Outcome.PASSED
    assert recs["offsite"].outcome is Outcome.FAILED and "wrong credentials" in (recs["offsite"].error or "")
    assert recs["down"].outcome is Outcome.FAILED and "unreachable" in (recs["down"].error or "")
    assert any("offsite" in m and "wrong credentials" in m for m in failures), failures
    assert any("down" in m and "unreachable" in m for m in failures), failures
    assert not any((sftp.root).rglob("*.sql*"))  # nothing reached the server with the wrong password
    assert len(remote_files(tmp_path / "nas")) == 2
    [entry] = scan(config.backup.dir).entries
    assert entry.path.exists()
    # pending copies show in `check`
    out = cli(path, "check")
    assert "copies to offsite pending" in out.stdout and "no verified copy at down" in out.stdout, out.stdout


def test_server_stopped_mid_upload_is_retried_next_run_then_verified(write_config, mariadb, sample_db, tmp_path, sftp):
    make_big_table(mariadb, sample_db, rows=200_000)
    conf = rclone_conf(tmp_path, sftp)
    path = copy_config(write_config, sample_db, tmp_path, conf, extra_dest="    bwlimit: 256k\n")
    config = load_config(path)
    config_nas_only = None
    # dump without copies first (the copy is driven below, so the server can be killed mid-upload)
    body = path.read_text()
    plain = tmp_path / "plain.yaml"
    plain.write_text(body.split("copies:")[0])
    config_nas_only = load_config(plain)
    assert runner.run_job(config_nas_only, "nightly").status == "succeeded"
    [entry] = scan(config.backup.dir).entries
    assert entry.size > 600_000, "the dump must take a few seconds at 256k/s"
    partial_seen = threading.Event()

    def kill_when_uploading() -> None:
        wait_until(lambda: any(sftp.root.rglob("*.dumpdeck-partial")), timeout=60, what="upload started")
        time.sleep(0.5)
        partial_seen.set()
        sftp.stop()

    killer = threading.Thread(target=kill_when_uploading)
    killer.start()
    with StateStore.open(config.state_db) as store:
        results = copies.run_copies(config, store, scan(config.backup.dir), only=["offsite"])
        killer.join()
        assert partial_seen.is_set()
        [res] = results["offsite"]
        assert res.outcome is Outcome.FAILED and res.cause in ("unreachable", "killed", "failed"), res
        rel = res.remote_path
        assert not (sftp.root / "mysql" / rel).exists()  # nothing under the final name: the partial does not count
        [rec] = store.copies("offsite")
        assert rec.outcome is Outcome.FAILED and rec.attempts == 1 and rec.next_try is not None
        # backoff: not due before retry_delay, due after it
        assert copies.due(config, store, scan(config.backup.dir), config.copies["offsite"]) == []
        later = datetime.now(UTC) + timedelta(hours=2)
        assert len(copies.due(config, store, scan(config.backup.dir), config.copies["offsite"], now=later)) == 1
        pending = copies.states_for(config, scan(config.backup.dir).entries[0], copies.record_index(store))
        assert {s.destination: s.state for s in pending}["offsite"] == "failed"
        # the server is back; the next run (past the backoff) makes and verifies the copy
        sftp.start()
        store.set_copy(rec.__class__(**{**rec.__dict__, "next_try": datetime.now(UTC) - timedelta(seconds=1)}))
    run = runner.run_job(config, "nightly")
    assert run.status == "succeeded"
    with StateStore.open(config.state_db) as store:
        by_file = {(r.file, r.destination): r for r in store.copies()}
    assert by_file[(entry.key, "offsite")].outcome is Outcome.PASSED
    files = remote_files(sftp.root / "mysql")
    assert sha(files[rel]) == sha(entry.path)
    assert not [f for f in files if f.endswith(".dumpdeck-partial")]


def _two_dumps(config) -> list:
    assert runner.run_job(config, "nightly").status == "succeeded"
    time.sleep(1.1)  # dump names carry a stamp to the second
    assert runner.run_job(config, "nightly").status == "succeeded"
    entries = scan(config.backup.dir).entries
    assert len(entries) == 2
    return entries  # newest first


def test_flipped_byte_fails_verify_remote_and_is_no_longer_a_floor(write_config, sample_db, tmp_path):
    path = copy_config(write_config, sample_db, tmp_path, None)
    path.write_text(path.read_text() + "    retention: {keep_last: 2}\n")
    config = load_config(path)
    newest, older = _two_dumps(config)
    nas = tmp_path / "nas"
    rel_new = copies.rel_path(config, newest)
    before = {k: sha(v) for k, v in remote_files(nas).items()}
    target = nas / rel_new
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    out = cli(path, "verify", "--remote", "nas")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "sha256" in out.stdout and "failed" in out.stdout.lower()
    with StateStore.open(config.state_db) as store:
        rec = {r.remote_path: r for r in store.copies("nas")}
        assert rec[rel_new].outcome is Outcome.FAILED
        assert rec[copies.rel_path(config, older)].outcome is Outcome.PASSED
        rp = copies.plan_remote(config, store, "nas")
        rp = copies.apply_remote(config, store, rp, dry_run=True)
    by_rel = {rp.rels[id(d.entry)]: d for d in rp.decisions}
    assert by_rel[copies.rel_path(config, older)].keep
    assert any("floor" in r for r in by_rel[copies.rel_path(config, older)].reasons)
    assert not any("floor at nas: newest verified" in r for r in by_rel[rel_new].reasons)
    assert not by_rel[rel_new].keep  # a failed copy takes no slot (a later run copies it again)
    # the remote manifest now says the copy failed (any host reading the destination sees it)
    remote_manifest = json.loads((nas / (rel_new + ".manifest.json")).read_text())
    assert [c["outcome"] for c in remote_manifest["copies"]] == ["failed"]
    # nothing else at the destination changed (dry run)
    after = {k: sha(v) for k, v in remote_files(nas).items()}
    assert set(after) == set(before)


def test_retention_per_destination(write_config, sample_db, tmp_path):
    path = copy_config(write_config, sample_db, tmp_path, None)
    path.write_text(path.read_text() + "    retention: {keep_last: 1}\n")
    config = load_config(path)
    newest, older = _two_dumps(config)
    nas = tmp_path / "nas"
    # the second run's retention at nas deleted the older copy (and its manifest); locally both stay
    files = remote_files(nas)
    assert set(files) == {copies.rel_path(config, newest), copies.rel_path(config, newest) + ".manifest.json"}
    assert older.path.exists() and newest.path.exists()
    with StateStore.open(config.state_db) as store:
        rec = {r.file: r for r in store.copies("nas")}
        assert rec[older.key].removed is not None
        # a copy deleted by the destination's retention is not uploaded again
        assert copies.due(config, store, scan(config.backup.dir), config.copies["nas"]) == []
    # the floor is re-checked at the destination before anything is deleted: a corrupt newest copy and
    # no other verified copy there → nothing deleted (held)
    assert runner.run_job(config, "nightly").status == "succeeded"  # a third dump; the second is deleted at nas
    files = remote_files(nas)
    [dump_rel] = [f for f in files if not f.endswith(".json")]
    target = files[dump_rel]
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))
    time.sleep(1.1)
    run = runner.run_job(config, "nightly")  # a fourth dump is copied; the corrupt third cannot be a floor
    with StateStore.open(config.state_db) as store:
        msgs = [e.message for e in store.events(run.id) if e.kind.startswith("retention")]
    files = remote_files(nas)
    assert len([f for f in files if not f.endswith(".json")]) == 1, (files, msgs)
    # the dump that stays at nas is the new one, whose copy verified
    [kept] = [f for f in files if not f.endswith(".json")]
    assert kept != dump_rel


def test_local_retention_keeps_a_dump_not_yet_copied_anywhere(write_config, sample_db, tmp_path):
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[offsite]\ntype = sftp\nhost = 127.0.0.1\nport = {_free_port()}\nuser = dd\nshell_type = none\n")
    path = write_config(
        f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n    verify: 2\n"
        f"    retention: {{keep_last: 1}}\n"
        f'copies:\n  offsite:\n    remote: "offsite:mysql"\n    rclone_config: {conf}\n'
    )
    config = load_config(path)
    newest, older = _two_dumps(config)
    # keep_last 1 would delete the older dump, but no destination has it: it is the only verified copy
    assert older.path.exists() and newest.path.exists()
    out = cli(path, "prune", "--dry-run")
    assert "not yet copied to any destination" in out.stdout, out.stdout


def test_remote_catalog_from_a_second_state_dir(write_config, sample_db, tmp_path, sftp):
    conf = rclone_conf(tmp_path, sftp)
    path = copy_config(write_config, sample_db, tmp_path, conf)
    config = load_config(path)
    assert runner.run_job(config, "nightly").status == "succeeded"
    [entry] = scan(config.backup.dir).entries
    # a second host: its own state directory and backup directory, the same rclone config
    second = tmp_path / "second"
    second.mkdir()
    other = second / "config.yaml"
    other.write_text(
        path.read_text()
        .replace(str(tmp_path / "backups"), str(second / "backups"))
        .replace(str(tmp_path / "state"), str(second / "state"))
    )
    for dest in ("offsite", "nas"):
        out = cli(other, "list", "--remote", dest, "--json")
        assert out.returncode == 0, out.stderr
        dumps = json.loads(out.stdout)["dumps"]
        assert [d["path"] for d in dumps] == [copies.rel_path(config, entry)]
        assert dumps[0]["verified"] is True and dumps[0]["sha256"] == sha(entry.path)
        assert dumps[0]["server"] == "main" and dumps[0]["database"] == sample_db
    out = cli(other, "list", "--remote", "offsite")
    assert sample_db in out.stdout and "verified" in out.stdout
    assert not (second / "backups").exists() or not any((second / "backups").rglob("*.sql*"))


def test_bad_copies_config_is_named(write_config, tmp_path):
    path = write_config("copies:\n  'bad name':\n    remote: x\n  ok:\n    options: ['--config', 'x']\n")
    out = cli(path, "config", "check")
    assert out.returncode == 2
    assert "copies.bad name" in out.stderr and "copies.ok.remote: is required" in out.stderr, out.stderr
    assert "copies.ok.options" in out.stderr


def test_rclone_never_sees_a_secret_in_argv(write_config, sample_db, tmp_path, sftp):
    """The password lives in the rclone config file (obscured), never in rclone's argv or environment."""
    conf = rclone_conf(tmp_path, sftp)
    path = copy_config(write_config, sample_db, tmp_path, conf)
    config = load_config(path)
    seen: list[list[str]] = []
    real_popen = subprocess.Popen

    def spy(argv, *a, **kw):
        if argv and str(argv[0]).endswith("rclone"):
            seen.append([str(x) for x in argv])
            assert sftp.password not in " ".join(map(str, argv))
            assert sftp.password not in " ".join((kw.get("env") or os.environ).values())
        return real_popen(argv, *a, **kw)

    subprocess.Popen = spy  # type: ignore[misc]
    try:
        assert runner.run_job(config, "nightly").status == "succeeded"
    finally:
        subprocess.Popen = real_popen  # type: ignore[misc]
    assert seen


def test_restore_test_streams_from_a_remote_copy(write_config, sample_db, tmp_path, sftp):
    conf = rclone_conf(tmp_path, sftp)
    path = copy_config(write_config, sample_db, tmp_path, conf)
    config = load_config(path)
    assert runner.run_job(config, "nightly").status == "succeeded"
    [entry] = scan(config.backup.dir).entries
    rel = copies.rel_path(config, entry)
    # from a second host that has no local dumps at all
    second = tmp_path / "second"
    second.mkdir()
    other = second / "config.yaml"
    other.write_text(
        path.read_text()
        .replace(str(tmp_path / "backups"), str(second / "backups"))
        .replace(str(tmp_path / "state"), str(second / "state"))
    )
    out = cli(other, "restore-test", "--from", "offsite", "--latest", sample_db, "--target", "same", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    names = {c["name"]: c["outcome"] for c in report["checks"]}
    assert names["load"] == "passed" and names["sha256"] == "passed", names
    assert report["sha256"] == sha(entry.path)
    assert not list(second.rglob("*.sql*"))  # nothing of the dump landed on the second host's disk
    # a copy with one byte flipped fails (from the local destination, by its path there)
    target = tmp_path / "nas" / rel
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x01
    target.write_bytes(bytes(data))
    out = cli(other, "restore-test", "--from", "nas", rel, "--target", "same")
    assert out.returncode == 1, out.stdout + out.stderr


async def test_console_dumps_browser_shows_where_copies_are(write_config, sample_db, tmp_path):
    """The dumps browser's details say, per destination, whether the dump's copy verified or is pending."""
    from dumpdeck.tui.app import Intervals, make_app
    from dumpdeck.tui.screens.dumps import DumpsScreen
    from dumpdeck.tui.widgets.table import KeyedTable

    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[down]\ntype = sftp\nhost = 127.0.0.1\nport = {_free_port()}\nuser = dd\nshell_type = none\n")
    path = copy_config(write_config, sample_db, tmp_path, None)
    path.write_text(path.read_text() + f'  down:\n    remote: "down:mysql"\n    rclone_config: {conf}\n')
    config = load_config(path)
    assert runner.run_job(config, "nightly").status == "succeeded"
    [entry] = scan(config.backup.dir).entries
    app = make_app(config, intervals=Intervals(jobs=0.2, log=0.5, servers=2.0, catalog=0.5, disk=5.0))
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 60
        while not any(d.key == entry.key for d in app.catalog.dumps) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.press("d")
        assert isinstance(app.screen, DumpsScreen)
        table = app.screen.query_one("#dumps", KeyedTable)
        while table.row_count < 1 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        table.focus()
        table.move_cursor(row=table.get_row_index(entry.key))
        await pilot.pause()
        text = str(app.screen.query_one("#details").render())
    assert "off-host copies:" in text
    assert "✓ nas:" in text and "verified" in text, text
    assert "✗ down:" in text and "unreachable" in text, text


def test_restore_streams_from_a_remote_copy_on_a_second_host(write_config, mariadb, sample_db, tmp_path, sftp):
    from .helpers import drop_database, object_inventory, table_checksums

    conf = rclone_conf(tmp_path, sftp)
    path = copy_config(write_config, sample_db, tmp_path, conf)
    config = load_config(path)
    assert runner.run_job(config, "nightly").status == "succeeded"
    second = tmp_path / "second"
    second.mkdir()
    other = second / "config.yaml"
    other.write_text(
        path.read_text()
        .replace(str(tmp_path / "backups"), str(second / "backups"))
        .replace(str(tmp_path / "state"), str(second / "state"))
    )
    into = f"{sample_db}_back"
    try:
        out = cli(other, "restore", "--from", "offsite", "--latest", sample_db, "--into", into)
        assert out.returncode == 0, out.stdout + out.stderr
        assert table_checksums(mariadb, into) == table_checksums(mariadb, sample_db)
        assert not list(second.rglob("*.sql*"))  # streamed: nothing of the dump on the second host's disk
        # --tables from a copy: just those tables, with the view and trigger that need only them
        out = cli(
            other, "restore", "--from", "offsite", "--latest", sample_db, "--into", into + "3", "--tables", "orders"
        )
        assert out.returncode == 0, out.stdout + out.stderr
        src = table_checksums(mariadb, sample_db)
        assert table_checksums(mariadb, into + "3") == {"orders": src["orders"]}
        objs = object_inventory(mariadb, into + "3")
        assert objs["views"] == ["big_orders"] and objs["triggers"] == ["orders_bi"]
        assert not list(second.rglob("*.sql*"))
        # a corrupted copy is refused before anything is loaded
        [dump] = [p for p in (sftp.root / "mysql").rglob("*.sql.zst")]
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0x01
        dump.write_bytes(bytes(data))
        out = cli(other, "restore", "--from", "offsite", "--latest", sample_db, "--into", into + "2")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "nothing was restored" in out.stderr + out.stdout
    finally:
        for name in (into, into + "2", into + "3"):
            drop_database(mariadb, name)


def test_subsets_partition_the_copies():
    """`verify --remote DEST --subset N/M`: every copy is in exactly one of the M shares."""
    paths = [f"main/db{i}/db{i}-20260101T0000{i % 60:02d}Z.sql.zst" for i in range(200)]
    shares = [[p for p in paths if copies.in_subset(p, (n, 7))] for n in range(1, 8)]
    assert sorted(p for s in shares for p in s) == sorted(paths)
    assert all(s for s in shares)  # none empty with 200 copies
    with pytest.raises(Exception, match="N/M"):
        copies.parse_subset("8")
    with pytest.raises(Exception, match="between 1 and M"):
        copies.parse_subset("8/7")


def dumped_then_slow_copies(write_config, mariadb, sample_db, tmp_path, bwlimit: str) -> Path:
    """A config whose job's dump (of a 200,000-row table) is made without copies, then the same config with
    a `nas` destination slowed to `bwlimit`: its copy is due and takes a while."""
    make_big_table(mariadb, sample_db, rows=200_000)
    path = copy_config(write_config, sample_db, tmp_path, None)
    plain = tmp_path / "plain.yaml"
    plain.write_text(path.read_text().split("copies:")[0])
    assert runner.run_job(load_config(plain), "nightly").status == "succeeded"
    path.write_text(path.read_text() + f"    bwlimit: {bwlimit}\n")
    return path


def test_killed_upload_is_named_and_leaves_nothing_under_the_final_name(write_config, mariadb, sample_db, tmp_path):
    """rclone killed mid-upload (OOM killer, an operator's kill -9): the copy is failed with cause `killed`,
    only the temporary name is at the destination, and the local dump stays."""

    path = dumped_then_slow_copies(write_config, mariadb, sample_db, tmp_path, "256k")
    config = load_config(path)
    [entry] = scan(config.backup.dir).entries
    out: list = []
    with StateStore.open(config.state_db) as store:
        t = threading.Thread(target=lambda: out.append(copies.copy_dump(config, store, config.copies["nas"], entry)))
        t.start()

        [proc] = wait_until(lambda: _uploads(os.getpid()), timeout=30, what="rclone copyto running")
        wait_until(lambda: any((tmp_path / "nas").rglob("*.dumpdeck-partial")), timeout=30, what="partial")
        proc.kill()
        t.join(timeout=60)
        [res] = out
        assert res.outcome is Outcome.FAILED and res.cause == "killed", res
        [rec] = store.copies("nas")
        assert rec.outcome is Outcome.FAILED and "killed" in (rec.error or "")
    names = [p.name for p in (tmp_path / "nas").rglob("*") if p.is_file()]
    assert names and all(n.endswith(".dumpdeck-partial") for n in names), names
    assert entry.path.exists() and sha(entry.path) == entry.manifest.sha256


def test_two_hosts_write_one_destination_and_each_sees_both(write_config, sample_db, tmp_path):
    """Two hosts (two state and backup directories, two server names) copy to one destination; `list --remote`
    from either shows every server's dumps under <server>/<database>/."""
    path = copy_config(write_config, sample_db, tmp_path, None)
    a = load_config(path)
    assert runner.run_job(a, "nightly").status == "succeeded"
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
    assert runner.run_job(load_config(other), "nightly").status == "succeeded"
    for cfg in (path, other):
        out = cli(cfg, "list", "--remote", "nas", "--json")
        assert out.returncode == 0, out.stderr
        dumps = json.loads(out.stdout)["dumps"]
        assert sorted(d["server"] for d in dumps) == ["main", "replica"]
        assert all(d["verified"] and d["database"] == sample_db for d in dumps)
    assert sorted(p.name for p in (tmp_path / "nas").iterdir()) == ["main", "replica"]


def test_copy_command_retries_a_failed_copy_now(write_config, sample_db, tmp_path, sftp):
    """`dumpdeck copy --now` after fixing the credentials: the failed copy is made at once, not after its delay."""
    good = rclone_conf(tmp_path, sftp)
    text = good.read_text()
    bad = subprocess.run(["rclone", "obscure", "-"], input="nope", capture_output=True, text=True).stdout.strip()
    good.write_text(text.replace(text.split("pass = ")[1].splitlines()[0], bad))
    path = copy_config(write_config, sample_db, tmp_path, good)
    config = load_config(path)
    assert runner.run_job(config, "nightly").status == "succeeded"
    out = cli(path, "copy")
    assert out.returncode == 0 and "no copies due" in out.stdout, out.stdout  # offsite waits for its delay
    good.write_text(text)
    out = cli(path, "copy", "--to", "offsite", "--now")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "offsite" in out.stdout and "matches" in out.stdout
    [entry] = scan(config.backup.dir).entries
    assert sha(sftp.root / "mysql" / copies.rel_path(config, entry)) == sha(entry.path)


MOTO_SERVER = Path(sys.executable).parent / "moto_server"


@pytest.mark.skipif(not MOTO_SERVER.exists(), reason="moto[server] is not installed (the test extras)")
def test_copy_to_s3_emulator_moto(write_config, sample_db, tmp_path, monkeypatch):
    """An S3 emulator (moto in server mode on loopback), not real S3: a copy made and verified by reading it
    back (S3 reports no SHA-256), the object's bytes equal to the dump's, and `list --remote` seeing it."""
    # rclone's S3 client refuses to start when AWS_CA_BUNDLE is set (its transport cannot take a custom CA);
    # the emulator speaks plain http on loopback, so no CA is needed here
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    port = _free_port()
    server = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(up, timeout=60, what="moto_server listening")
        conf = tmp_path / "rclone.conf"
        conf.write_text(
            textwrap.dedent(f"""\
            [s3emu]
            type = s3
            provider = Other
            env_auth = false
            access_key_id = testing
            secret_access_key = testing
            region = us-east-1
            endpoint = http://127.0.0.1:{port}
            force_path_style = true
            """)
        )
        conf.chmod(0o600)
        made = subprocess.run(
            ["rclone", "--config", str(conf), "mkdir", "s3emu:dumps"], capture_output=True, text=True, timeout=60
        )
        assert made.returncode == 0, made.stderr
        path = write_config(
            f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n    verify: 2\n"
            f'copies:\n  s3emu:\n    remote: "s3emu:dumps/mysql"\n    rclone_config: {conf}\n    retry_delay: 1h\n'
        )
        config = load_config(path)
        run = runner.run_job(config, "nightly")
        assert run.status == "succeeded", run.reason
        [entry] = scan(config.backup.dir).entries
        rel = copies.rel_path(config, entry)
        assert rel is not None
        with StateStore.open(config.state_db) as store:
            [rec] = store.copies()
        assert rec.outcome is Outcome.PASSED and rec.method == copies.READ_BACK, rec
        # the state of the world: the object in the emulator, read with rclone, is the dump byte for byte
        got = subprocess.run(
            ["rclone", "--config", str(conf), "cat", f"s3emu:dumps/mysql/{rel}"], capture_output=True, timeout=60
        )
        assert got.returncode == 0, got.stderr
        assert hashlib.sha256(got.stdout).hexdigest() == sha(entry.path)
        names = subprocess.run(
            ["rclone", "--config", str(conf), "lsf", "-R", "--files-only", "s3emu:dumps/mysql"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sorted(names.stdout.split()) == [rel, rel + ".manifest.json"]  # no temporary name left behind
        out = cli(path, "list", "--remote", "s3emu", "--json")
        assert out.returncode == 0, out.stderr
        [listed] = json.loads(out.stdout)["dumps"]
        assert listed["path"] == rel and listed["verified"] is True and listed["sha256"] == sha(entry.path)
    finally:
        server.kill()
        server.wait()


def _uploads(root_pid: int) -> list:
    import psutil

    try:
        kids = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for p in kids:
        # a child may end between the listing and the look at its argv (a zombie has none)
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if "copyto" in (p.cmdline() or []):
                found.append(p)
    return found


def _rclone_copyto_anywhere(config_text: str) -> list:
    """rclone copyto processes of this test (their argv names its destination), wherever they were reparented."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        argv = p.info["cmdline"] or []
        if "copyto" in argv and any(config_text in a for a in argv):
            out.append(p)
    return out


def test_cancel_stops_an_upload_under_way_and_records_no_failure(write_config, mariadb, sample_db, tmp_path):
    """SIGTERM to `job run` while rclone uploads (a slow link): the rclone process group is killed within
    seconds, not at the end of the upload; the run is cancelled; no copy record (a later run copies it);
    nothing under the final name; the local dump stays."""
    make_big_table(mariadb, sample_db, rows=200_000)
    path = copy_config(write_config, sample_db, tmp_path, None)
    path.write_text(path.read_text() + "    bwlimit: 64k\n")
    proc = subprocess.Popen(
        [*DUMPDECK, "--config", str(path), "job", "run", "nightly"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: _uploads(proc.pid), timeout=120, what="rclone copyto running")
        wait_until(lambda: any((tmp_path / "nas").rglob("*.dumpdeck-partial")), timeout=30, what="partial")
        t0 = time.monotonic()
        proc.terminate()
        proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 10, f"the cancel waited {took:.1f} s for the upload"
    assert not _rclone_copyto_anywhere(str(tmp_path / "nas"))
    config = load_config(path)
    with StateStore.open(config.state_db) as store:
        assert store.copies("nas") == []
        [run] = store.list_runs(job="nightly")
        assert run.status == "cancelled", run
    names = [p.name for p in (tmp_path / "nas").rglob("*") if p.is_file()]
    assert all(n.endswith(".dumpdeck-partial") for n in names), names
    [entry] = scan(config.backup.dir).entries
    assert sha(entry.path) == entry.manifest.sha256


def test_max_runtime_stops_an_upload_under_way(write_config, mariadb, sample_db, tmp_path):
    """A job's max_runtime bounds its copies too: an upload still running when it is spent is stopped
    (cause `timed out`, recorded, retried by a later run); the run itself succeeded (the dump is good)."""
    make_big_table(mariadb, sample_db, rows=200_000)
    path = copy_config(write_config, sample_db, tmp_path, None, job="    max_runtime: 20s\n")
    path.write_text(path.read_text() + "    bwlimit: 64k\n")
    config = load_config(path)
    t0 = time.monotonic()
    run = runner.run_job(config, "nightly")
    took = time.monotonic() - t0
    assert run.status == "succeeded", run.reason
    assert took < 30, f"the run took {took:.1f} s with a max_runtime of 20 s"
    assert not _rclone_copyto_anywhere(str(tmp_path / "nas"))
    with StateStore.open(config.state_db) as store:
        [rec] = store.copies("nas")
        assert rec.outcome is Outcome.FAILED and "max_runtime spent" in (rec.error or ""), rec


def test_ctrl_c_on_copy_stops_the_upload(write_config, mariadb, sample_db, tmp_path):
    """Ctrl-C (SIGINT) on `dumpdeck copy` while rclone uploads: it exits 130 within seconds and leaves no
    rclone process behind (they run in their own process groups, out of reach of the terminal's signal)."""
    path = dumped_then_slow_copies(write_config, mariadb, sample_db, tmp_path, "64k")
    proc = subprocess.Popen(
        [*DUMPDECK, "--config", str(path), "copy"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONFAULTHANDLER="1"),
    )
    try:
        wait_until(lambda: _uploads(proc.pid), timeout=60, what="rclone copyto running")
        t0 = time.monotonic()
        interrupt(proc, 30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and took < 10, (proc.returncode, took)
    assert not _rclone_copyto_anywhere(str(tmp_path / "nas"))
    with StateStore.open(load_config(path).state_db) as store:
        assert store.copies("nas") == []
