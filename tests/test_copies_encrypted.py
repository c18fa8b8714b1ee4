"""Off-host copies of encrypted dumps: what reaches the destination is ciphertext, and a second host
streams it back (rclone cat → age → zstd → loader) with its identity, or says *not checked* without one.
Real rclone (a `local` destination), real age, the real test server; assertions read the destination's
files and the server's tables."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dumpdeck.backend import encryption, runner
from dumpdeck.backend.config import load_config

from .helpers import drop_database, table_checksums

ROOT = Path(__file__).resolve().parent.parent
DUMPDECK = [sys.executable, "-m", "dumpdeck"]

pytestmark = pytest.mark.skipif(
    shutil.which("rclone") is None or shutil.which("age") is None, reason="rclone and age (scripts/bootstrap)"
)


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DUMPDECK, "--config", str(config_path), *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_encrypted_copy_is_ciphertext_and_streams_back_only_with_the_identity(
    write_config, mariadb, sample_db, tmp_path
):
    keydir = tmp_path / "keys"
    keydir.mkdir(mode=0o700)
    identity = keydir / "id.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()
    nas = tmp_path / "nas"
    body = (
        f"encryption:\n  recipients: [{recipient}]\n"
        f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n    verify: 2\n"
        f"copies:\n  nas:\n    remote: {nas}\n    retry_delay: 1h\n"
    )
    dump_host = write_config(body)
    try:
        assert runner.run_job(load_config(dump_host), "nightly").status == "succeeded"
    finally:
        encryption.use_identity(None)
    stored = [p for p in nas.rglob("*") if p.is_file() and ".sql" in p.name and not p.name.endswith(".json")]
    assert [p.name.endswith(".sql.zst.age") for p in stored] == [True], stored
    data = stored[0].read_bytes()
    assert data.startswith(encryption.MAGIC)
    assert b"CREATE TABLE" not in data and b"INSERT INTO" not in data

    # a second host: its own state and backup dirs, the same destination; first without the identity
    def second(name: str, extra: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        text = dump_host.read_text().replace(str(tmp_path / "backups"), str(d / "backups"))
        text = text.replace(str(tmp_path / "state"), str(d / "state"))
        text = text.replace("encryption:\n", f"encryption:\n{extra}", 1)
        (d / "config.yaml").write_text(text)
        return d / "config.yaml"

    keyless = second("keyless", "")
    out = cli(keyless, "restore-test", "--from", "nas", "--latest", sample_db)
    assert out.returncode == 4, out.stdout + out.stderr  # not checked: the key is elsewhere, nothing is condemned
    into = f"{sample_db}_enc_back"
    out = cli(keyless, "restore", "--from", "nas", "--latest", sample_db, "--into", into)
    assert out.returncode != 0, out.stdout + out.stderr
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (into,))
        assert cur.fetchall() == ()  # refused before anything was created

    keyed = second("keyed", f"  identity_file: {identity}\n")
    try:
        out = cli(keyed, "restore-test", "--from", "nas", "--latest", sample_db)
        assert out.returncode == 0, out.stdout + out.stderr
        out = cli(keyed, "restore", "--from", "nas", "--latest", sample_db, "--into", into)
        assert out.returncode == 0, out.stdout + out.stderr
        assert table_checksums(mariadb, into) == table_checksums(mariadb, sample_db)
        assert not [p for p in (tmp_path / "keyed").rglob("*.sql*") if p.is_file()]  # streamed, nothing on disk
    finally:
        drop_database(mariadb, into)
