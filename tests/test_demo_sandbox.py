"""The shared sandbox under concurrency: several processes creating sandboxes at once
(the demo, the test fixture and sandboxed restore-tests of other runs on the same host)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from pathlib import Path
from dumpdeck.backend.sandbox import Sandbox
sb = Sandbox.create(Path(sys.argv[1]))
try:
    sb.start()
    with sb.connect() as conn, conn.cursor() as cur:
        # an information_schema query uses an internal temporary table
        cur.execute("SELECT COUNT(*) FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
                    "USING (TABLE_SCHEMA, TABLE_NAME)")
        cur.fetchall()
finally:
    sb.destroy()
"""


def test_concurrent_install_db_and_servers_do_not_collide_in_tmp(tmp_path):
    """mariadb-install-db runs sharing /tmp collide on #sql-temptable-* files and fail
    ("Unknown table 'mysql.tmp_user_sys'"); each sandbox has a private --tmpdir."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(tmp_path / f"sb{i}")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for rc, err in results:
        assert rc == 0, err
    assert not any((tmp_path / f"sb{i}").exists() for i in range(4))
