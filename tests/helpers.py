"""Test helpers: sample databases, table checksums, waiting."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from dumpdeck.backend.mysql import quote_ident


def create_sample_database(server, name: str, rows: int = 200) -> None:
    """Tables (InnoDB, FK), a view, a procedure, a function, a trigger, an event, BLOBs, utf8mb4, emoji."""
    q = quote_ident(name)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q}")
        cur.execute(f"CREATE DATABASE {q} CHARACTER SET utf8mb4")
        cur.execute(f"USE {q}")
        cur.execute("""CREATE TABLE customers (
            id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL,
            city VARCHAR(100), note TEXT, created DATETIME NOT NULL DEFAULT '2024-01-01 00:00:00'
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""")
        cur.execute("""CREATE TABLE orders (
            id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, total DECIMAL(10,2) NOT NULL,
            payload BLOB, FOREIGN KEY (customer_id) REFERENCES customers(id)
        ) ENGINE=InnoDB""")
        cur.execute("CREATE TABLE `odd name` (`weird``col` INT, v VARCHAR(20)) ENGINE=InnoDB")
        names = ["Zoë", "Åsa", "Łukasz", "李雷", "Ольга", "O'Brien", "Back\\slash", "emoji 🐬🎉"]
        cur.executemany(
            "INSERT INTO customers (name, city, note) VALUES (%s, %s, %s)",
            [
                (names[i % len(names)] + f" {i}", f"City {i % 17}", "line1\nline2\ttab 'quote' \"dq\"" * (i % 3))
                for i in range(rows)
            ],
        )
        cur.executemany(
            "INSERT INTO orders (customer_id, total, payload) VALUES (%s, %s, %s)",
            [
                ((i % rows) + 1, (i * 7919) % 100000 / 100, bytes(range(256)) * (i % 4) + bytes([0, 10, 13, 39, 92]))
                for i in range(rows * 2)
            ],
        )
        cur.executemany("INSERT INTO `odd name` VALUES (%s, %s)", [(i, f"v{i}") for i in range(10)])
        cur.execute("CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 500")
        cur.execute("CREATE PROCEDURE count_orders(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM orders; END")
        cur.execute("CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2")
        cur.execute("CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = ABS(NEW.total)")
        cur.execute("CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM orders WHERE id < 0")


def drop_database(server, name: str) -> None:
    try:
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
    except Exception:
        pass


def _base_tables(cur, database: str) -> list[str]:
    cur.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE'",
        (database,),
    )
    return [table for (table,) in cur.fetchall()]


def show_creates(server, database: str) -> dict[str, str]:
    """{table: SHOW CREATE TABLE} for every base table."""
    out = {}
    with server.connect(database) as conn, conn.cursor() as cur:
        for table in _base_tables(cur, database):
            cur.execute(f"SHOW CREATE TABLE {quote_ident(table)}")
            out[table] = cur.fetchone()[1]
    return out


def table_checksums(server, database: str) -> dict[str, tuple[int, int]]:
    """{table: (row count, CHECKSUM TABLE)} for every base table."""
    out = {}
    with server.connect(database) as conn, conn.cursor() as cur:
        for table in _base_tables(cur, database):
            cur.execute(f"SELECT COUNT(*) FROM {quote_ident(table)}")
            count = cur.fetchone()[0]
            cur.execute(f"CHECKSUM TABLE {quote_ident(table)}")
            out[table] = (count, cur.fetchone()[1])
    return out


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def restore_into(server, path, database: str) -> None:
    """Load a dump file (any codec) into a fresh database with the real `mariadb` client."""
    import subprocess

    from dumpdeck.backend.codecs import open_decoded

    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)}")
        cur.execute(f"CREATE DATABASE {quote_ident(database)}")
    client = subprocess.Popen(
        [
            "mariadb",
            "--no-defaults",
            "-uroot",
            f"--socket={server.socket}",
            "--default-character-set=utf8mb4",
            database,
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with open_decoded(path) as stream:
        for chunk in stream.chunks():
            client.stdin.write(chunk)
    client.stdin.close()
    err = client.stderr.read().decode()
    assert client.wait() == 0, f"restore of {path} failed: {err}"


def make_big_table(server, database: str, rows: int = 300_000) -> None:
    """A table big enough (~35 MB of SQL per 300k rows) that a dump is still running after its first chunk."""
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(database)}")
        cur.execute(f"USE {quote_ident(database)}")
        cur.execute("CREATE TABLE IF NOT EXISTS big (id INT PRIMARY KEY, k INT, c CHAR(64), pad CHAR(40), KEY k (k))")
        cur.execute(f"INSERT INTO big SELECT seq, seq * 7 % 10007, MD5(seq), SHA1(seq) FROM seq_1_to_{rows}")


def object_inventory(server, database: str) -> dict[str, list[str]]:
    from dumpdeck.backend.config import ServerConfig
    from dumpdeck.backend.mysql import connect, object_names

    conn = connect(ServerConfig(name="t", host=None, socket=server.socket, user="root"))
    try:
        return object_names(conn, database)
    finally:
        conn.close()


def tmux(session: str, *args: str, check: bool = True) -> str:
    """tmux on a server of the session's own (`-L session`, no config file): sessions of tests
    running side by side (pytest-xdist) never share a server's options, environment or sizes."""
    return subprocess.run(
        ["tmux", "-L", session, "-f", "/dev/null", *args], capture_output=True, text=True, check=check, timeout=20
    ).stdout


def interrupt(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Ctrl-C (SIGINT) to `proc`, then its output once it exits. If it does not exit in time: SIGABRT,
    which a Python started with PYTHONFAULTHANDLER=1 answers with every thread's stack on stderr, and
    the failure shows where it hung."""
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # the kernel's view of its signals, per thread (pending, blocked, ignored, caught)
        kernel = []
        for task in sorted(Path(f"/proc/{proc.pid}/task").glob("*")):
            with contextlib.suppress(OSError):
                lines = (task / "status").read_text().splitlines()
                kernel.append(
                    f"{task.name}: "
                    + " ".join(ln for ln in lines if ln.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")))
                )
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        signals = "\n".join(kernel)
        raise AssertionError(
            f"no exit {timeout}s after SIGINT; signals:\n{signals}\nstdout:\n{out!s}\nstderr:\n{err!s}"
        ) from None
    return out, err
