"""The hostile corpus: a restore-test harms nothing outside its scratch database.

Every case is a real `mariadb-dump` file of a small sample database with one hostile addition,
written in every codec the catalog reads (rotated over the cases) and, for some, as a legacy file
(no manifest, `<db>_<YYYYmmdd_HHMMSS>.sql.gz|.xz|`). Each one is restore-tested on `same` — the
configured account of the test server is root with ALL PRIVILEGES: the temporary account the load
runs as is what confines it — and in a confined sandbox. After every run the world is compared with
a snapshot taken before the corpus: on both servers every database, table, row checksum, routine,
trigger, event, global variable and account with its password hash; on the host /etc, the test
directory, and /tmp (every path the corpus names, and anything new the servers' OS user owns).
No run may end "passed".

The scope scan is an early warning, not the boundary. So every dump is restore-tested a second
time with the scan blinded (its refusals disabled): the world must still be unchanged, and the test
asserts what stopped the hostile statement — the server refusing the temporary account
("denied"), the client (`--binary-mode`: "Unknown command", or a client word the server then
rejects as SQL; `--local-infile=0`), or nothing needed (the statement was harmless there: DATA
DIRECTORY ignored by a server with symbolic links off, a disabled event, LOAD_FILE without FILE
returns NULL). Two cases hide from the scan on purpose (NO_BACKSLASH_ESCAPES desynchronises it).
A last test loads the file-access cases into a confined sandbox as its *root* account (scan
blinded): the OS user and the sandbox's settings alone stop them.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import lzma
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from dumpdeck.backend import loader as loader_mod
from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import restore, sqlstats
from dumpdeck.backend.config import ServerConfig, load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.mysql import quote_ident
from dumpdeck.backend.sandbox import RESTORE_TEST_PREFIX, SANDBOX_USER, Sandbox

from .helpers import create_sample_database, drop_database

TOKEN = f"{os.getpid()}{int(time.time()) % 100000}"
# Sandboxes' own working trees in /tmp (templates, restore-test sandboxes), which other test runs on this
# host create and remove as the same system user; the corpus never names them, and what it writes carries TOKEN.
OTHER_SANDBOXES = ("dumpdeck-template-", "dumpdeck-rt-sandbox-")
PWN = f"/tmp/dumpdeck-pwned-{TOKEN}"  # every file the corpus tries to write starts so
ETC_PWN = f"/etc/dumpdeck-pwned-{TOKEN}"
VICTIM = "dumpdeck_victim"
SOURCE_DB = "corpus_src"
CODECS = ("zstd", "gzip", "xz", "none")
EXT = {"zstd": ".zst", "gzip": ".gz", "xz": ".xz", "none": ""}

# What stopped a statement in the blinded run (a regex over the evidence of the check that failed).
DENIED = r"denied|you need \(at least one of\)"  # the server refused the temporary account
CLIENT = r"Unknown command|local infile capability|You have an error in your SQL syntax"  # the client
HARMLESS = None  # nothing had to stop it: the statement cannot act outside the scratch database there


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    family: str
    sql: str  # the hostile addition; {victim}, {pwn}, {etc}, {fifo}, {src} are filled in
    where: str = "head"  # head: before the first table | data: before the first data | tail: before the footer
    blind_same: str | None = DENIED
    blind_sandbox: str | None = DENIED
    scan_sees: bool = True  # the L3 scope scan flags it (False: a case made to hide from it)
    fifo: bool = False  # the case names {fifo}: no process may open it


CASES = [
    # comments and executable comments inside keywords
    Case("comment-in-drop", "comments", "DROP/**/TABLE/**/{victim}.t1;"),
    Case("executable-comment-keywords", "comments", "/*!DROP*/ /*!TABLE*/ {victim}.t2;"),
    Case("versioned-comment-truncate", "comments", "/*!50000 TRUNCATE */ TABLE {victim}.t1;"),
    Case("mariadb-comment-set-global", "comments", "/*M!100000 SET GLOBAL max_connections=17 */;"),
    Case("comment-splits-qualified-name", "comments", "INSERT /* x */ INTO /*!{victim}.*/t1 VALUES (7,'x');"),
    # multi-statement forms
    Case(
        "prepare-execute",
        "multi-statement",
        "PREPARE s FROM CONCAT('DROP TABLE ', '{victim}', '.t1');\nEXECUTE s;",
    ),
    Case("execute-immediate", "multi-statement", "EXECUTE IMMEDIATE 'SET GLOBAL max_connections=18';"),
    Case("set-statement-for", "multi-statement", "SET STATEMENT max_statement_time=0 FOR DROP DATABASE {victim};"),
    Case(
        "begin-not-atomic",
        "multi-statement",
        "DELIMITER ;;\nBEGIN NOT ATOMIC DELETE FROM {victim}.t1; END ;;\nDELIMITER ;",
    ),
    Case(
        "procedure-then-call",
        "multi-statement",
        "DELIMITER ;;\nCREATE PROCEDURE evil() BEGIN DROP TABLE {victim}.t2; END ;;\nDELIMITER ;\nCALL evil();",
    ),
    Case(
        "definer-root-procedure",
        "multi-statement",
        "CREATE DEFINER=`root`@`localhost` PROCEDURE evil2() SQL SECURITY DEFINER DELETE FROM {victim}.t1;\n"
        "CALL evil2();",
    ),
    Case(
        "trigger-fires-later",
        "multi-statement",
        "CREATE TRIGGER evil_tr AFTER INSERT ON `odd name` FOR EACH ROW DELETE FROM {victim}.t1;\n"
        "INSERT INTO `odd name` VALUES (5, 'fire');",
        where="tail",
    ),
    Case(
        "event-acts-later",
        "multi-statement",
        "CREATE EVENT evil_ev ON SCHEDULE EVERY 1 SECOND DO DROP TABLE {victim}.t2;",
        blind_same=HARMLESS,  # definer: the temporary account (no privilege outside scratch), dropped with it
        blind_sandbox=HARMLESS,
    ),
    # qualified names
    Case("drop-table", "qualified names", "DROP TABLE {victim}.t1;"),
    Case("truncate", "qualified names", "TRUNCATE {victim}.t1;"),
    Case("multi-table-delete", "qualified names", "DELETE c, v FROM customers c JOIN {victim}.t1 v ON 1=1;", "tail"),
    Case("multi-table-update", "qualified names", "UPDATE customers c, {victim}.t1 v SET v.v = 'pwned';", "tail"),
    Case("rename-out-of-scratch", "qualified names", "RENAME TABLE customers TO {victim}.stolen;", "tail"),
    Case("alter-rename-out", "qualified names", "ALTER TABLE `odd name` RENAME {victim}.stolen2;", "tail"),
    Case("alter-victim", "qualified names", "ALTER TABLE {victim}.t1 ADD COLUMN hacked INT;"),
    Case("drop-database", "qualified names", "DROP DATABASE {victim};"),
    # account and privilege changes
    Case("create-user", "accounts", "CREATE USER evil@'%' IDENTIFIED BY 'pwned';\nGRANT ALL ON *.* TO evil@'%';"),
    Case("alter-backup-password", "accounts", "ALTER USER bk@localhost IDENTIFIED BY 'pwned';"),
    Case("set-password", "accounts", "SET PASSWORD FOR bk@localhost = PASSWORD('pwned');"),
    Case("grant-all", "accounts", "GRANT ALL PRIVILEGES ON *.* TO bk@localhost WITH GRANT OPTION;"),
    # global variables and server-wide statements
    Case("set-global", "globals", "SET GLOBAL max_connections = 19;"),
    Case("set-global-in-a-list", "globals", "SET sql_notes=1, GLOBAL read_only=1;"),
    Case(
        "general-log-to-tmp",
        "globals",
        "SET GLOBAL general_log_file='{pwn}-general.log';\nSET GLOBAL general_log=ON;",
    ),
    Case("shutdown", "globals", "SHUTDOWN;"),
    Case("install-plugin", "globals", "INSTALL SONAME 'server_audit';"),
    # client commands
    Case("shell-escape", "client commands", "\\! touch {pwn}-shell", blind_same=CLIENT, blind_sandbox=CLIENT),
    Case("system", "client commands", "system touch {pwn}-system;", blind_same=CLIENT, blind_sandbox=CLIENT),
    Case("use-short", "client commands", "\\u {victim}\nDROP TABLE t1;", blind_same=CLIENT, blind_sandbox=CLIENT),
    Case("use-long", "client commands", "Use {victim};\nDROP TABLE t1;"),
    Case("connect", "client commands", "CONNECT {victim};\nDROP TABLE t1;", blind_same=CLIENT, blind_sandbox=CLIENT),
    Case(
        "reconnect-short", "client commands", "\\r {victim}\nDELETE FROM t1;", blind_same=CLIENT, blind_sandbox=CLIENT
    ),
    Case("source", "client commands", "source {src};", blind_same=CLIENT, blind_sandbox=CLIENT),
    Case("source-short", "client commands", "\\. {src}", blind_same=CLIENT, blind_sandbox=CLIENT),
    Case("tee", "client commands", "\\T {pwn}-tee", blind_same=CLIENT, blind_sandbox=CLIENT),
    Case(
        "delimiter-trick",
        "client commands",
        "DELIMITER //\n\\u {victim} //\nDROP TABLE t1 //\nDELIMITER ;",
        blind_same=CLIENT,
        blind_sandbox=CLIENT,
    ),
    Case(
        "indented-delimiter",
        "client commands",
        "  delimiter $$\n\\u {victim} $$\n  DELIMITER ;",
        blind_same=CLIENT,
        blind_sandbox=CLIENT,
    ),
    # LOAD DATA LOCAL and other reads of host files
    Case(
        "load-data-local",
        "load data local",
        "LOAD DATA LOCAL INFILE '{fifo}' INTO TABLE `odd name`;",
        "tail",
        blind_same=CLIENT,
        blind_sandbox=CLIENT,
        fifo=True,
    ),
    Case(
        "load-data-local-shadow",
        "load data local",
        "LOAD DATA LOCAL INFILE '/etc/shadow' INTO TABLE customers (name);",
        "tail",
        blind_same=CLIENT,
        blind_sandbox=CLIENT,
    ),
    Case("load-data-server", "load data local", "LOAD DATA INFILE '{fifo}' INTO TABLE `odd name`;", "tail", fifo=True),
    Case(
        "load-file",
        "load data local",
        "INSERT INTO `odd name` VALUES (1, LOAD_FILE('{fifo}'));",
        "tail",
        blind_same=HARMLESS,  # without FILE, LOAD_FILE() is NULL: the fifo proves nothing was opened
        blind_sandbox=HARMLESS,
        fifo=True,
    ),
    # INTO OUTFILE / DUMPFILE
    Case("outfile", "outfile", "SELECT * FROM customers INTO OUTFILE '{pwn}-outfile';", "tail"),
    Case("dumpfile", "outfile", "SELECT 'x' INTO DUMPFILE '{pwn}-dumpfile';"),
    Case(
        "outfile-past-the-first-kilobyte",
        "outfile",
        "SELECT '" + "x" * 1500 + "', '" + "y" * 1500 + "' INTO OUTFILE '{pwn}-late';",
    ),
    Case("dumpfile-into-etc", "outfile", "SELECT 'pwned' INTO DUMPFILE '{etc}';"),
    # DATA DIRECTORY / INDEX DIRECTORY (ignored: symbolic links are off on both servers)
    Case(
        "data-directory",
        "data directory",
        "CREATE TABLE evil_dd (x int) ENGINE=InnoDB DATA DIRECTORY='{pwn}-dd';",
        blind_same=HARMLESS,
        blind_sandbox=HARMLESS,
    ),
    Case(
        "index-directory",
        "data directory",
        "CREATE TABLE evil_id (x int, KEY (x)) ENGINE=MyISAM /*!DATA*/ DIRECTORY='{pwn}-dd2' "
        "INDEX DIRECTORY='{pwn}-id2';",
        blind_same=HARMLESS,
        blind_sandbox=HARMLESS,
    ),
    # made to hide from the scan: it reads \\' as an escape, the client under NO_BACKSLASH_ESCAPES does not
    Case(
        "no-backslash-escapes-hides-a-drop",
        "scan blind spot",
        "SET sql_mode='NO_BACKSLASH_ESCAPES';\nSELECT 'x\\'; DROP TABLE {victim}.t1; -- ';\nSET sql_mode='';",
        scan_sees=False,
    ),
    Case(
        "no-backslash-escapes-hides-a-shell",
        "scan blind spot",
        "SET sql_mode='NO_BACKSLASH_ESCAPES';\nSELECT 'x\\'; \\! touch {pwn}-nbe\n; -- ';\nSET sql_mode='';",
        blind_same=CLIENT,
        blind_sandbox=CLIENT,
        scan_sees=False,
    ),
]
FAMILIES = sorted({c.family for c in CASES})


# --------------------------------------------------------------------------- the world


def _volatile_var(name: str) -> bool:
    return name.startswith("gtid_") or name in {"timestamp", "rand_seed1", "rand_seed2"}


def server_state(connect) -> dict:
    """Every database, table (row checksum), routine, trigger, event, global variable and account."""
    out: dict = {}
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
        out["databases"] = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, CREATE_OPTIONS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema', 'sys') ORDER BY 1, 2"
        )
        tables = cur.fetchall()
        sums = {}
        for schema, name, ttype, _engine, _opts in tables:
            # InnoDB's persistent statistics are rewritten in the background by any table's changes
            if ttype != "BASE TABLE" or (schema == "mysql" and name.startswith("innodb_")):
                continue
            cur.execute(f"CHECKSUM TABLE {quote_ident(schema)}.{quote_ident(name)}")
            sums[f"{schema}.{name}"] = cur.fetchone()[1]
        out["tables"] = [tuple(t) for t in tables]
        out["checksums"] = sums
        cur.execute("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, DEFINER FROM information_schema.ROUTINES ORDER BY 1, 2")
        out["routines"] = cur.fetchall()
        cur.execute("SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS ORDER BY 1, 2")
        out["triggers"] = cur.fetchall()
        cur.execute("SELECT EVENT_SCHEMA, EVENT_NAME, STATUS FROM information_schema.EVENTS ORDER BY 1, 2")
        out["events"] = cur.fetchall()
        cur.execute("SHOW GLOBAL VARIABLES")
        out["globals"] = {k: v for k, v in cur.fetchall() if not _volatile_var(k)}
        cur.execute("SELECT User, Host, Priv FROM mysql.global_priv ORDER BY 1, 2")  # Priv holds the hash
        out["accounts"] = cur.fetchall()
    return out


def _walk(root: Path, descend) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            found[e.path] = (st.st_uid, st.st_size, st.st_mtime_ns, stat.S_IFMT(st.st_mode))
            if stat.S_ISDIR(st.st_mode) and descend(e.path, st):
                stack.append(Path(e.path))
    return found


class Host:
    """/etc entirely, the test directory entirely, and what in /tmp an attack of this corpus could make."""

    def __init__(self, testdir: Path, skip: list[Path]):
        self.testdir = testdir
        self.skip = [str(p) for p in skip]
        self.sandbox_uid = pwd.getpwnam(SANDBOX_USER).pw_uid if os.geteuid() == 0 else os.geteuid()

    def _tmp_descend(self, path: str, st) -> bool:
        if any(path == s or path.startswith(s + "/") for s in self.skip):
            return False
        if Path(path).name.startswith(OTHER_SANDBOXES) and TOKEN not in path:
            return False  # another sandbox's own private tree (e.g. a concurrent test run's template)
        # the servers' user can only write where it owns the directory or everyone may write
        return st.st_uid == self.sandbox_uid or bool(st.st_mode & stat.S_IWOTH)

    def state(self) -> dict:
        tmp = _walk(Path("/tmp"), self._tmp_descend)
        return {
            "etc": _walk(Path("/etc"), lambda p, st: True),
            "testdir": _walk(self.testdir, lambda p, st: True),
            "tmp": {
                p: v
                for p, v in tmp.items()
                if (v[0] == self.sandbox_uid and not Path(p).name.startswith(OTHER_SANDBOXES)) or TOKEN in p
            },
        }


def diff(before: dict, after: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(before) | set(after), key=str):
        a, b = before.get(k, "<absent>"), after.get(k, "<absent>")
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff(a, b, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}: {str(a)[:200]} -> {str(b)[:200]}")
    return out


@contextmanager
def watch_fifo(path: Path):
    """Notice any process opening the fifo for reading (LOAD DATA, LOAD_FILE)."""
    opened: list[bool] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader
                    raise
                stop.wait(0.005)
                continue
            opened.append(True)
            os.close(fd)
            stop.wait(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield opened
    finally:
        stop.set()
        t.join()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(mariadb, tmp_path_factory):
    """The source dump, the victim database, a config, a shared confined sandbox, the baseline."""
    base = tmp_path_factory.mktemp("corpus")
    backups, state = base / "backups", base / "state"
    cfg_path = base / "config.yaml"
    cfg_path.write_text(
        f"servers:\n  main:\n    socket: {mariadb.socket}\n    user: root\n"
        f"backup:\n  dir: {backups}\n  compression: none\n  timeout: 5m\n  stall_timeout: 60s\n"
        f"state_dir: {state}\nrestore_test:\n  parallel: 1\n"
    )
    config = load_config(cfg_path)
    create_sample_database(mariadb, SOURCE_DB, rows=20)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {VICTIM}")
        cur.execute(f"CREATE DATABASE {VICTIM}")
        cur.execute(f"CREATE TABLE {VICTIM}.t1 (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute(f"CREATE TABLE {VICTIM}.t2 (id INT PRIMARY KEY)")
        cur.executemany(f"INSERT INTO {VICTIM}.t1 VALUES (%s, %s)", [(i, f"keep {i}") for i in range(50)])
        cur.executemany(f"INSERT INTO {VICTIM}.t2 VALUES (%s)", [(i,) for i in range(10)])
    src = dump_database(config.server("main"), config.backup, SOURCE_DB).path
    # a world-reachable directory for the fifo and the file `source` would read
    shared = Path(tempfile.mkdtemp(prefix=f"dumpdeck-corpus-{TOKEN}-"))
    os.chmod(shared, 0o755)
    fifo = shared / "secret.fifo"
    os.mkfifo(fifo, 0o666)
    sourced = shared / "evil.sql"
    sourced.write_text(f"DROP TABLE {VICTIM}.t1;\n")
    os.chmod(sourced, 0o644)
    sb = Sandbox.create(confined=True, die_with_parent=True, prefix=RESTORE_TEST_PREFIX).start()
    host = Host(base, skip=[sb.home])
    env = dataclasses.make_dataclass(
        "Corpus", ["config", "src", "sql", "fifo", "sourced", "sandbox", "host", "baseline", "paths"]
    )(config, src, src.read_bytes(), fifo, sourced, sb, host, None, [])
    env.paths = [write_dump(env, case, i) for i, case in enumerate(CASES)]  # before the baseline
    env.baseline = world(env)
    yield env
    sb.destroy()
    shutil.rmtree(shared, ignore_errors=True)
    drop_database(mariadb, VICTIM)
    drop_database(mariadb, SOURCE_DB)


def world(env) -> dict:
    from dumpdeck.backend import mysql

    return {
        "server": server_state(lambda: mysql.connect(env.config.server("main"))),
        "sandbox": server_state(env.sandbox.connect),
        "host": env.host.state(),
    }


def hostile_sql(env, case: Case) -> bytes:
    addition = case.sql.format(victim=VICTIM, pwn=PWN, etc=ETC_PWN, fifo=env.fifo, src=env.sourced).encode()
    sql = env.sql
    marker = {
        "head": b"--\n-- Table structure for table",
        "data": b"--\n-- Dumping data for table",
        "tail": b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;",
    }[case.where]
    i = sql.index(marker)
    return sql[:i] + addition + b"\n" + sql[i:]


def write_dump(env, case: Case, index: int) -> Path:
    """The hostile dump in the codec of its turn; every third one a legacy file without a manifest."""
    sql = hostile_sql(env, case)
    codec = CODECS[index % len(CODECS)]
    legacy = index % 3 == 2
    if legacy and codec == "zstd":
        codec = "gzip"  # the old scripts wrote .sql, .sql.gz or .sql.xz
    data = {
        "zstd": lambda b: subprocess.run(["zstd", "-q", "-c"], input=b, capture_output=True, check=True).stdout,
        "gzip": gzip.compress,
        "xz": lzma.compress,
        "none": lambda b: b,
    }[codec](sql)
    if legacy:
        path = Path(env.config.backup.dir) / f"corpus{index}_20250101_{index:06d}.sql{EXT[codec]}"
        path.write_bytes(data)
        return path
    directory = env.src.parent
    path = directory / f"{SOURCE_DB}-20250101T{index:06d}Z.sql{EXT[codec]}"
    path.write_bytes(data)
    m = manifest_mod.load(env.src)
    m.codec, m.file, m.bytes_raw = codec, path.name, len(sql)
    m.bytes_stored, m.sha256 = len(data), hashlib.sha256(data).hexdigest()
    m.verifications = []
    manifest_mod.save(m, path)
    return path


def blind(monkeypatch) -> None:
    """Disable every refusal of the scope scan: L3 calls the dump clean, the loader sends everything."""
    monkeypatch.setattr(sqlstats.Statement, "outside_scope", property(lambda self: False))
    monkeypatch.setattr(sqlstats, "_INSERT_VALUES_HAZARD", re.compile(rb"(?!)"))


def failing_evidence(report) -> str:
    return " | ".join(f"{c.name}: {c.evidence}" for c in report.checks if not c.passed)


# --------------------------------------------------------------------------- the corpus


def test_the_corpus_covers_every_family_in_every_codec():
    assert len(CASES) >= 30
    assert {
        "comments",
        "multi-statement",
        "qualified names",
        "accounts",
        "globals",
        "client commands",
        "load data local",
        "outfile",
        "data directory",
    } <= set(FAMILIES)
    codecs = {CODECS[i % 4] if not (i % 3 == 2 and CODECS[i % 4] == "zstd") else "gzip" for i in range(len(CASES))}
    assert codecs == set(CODECS) and any(i % 3 == 2 for i in range(len(CASES)))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_hostile_dump_changes_nothing(corpus, index, monkeypatch):
    case = CASES[index]
    path = corpus.paths[index]
    for blinded in (False, True):
        with monkeypatch.context() as mp:
            if blinded:
                blind(mp)
            for target in ("same", "sandbox"):
                with watch_fifo(corpus.fifo) as opened:
                    report = restore.restore_test(path, corpus.config, target, record=False, sandbox=corpus.sandbox)
                changes = diff(corpus.baseline, world(corpus))
                where = f"{case.id} on {target}{' (scan blinded)' if blinded else ''}"
                assert not changes, f"{where} changed the world: {changes[:5]}"
                assert not opened, f"{where}: a process opened {corpus.fifo}"
                assert not any(Path(p).exists() for p in (PWN + "-shell", PWN + "-outfile", ETC_PWN))
                evidence = failing_evidence(report)
                print(f"CORPUS\t{case.family}\t{case.id}\t{target}\t{'blind' if blinded else 'scan'}\t{evidence[:300]}")
                if not blinded:
                    assert not report.passed, f"{where} ended passed"
                    scope = [c for c in report.checks if c.name == "scope"]
                    if case.scan_sees:
                        assert scope and not scope[0].passed and scope[0].level == 3, f"{where}: {evidence}"
                        assert any(c.name == "restore" and "nothing was loaded" in c.evidence for c in report.checks)
                    else:  # the scan called it clean; the load ran and the boundary held
                        assert scope and scope[0].passed
                        assert re.search(DENIED + "|" + CLIENT, evidence), f"{where}: {evidence}"
                else:
                    stopper = case.blind_same if target == "same" else case.blind_sandbox
                    load = [c for c in report.checks if c.name == "load"]
                    assert load, f"{where}: the load did not run: {evidence}"
                    if stopper is not None:
                        assert not report.passed and re.search(stopper, evidence), f"{where}: {evidence}"
                    confinement = next(c for c in report.checks if c.name == "confinement")
                    assert "temporary account 'dumpdeck_rt_" in confinement.evidence
                dropped = [c for c in report.checks if c.name == "scratch dropped"]
                assert not dropped or dropped[0].passed


def test_sandbox_os_confines_even_its_root_account(corpus, monkeypatch):
    """Without the temporary account (the sandbox's root, ALL PRIVILEGES, scan blinded), the unprivileged
    OS user, secure_file_priv, local_infile=0 and symbolic-links=0 alone stop every file access."""
    blind(monkeypatch)
    sb = corpus.sandbox
    root = ServerConfig(name="sandbox", host=None, socket=sb.socket, user="root")
    attempts = {
        "outfile": (f"SELECT 1 INTO OUTFILE '{PWN}-os-outfile';", "secure-file-priv"),
        "dumpfile-etc": (f"SELECT 1 INTO DUMPFILE '{ETC_PWN}-os';", "secure-file-priv"),
        "load-data-server": (f"LOAD DATA INFILE '{corpus.fifo}' INTO TABLE t;", "secure-file-priv"),
        "load-data-local": (f"LOAD DATA LOCAL INFILE '{corpus.fifo}' INTO TABLE t;", "local infile"),
        "load-file": (f"INSERT INTO t VALUES (LOAD_FILE('{corpus.fifo}'));", None),
        "data-directory": (f"CREATE TABLE dd (x int) ENGINE=InnoDB DATA DIRECTORY='{PWN}-os-dd';", None),
        "index-directory": (
            f"CREATE TABLE di (x int, KEY (x)) ENGINE=MyISAM DATA DIRECTORY='{PWN}-os-d' INDEX DIRECTORY='{PWN}-os-i';",
            None,
        ),
        "install-plugin": ("INSTALL SONAME 'server_audit';", "server_audit"),
    }
    scratch = "dumpdeck_rt_osroot"
    for name, (stmt, expected) in attempts.items():
        with sb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {scratch}")
            cur.execute(f"CREATE DATABASE {scratch}")
        sql = f"CREATE TABLE t (v LONGTEXT);\n{stmt}\n".encode()
        loader = loader_mod.Loader(root, scratch, parallel=1, neutralise=True)
        with watch_fifo(corpus.fifo) as opened:
            if expected is None:
                loader.load([sql])  # accepted by the server, and harmless
            else:
                with pytest.raises(loader_mod.LoadError, match=expected):
                    loader.load([sql])
        assert not opened, f"{name}: the fifo was opened"
        with sb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {scratch}")
    changes = diff(corpus.baseline["host"], corpus.host.state())
    assert not changes, changes[:5]
    assert not list(Path("/tmp").glob(f"dumpdeck-pwned-{TOKEN}*")) and not Path(f"{ETC_PWN}-os").exists()
