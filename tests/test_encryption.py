"""Encryption at rest with age, against a real mariadbd and the real `age` binary.

The dump host has only the recipients (public keys); the identity lives in a second config, as it
would on the host that restores. Each test asserts the state of the world: the bytes on disk, the
processes' argv and environment, the target database after a refused restore.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dumpdeck.backend import encryption
from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.codecs import codec_for_path, open_decoded, sniff_codec
from dumpdeck.backend.config import load_config
from dumpdeck.backend.errors import ConfigError, DecryptKeyError
from dumpdeck.backend.restore_real import RestoreRefused, RestoreRequest, restore
from dumpdeck.backend.state import open_store
from dumpdeck.cli.main import main

from .helpers import drop_database, make_big_table, object_inventory, table_checksums, wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not encryption.shutil.which("age"), reason="age is not installed (scripts/bootstrap installs it)"
)


def keygen(path: Path) -> tuple[str, str]:
    """(recipient, secret key) of a fresh identity file written by age-keygen."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    secret = next(ln for ln in path.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-"))
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
    return recipient.stdout.strip(), secret


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    r1, s1 = keygen(d / "id1.txt")
    _, s2 = keygen(d / "wrong.txt")
    return {"recipient": r1, "secret": s1, "identity": d / "id1.txt", "wrong": d / "wrong.txt", "wrong_secret": s2}


@pytest.fixture
def configs(write_config, keys, sample_db):
    """(dump host config: recipients only, restore host config: the same plus the identity)."""
    job = f"jobs:\n  deep:\n    databases: [{sample_db}]\n    verify: 3\n"
    dump_host = write_config(f"encryption:\n  recipients: [{keys['recipient']}]\n{job}", name="dump.yaml")
    read_host = write_config(
        f"encryption:\n  recipients: [{keys['recipient']}]\n  identity_file: {keys['identity']}\n{job}",
        name="read.yaml",
    )
    yield dump_host, read_host
    encryption.use_identity(None)


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def backup(capsys, cfg: Path, db: str, *extra: str) -> dict:
    rc, out, err = run(capsys, "-c", cfg, "backup", db, "--json", *extra)
    assert rc == 0, err
    return json.loads(out)["results"][0]


def the_dump(cfg: Path) -> Path:
    (path,) = [p for p in Path(load_config(cfg).backup.dir).rglob("*.sql*") if not p.name.endswith(".json")]
    return path


def test_round_trip_dump_verify_restore_test_restore(mariadb, configs, sample_db, capsys, new_db):
    dump_host, read_host = configs
    backup(capsys, dump_host, sample_db)
    path = the_dump(dump_host)
    assert path.name.endswith(".sql.zst.age") and path.read_bytes().startswith(encryption.MAGIC)
    assert codec_for_path(path) == "zstd" and sniff_codec(path) == "zstd"
    m = manifest_mod.load(path)
    assert m.encryption is not None and m.encryption["recipients"] == [load_config(dump_host).encryption.recipients[0]]
    assert m.encryption["fingerprints"][0].startswith("sha256:")
    assert m.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    # L2 ran in-stream during the dump, before encryption, and says so
    (v,) = m.verifications
    assert v.target == "in-stream, before encryption" and v.level == 2 and v.passed
    assert all(c.get("in_stream") for c in v.checks if c["level"] == 2)

    # the restore host decrypts: L3 now, with the plaintext sha256 compared
    rc, out, err = run(capsys, "-c", read_host, "verify", path, "--json")
    data = json.loads(out)
    assert rc == 0 and data["level_reached"] == 3, err
    decodes = next(c for c in data["checks"] if c["name"] == "stream decodes")
    assert decodes["outcome"] == "passed" and "sha256 of the SQL matches" in decodes["evidence"]
    with open_decoded(path) as s:
        sql = b"".join(s.chunks())
    assert __import__("hashlib").sha256(sql).hexdigest() == m.sha256_sql

    rc, out, err = run(capsys, "-c", read_host, "restore-test", path, "--target", "same", "--json")
    assert rc == 0 and json.loads(out)["level_reached"] == 4, out + err

    target = new_db(sample_db + "_dec")
    res = restore(load_config(read_host), RestoreRequest(path, "main", target))
    assert res is not None
    assert table_checksums(mariadb, target) == table_checksums(mariadb, sample_db)
    assert object_inventory(mariadb, target) == object_inventory(mariadb, sample_db)


def test_replace_restore_takes_an_encrypted_safety_dump(mariadb, configs, sample_db, capsys):
    dump_host, read_host = configs
    backup(capsys, dump_host, sample_db)
    path = the_dump(dump_host)
    before = table_checksums(mariadb, sample_db)
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders")
    res = restore(load_config(read_host), RestoreRequest(path, "main", sample_db, replace=True))
    assert res is not None and table_checksums(mariadb, sample_db) == before
    dumps = [p for p in path.parent.iterdir() if not p.name.endswith(".json")]
    assert len(dumps) == 2 and all(p.name.endswith(".sql.zst.age") for p in dumps)
    safety = next(p for p in dumps if p != path)
    m = manifest_mod.load(safety)
    assert "pre-restore" in m.tags and m.encryption is not None and m.verified_level >= 2
    assert b"INSERT INTO" not in safety.read_bytes()


def test_level3_in_stream_and_verify_without_identity_is_not_checked(configs, sample_db, capsys):
    dump_host, _ = configs
    rc, out, err = run(capsys, "-c", dump_host, "job", "run", "deep")
    assert rc == 0, out + err
    path = the_dump(dump_host)
    v = manifest_mod.load(path).verifications[-1]
    assert v.level == 3 and v.passed and v.target == "in-stream, before encryption"
    assert any(c["name"] == "rows" and c["evidence"].startswith("in-stream, before encryption") for c in v.checks)

    encryption.use_identity(None)
    rc, out, _ = run(capsys, "-c", dump_host, "verify", path, "--level", "1")
    assert rc == 0  # L1 needs no key
    rc, out, _ = run(capsys, "-c", dump_host, "verify", path, "--json")
    data = json.loads(out)
    assert rc == 4 and data["outcome"] == "not_checked" and data["level_reached"] == 1
    decodes = next(c for c in data["checks"] if c["name"] == "stream decodes")
    assert decodes["outcome"] == "not_checked" and "identity_file" in decodes["evidence"]
    assert "levels 2–3 were checked in-stream, before encryption when it was dumped" in decodes["evidence"]
    assert not any(c["outcome"] == "failed" for c in data["checks"])
    # the dump keeps the level it proved: not-checked lowers nothing
    assert manifest_mod.load(path).verified_level == 3
    # a restore-test on the dump host: not checked, before any server is touched
    from dumpdeck.backend.restore import restore_test

    rep = restore_test(path, load_config(dump_host), "same")
    assert rep.outcome.value == "not_checked" and rep.level_reached == 1
    assert "identity_file" in rep.summary and "nothing was loaded" in rep.summary


def test_no_plaintext_sql_on_disk(configs, sample_db, capsys):
    dump_host, _ = configs
    backup(capsys, dump_host, sample_db)
    backup_dir = Path(load_config(dump_host).backup.dir)
    files = [p for p in backup_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".age") for p in files)
    for p in files:
        data = p.read_bytes()
        for word in (b"CREATE TABLE", b"INSERT INTO", b"customers"):
            if p.name.endswith(".manifest.json") and word == b"customers":
                continue  # the manifest lists table names (metadata, not the data)
            assert word not in data, f"{word!r} in {p}"
    # nothing was ever written unencrypted beside it (no .partial, no temporary file left)
    assert all(p.name.endswith((".age", ".manifest.json")) for p in files), files


def _sample_procs(stop: threading.Event, seen: list[bytes]) -> None:
    me = os.getpid()
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            for what in ("cmdline", "environ"):
                try:
                    seen.append(Path(f"/proc/{pid}/{what}").read_bytes())
                except OSError:
                    pass
        stop.wait(0.01)


def test_no_key_material_in_argv_environ_logs_or_report(mariadb, configs, keys, sample_db, capsys, new_db, tmp_path):
    dump_host, read_host = configs
    make_big_table(mariadb, sample_db, rows=200_000)  # long enough for the sampler to see age at work
    stop, seen = threading.Event(), []
    sampler = threading.Thread(target=_sample_procs, args=(stop, seen), daemon=True)
    sampler.start()
    try:
        backup(capsys, dump_host, sample_db)
        path = the_dump(dump_host)
        # a restore in a child process (its argv and environment are sampled too)
        proc = subprocess.run(
            [sys.executable, "-m", "dumpdeck", "-c", str(read_host), "restore", str(path), "--into", new_db("k")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        rc, _, _ = run(capsys, "-c", read_host, "report", "--out", tmp_path / "report.html")
        assert rc == 0
    finally:
        stop.set()
        sampler.join()
    ages = [s for s in seen if b"age\x00--" in s]
    assert any(b"--decrypt" in s for s in ages) and any(b"--encrypt" in s for s in ages), "age was never seen"
    secret = keys["secret"].encode()
    body = secret.split(b"-")[-1]  # the key itself, without its prefix
    assert not [s for s in seen if body in s or b"AGE-SECRET-KEY" in s]
    state = Path(load_config(read_host).state_dir)
    for p in [*state.rglob("*"), tmp_path / "report.html"]:
        if p.is_file():
            assert body not in p.read_bytes(), p
    assert body not in (proc.stdout + proc.stderr).encode()


def test_wrong_identity_is_a_clear_error_and_nothing_is_lost(mariadb, configs, keys, sample_db, capsys, write_config):
    dump_host, _ = configs
    backup(capsys, dump_host, sample_db)
    path = the_dump(dump_host)
    before = path.read_bytes()
    world = table_checksums(mariadb, sample_db)
    wrong = write_config(f"encryption:\n  identity_file: {keys['wrong']}\n", name="wrong.yaml")

    rc, out, _ = run(capsys, "-c", wrong, "verify", path, "--json")
    data = json.loads(out)
    assert rc == 4 and data["outcome"] == "not_checked"
    ev = next(c for c in data["checks"] if c["name"] == "stream decodes")["evidence"]
    assert path.name in ev and str(keys["wrong"]) in ev and "no identity matched" in ev
    assert keys["wrong_secret"] not in out

    with pytest.raises(RestoreRefused, match=r"wrong\.txt") as exc:
        restore(load_config(wrong), RestoreRequest(path, "main", sample_db, replace=True))
    assert path.name in str(exc.value) and "nothing was restored" in str(exc.value)
    assert table_checksums(mariadb, sample_db) == world
    assert path.read_bytes() == before
    assert manifest_mod.load(path).verified_level == 2  # not condemned

    encryption.use_identity(keys["wrong"])
    with pytest.raises(DecryptKeyError, match="no identity matched"), open_decoded(path) as s:
        b"".join(s.chunks())


def test_corrupt_encrypted_file_fails_level1(configs, sample_db, capsys):
    dump_host, read_host = configs
    backup(capsys, dump_host, sample_db)
    path = the_dump(dump_host)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    for cfg in (dump_host, read_host):  # with or without the key: L1 fails it
        rc, out, _ = run(capsys, "-c", cfg, "verify", path, "--json")
        data = json.loads(out)
        assert rc == 1 and data["outcome"] == "failed" and data["level_reached"] == 0
        sha = next(c for c in data["checks"] if c["name"] == "sha256")
        assert sha["outcome"] == "failed" and "mismatch" in sha["evidence"]
    # and decrypting it (no manifest to compare with) fails the stream, it is not "not checked"
    manifest_mod.manifest_path(path).unlink()
    rc, out, _ = run(capsys, "-c", read_host, "verify", path, "--json")
    data = json.loads(out)
    assert rc == 1 and data["outcome"] == "failed"
    ev = next(c for c in data["checks"] if c["name"] == "stream decodes")["evidence"]
    assert ev.startswith("age: the encrypted stream does not decode"), ev


def test_recipients_are_checked_and_a_secret_key_is_refused(write_config, keys, tmp_path):
    with pytest.raises(ConfigError, match="secret key") as exc:
        load_config(write_config(f"encryption:\n  recipients: [{keys['secret']}]\n"))
    assert keys["secret"] not in str(exc.value)
    rfile = tmp_path / "r.txt"
    rfile.write_text(f"# offsite\n{keys['recipient']}\n")
    cfg = load_config(write_config(f"jobs:\n  j:\n    encryption: {{recipients_file: {rfile}}}\n"))
    assert cfg.recipients(cfg.job("j")).keys == (keys["recipient"],)
    assert cfg.recipients() is None  # no global recipients: not encrypted
    rfile.write_text("")
    with pytest.raises(ConfigError, match=r"jobs\.j\.encryption\.recipients_file .*names no recipient"):
        cfg.recipients(cfg.job("j"))


@pytest.fixture
def new_db(mariadb):
    names = []

    def make(name: str) -> str:
        drop_database(mariadb, name)
        names.append(name)
        return name

    yield make
    for n in names:
        drop_database(mariadb, n)


def test_age_killed_mid_dump_fails_the_dump_and_leaves_nothing(mariadb, configs, sample_db):
    """The encryption stage dying is a failed dump with its reason, and no partial or plaintext stays."""
    import psutil

    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.errors import DumpError

    dump_host, _ = configs
    make_big_table(mariadb, sample_db, rows=300_000)
    config = load_config(dump_host)
    outcome: list[BaseException | None] = []

    def dump() -> None:
        try:
            dump_database(config.server("main"), config.backup, sample_db, recipients=config.recipients())
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=dump)
    t.start()
    killed = False
    while t.is_alive() and not killed:
        for child in psutil.Process().children(recursive=True):
            try:
                started = any(p.name.endswith(".partial") for p in Path(config.backup.dir).rglob("*"))
                if child.name() == "age" and started:
                    child.kill()
                    killed = True
            except psutil.Error:
                pass
    t.join(120)
    assert killed, "the dump ended before age could be killed"
    (exc,) = outcome
    assert isinstance(exc, DumpError) and "age" in str(exc), exc
    assert [p for p in Path(config.backup.dir).rglob("*") if p.is_file()] == []


def test_identity_option_reads_encrypted_dumps_for_one_command(mariadb, configs, keys, sample_db, capsys, new_db):
    """`--identity FILE` (before or after the command) stands in for encryption.identity_file: on the dump
    host, whose config has none, verify reaches L3, and a detached restore (a runner that reads the config
    again) decrypts with it too; an unreadable path is a usage error naming it."""
    dump_host, _ = configs
    backup(capsys, dump_host, sample_db)
    path = the_dump(dump_host)
    encryption.use_identity(None)
    rc, out, _ = run(capsys, "-c", dump_host, "verify", path, "--json")
    assert rc == 4 and json.loads(out)["level_reached"] == 1  # no identity: not checked

    for argv in (
        ("-c", dump_host, "--identity", keys["identity"], "verify", path, "--json"),
        ("-c", dump_host, "verify", path, "--json", "--identity", keys["identity"]),
    ):
        encryption.use_identity(None)
        rc, out, err = run(capsys, *argv)
        data = json.loads(out)
        assert rc == 0 and data["level_reached"] == 3, err
        decodes = next(c for c in data["checks"] if c["name"] == "stream decodes")
        assert "sha256 of the SQL matches" in decodes["evidence"]

    encryption.use_identity(None)
    rc, out, err = run(capsys, "-c", dump_host, "verify", path, "--identity", keys["wrong"])
    assert rc == 4 and "no identity matched" in out + err  # the wrong key: not checked, never failed

    missing = keys["identity"].parent / "nope.txt"
    rc, out, err = run(capsys, "-c", dump_host, "verify", path, "--identity", missing)
    assert rc == 2 and f"--identity {missing}" in err and "no such file" in err

    target = new_db(sample_db + "_idopt")
    encryption.use_identity(None)
    rc, out, err = run(
        capsys, "-c", dump_host, "restore", path, "--into", target, "--detach", "--identity", keys["identity"]
    )
    assert rc == 0 and "started" in out, err
    config = load_config(dump_host)
    with open_store(config) as store:
        r = store.list_runs(job="restore")[0]
        final = wait_until(lambda: (x := store.get_run(r.id)) and not x.active and x, timeout=120, what="the run")
        assert final.status == "succeeded", final.reason
    assert table_checksums(mariadb, target) == table_checksums(mariadb, sample_db)


def test_list_console_and_report_mark_encrypted_dumps(configs, sample_db, capsys, write_config):
    """`list` (CODEC zstd+age, JSON `encrypted`), the console's dumps browser and the status page say which
    dumps are encrypted; a plain dump beside it is not marked."""
    from dumpdeck.backend import catalog, report
    from dumpdeck.tui.adapter import dump_view

    dump_host, _ = configs
    plain = write_config(f"jobs:\n  deep:\n    databases: [{sample_db}]\n", name="plain.yaml")
    backup(capsys, plain, sample_db)
    time.sleep(1.1)  # a newer stamp: the encrypted dump is the newest
    backup(capsys, dump_host, sample_db)

    rc, out, _ = run(capsys, "-c", dump_host, "list", "--json")
    dumps = json.loads(out)["dumps"]
    assert rc == 0 and [(d["codec"], d["encrypted"], d["path"].endswith(".age")) for d in dumps] == [
        ("zstd", True, True),
        ("zstd", False, False),
    ]
    rc, out, _ = run(capsys, "-c", dump_host, "list")
    rows = [ln for ln in out.splitlines() if sample_db in ln]
    assert len(rows) == 2 and "zstd+age" in rows[0] and "zstd+age" not in rows[1] and " zstd " in rows[1]

    cat = catalog.scan(load_config(dump_host).backup.dir)
    assert [dump_view(e).codec for e in cat.entries] == ["zstd+age", "zstd"]

    config = load_config(dump_host)
    with open_store(config) as store:
        page = report.render(report.collect(config, store))
    assert page.count(">encrypted</span>") == 1


def test_a_job_switches_encryption_off_only_explicitly(write_config, keys, sample_db, capsys):
    """`jobs.<j>.encryption: {enabled: false}` stores that job's dumps unencrypted whatever the global
    recipients; an empty recipients list is an error (it would silently do the same), and so is
    `enabled: false` beside recipients."""
    glob = f"encryption:\n  recipients: [{keys['recipient']}]\n"
    with pytest.raises(ConfigError, match=r"jobs\.j\.encryption: names no recipient.*enabled: false"):
        load_config(write_config(glob + "jobs:\n  j:\n    encryption: {recipients: []}\n"))
    with pytest.raises(ConfigError, match=r"jobs\.j\.encryption\.enabled: false, yet recipients"):
        load_config(
            write_config(glob + f"jobs:\n  j:\n    encryption: {{enabled: false, recipients: [{keys['recipient']}]}}\n")
        )
    cfg_path = write_config(
        glob + f"jobs:\n  plain:\n    databases: [{sample_db}]\n    encryption: {{enabled: false}}\n"
        f"  sealed:\n    databases: [{sample_db}]\n"
    )
    cfg = load_config(cfg_path)
    assert cfg.recipients(cfg.job("plain")) is None and cfg.recipients(cfg.job("sealed")) is not None
    rc, out, err = run(capsys, "-c", cfg_path, "job", "run", "plain")
    assert rc == 0, out + err
    [path] = [p for p in Path(cfg.backup.dir).rglob("*.sql*") if not p.name.endswith(".json")]
    assert path.name.endswith(".sql.zst") and not encryption.is_encrypted(path)
    assert manifest_mod.load(path).encryption is None
