"""PyMySQL: connections, server facts, the database inventory and privilege checks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pymysql
import pymysql.connections
import pymysql.cursors

from .config import ServerConfig
from .endpoint import Endpoint, resolve
from .errors import ConnectError, PrivilegeError

Connection: TypeAlias = pymysql.connections.Connection

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
TRANSACTIONAL_ENGINES = frozenset({"InnoDB", "XtraDB", "TokuDB", "RocksDB", "NDB", "ndbcluster", "Aria-t"})
# Engines whose tables are not dumped as data in a transaction-consistent way.
NON_TRANSACTIONAL = frozenset({"MyISAM", "Aria", "MEMORY", "CSV", "ARCHIVE", "MRG_MyISAM", "MERGE"})


@dataclass(frozen=True)
class ServerInfo:
    name: str
    version: str
    flavour: str  # "mariadb" | "mysql"
    version_tuple: tuple[int, int, int]
    log_bin: bool
    gtid_mode: bool
    user: str
    hostname: str = ""

    @property
    def label(self) -> str:
        return f"{'MariaDB' if self.flavour == 'mariadb' else 'MySQL'} {self.version.split('-')[0]}"


@dataclass(frozen=True)
class TableInfo:
    name: str
    engine: str | None
    rows: int
    data_bytes: int
    index_bytes: int
    kind: str = "BASE TABLE"  # or VIEW

    @property
    def transactional(self) -> bool:
        return self.engine is None or self.engine not in NON_TRANSACTIONAL


@dataclass(frozen=True)
class DatabaseInfo:
    server: str
    name: str
    bytes: int
    tables: int
    views: int
    engines: tuple[str, ...]
    non_transactional: tuple[str, ...] = ()
    routines: int = 0
    triggers: int = 0
    events: int = 0

    @property
    def consistent(self) -> bool:
        """True when a --single-transaction dump is consistent (no MyISAM/Aria/... tables)."""
        return not self.non_transactional


@dataclass(frozen=True)
class Grants:
    global_privs: frozenset[str]
    db_privs: dict[str, frozenset[str]] = field(default_factory=dict)

    def has(self, priv: str, database: str | None = None) -> bool:
        if "ALL PRIVILEGES" in self.global_privs or priv in self.global_privs:
            return True
        if database is None:
            return False
        for pattern, privs in self.db_privs.items():
            if ("ALL PRIVILEGES" in privs or priv in privs) and _grant_matches(pattern, database):
                return True
        return False


def _grant_matches(pattern: str, database: str) -> bool:
    """A GRANT's database pattern (with \\_ escapes and % / _ wildcards) against a name."""
    regex = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if c == "%" else "." if c == "_" else re.escape(c)
        i += 1
    return re.fullmatch(regex, database) is not None


def connect(
    server: ServerConfig,
    database: str | None = None,
    *,
    timeout: float | None = None,
    read_timeout: float | None = None,
    autocommit: bool = True,
    password: str | None = None,
) -> Connection:
    """A PyMySQL connection, or ConnectError naming the server and what went wrong.

    `password` overrides the server's configured source (a restore-test's temporary account).
    Host, port, socket, user and TLS come from `endpoint.resolve` (config over option file)."""
    ep = resolve(server)
    kwargs: dict[str, Any] = dict(
        user=ep.user,
        password=(server.password() if password is None else password) or "",
        database=database,
        charset="utf8mb4",
        connect_timeout=timeout or server.connect_timeout,
        autocommit=autocommit,
        program_name="dumpdeck",
    )
    if read_timeout:
        kwargs["read_timeout"] = read_timeout
        kwargs["write_timeout"] = read_timeout
    if ep.socket is not None:
        kwargs["unix_socket"] = str(ep.socket)
    else:
        kwargs["host"] = ep.host
        kwargs["port"] = ep.port
    if ep.tls.enabled:
        ssl: dict[str, Any] = {}
        if ep.tls.ca:
            ssl["ca"] = str(ep.tls.ca)
        if ep.tls.cert:
            ssl["cert"] = str(ep.tls.cert)
        if ep.tls.key:
            ssl["key"] = str(ep.tls.key)
        ssl["check_hostname"] = ep.tls.verify_server_cert
        if not ep.tls.verify_server_cert:
            ssl["verify_mode"] = False
        kwargs["ssl"] = ssl
    try:
        return pymysql.connect(**kwargs)
    except pymysql.err.OperationalError as exc:
        raise ConnectError(describe_connect_error(server, exc, ep), connect_cause(exc)) from None
    except pymysql.MySQLError as exc:
        raise ConnectError(f"server {server.name} ({ep.address}): {exc}", connect_cause(exc)) from None


def connect_cause(exc: BaseException) -> str:
    """Why a connection failed, in the words an operator acts on: wrong password, refused, DNS,
    TLS, timeout, no socket, … ('unreachable' when the driver does not say)."""
    import socket
    import ssl

    code = exc.args[0] if isinstance(exc, pymysql.MySQLError) and exc.args else None
    by_code = {
        1045: "wrong password",
        1044: "access denied",
        1049: "unknown database",
        1040: "too many connections",
        1129: "host blocked",
        1130: "host not allowed",
        1251: "auth plugin",
        2026: "TLS",
    }
    if code in by_code:
        return by_code[code]
    original = getattr(exc, "original_exception", None) or exc.__cause__ or exc.__context__
    if isinstance(original, ssl.SSLError):
        return "TLS"
    if isinstance(original, socket.gaierror):
        return "DNS"
    if isinstance(original, ConnectionRefusedError):
        return "refused"
    if isinstance(original, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(original, FileNotFoundError):
        return "no socket"
    if isinstance(original, PermissionError):
        return "socket permission"
    text = str(exc).lower()
    for needle, cause in (
        ("timed out", "timeout"),
        ("connection refused", "refused"),
        ("name or service not known", "DNS"),
        ("temporary failure in name resolution", "DNS"),
        ("ssl", "TLS"),
        ("no such file", "no socket"),
    ):
        if needle in text:
            return cause
    if code in (2006, 2013):
        return "connection lost"
    return "unreachable"


def describe_connect_error(server: ServerConfig, exc: pymysql.MySQLError, ep: Endpoint | None = None) -> str:
    code = exc.args[0] if exc.args else None
    text = exc.args[1] if len(exc.args) > 1 else str(exc)
    where = f"server {server.name} ({ep.address if ep else server.address})"
    if code == 1045:
        user = ep.user if ep else server.effective_user()
        return f"{where}: access denied for user {user!r}: wrong password or unknown user"
    if code == 1049:
        return f"{where}: {text}"
    if code in (2002, 2003, 2006, 2013):
        return f"{where}: cannot connect: {text}"
    return f"{where}: {text}"


def one_row(cur: pymysql.cursors.Cursor) -> tuple[Any, ...]:
    """The one row a query that always returns one row returned."""
    row = cur.fetchone()
    if row is None:
        raise ConnectError("the server returned no row for a query that always returns one")
    return row


def server_info(conn: Connection, server: ServerConfig) -> ServerInfo:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION(), CURRENT_USER(), @@log_bin, @@hostname")
        version, user, log_bin, hostname = one_row(cur)
        gtid = False
        flavour = "mariadb" if "mariadb" in version.lower() else "mysql"
        if flavour == "mysql":
            try:
                cur.execute("SELECT @@gtid_mode")
                gtid = str(one_row(cur)[0]).upper() == "ON"
            except pymysql.MySQLError:
                gtid = False
        else:
            gtid = bool(log_bin)
    nums = [int(x) for x in re.findall(r"\d+", version.split("-")[0])[:3]]
    while len(nums) < 3:
        nums.append(0)
    return ServerInfo(
        name=server.name,
        version=version,
        flavour=flavour,
        version_tuple=tuple(nums),  # type: ignore[arg-type]
        log_bin=bool(int(log_bin or 0)),
        gtid_mode=gtid,
        user=user,
        hostname=hostname,
    )


def list_databases(conn: Connection, server: ServerConfig) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        names = [row[0] for row in cur.fetchall()]
    out = []
    for name in names:
        if not server.include_system and name in SYSTEM_SCHEMAS:
            continue
        if name in server.exclude_databases:
            continue
        out.append(name)
    return sorted(out)


def inventory(conn: Connection, server: ServerConfig, databases: Iterable[str] | None = None) -> list[DatabaseInfo]:
    """Size, table count, engines and object counts of each database, in one pass per query."""
    names = list(databases) if databases is not None else list_databases(conn, server)
    if not names:
        return []
    wanted = set(names)
    agg: dict[str, dict[str, Any]] = {
        n: {
            "bytes": 0,
            "tables": 0,
            "views": 0,
            "engines": set(),
            "nontx": [],
            "routines": 0,
            "triggers": 0,
            "events": 0,
        }
        for n in names
    }
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, "
            "COALESCE(DATA_LENGTH,0)+COALESCE(INDEX_LENGTH,0) FROM information_schema.TABLES"
        )
        for schema, table, ttype, engine, size in cur.fetchall():
            if schema not in wanted:
                continue
            a = agg[schema]
            if ttype == "VIEW":
                a["views"] += 1
                continue
            a["tables"] += 1
            a["bytes"] += int(size or 0)
            if engine:
                a["engines"].add(engine)
                if engine in NON_TRANSACTIONAL:
                    a["nontx"].append(table)
        for sql, key in (
            ("SELECT ROUTINE_SCHEMA, COUNT(*) FROM information_schema.ROUTINES GROUP BY ROUTINE_SCHEMA", "routines"),
            ("SELECT TRIGGER_SCHEMA, COUNT(*) FROM information_schema.TRIGGERS GROUP BY TRIGGER_SCHEMA", "triggers"),
            ("SELECT EVENT_SCHEMA, COUNT(*) FROM information_schema.EVENTS GROUP BY EVENT_SCHEMA", "events"),
        ):
            try:
                cur.execute(sql)
            except pymysql.MySQLError:
                continue
            for schema, count in cur.fetchall():
                if schema in agg:
                    agg[schema][key] = int(count)
    return [
        DatabaseInfo(
            server=server.name,
            name=n,
            bytes=a["bytes"],
            tables=a["tables"],
            views=a["views"],
            engines=tuple(sorted(a["engines"])),
            non_transactional=tuple(sorted(a["nontx"])),
            routines=a["routines"],
            triggers=a["triggers"],
            events=a["events"],
        )
        for n, a in agg.items()
    ]


def database_exists(conn: Connection, database: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
        return cur.fetchone() is not None


def tables(conn: Connection, database: str) -> list[TableInfo]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, ENGINE, COALESCE(TABLE_ROWS,0), COALESCE(DATA_LENGTH,0), "
            "COALESCE(INDEX_LENGTH,0), TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            (database,),
        )
        return [
            TableInfo(name=r[0], engine=r[1], rows=int(r[2]), data_bytes=int(r[3]), index_bytes=int(r[4]), kind=r[5])
            for r in cur.fetchall()
        ]


def object_names(conn: Connection, database: str) -> dict[str, list[str]]:
    """Names of views, procedures, functions, triggers and events of a database."""
    out: dict[str, list[str]] = {"views": [], "procedures": [], "functions": [], "triggers": [], "events": []}
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA=%s", (database,))
        out["views"] = sorted(r[0] for r in cur.fetchall())
        cur.execute(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s", (database,)
        )
        for name, rtype in cur.fetchall():
            out["procedures" if rtype == "PROCEDURE" else "functions"].append(name)
        cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s", (database,))
        out["triggers"] = sorted(r[0] for r in cur.fetchall())
        try:
            cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s", (database,))
            out["events"] = sorted(r[0] for r in cur.fetchall())
        except pymysql.MySQLError:
            pass
    out["procedures"].sort()
    out["functions"].sort()
    return out


_GRANT_RE = re.compile(r"^GRANT (.+?) ON (.+?) TO ", re.IGNORECASE)


def non_ascii_definition(conn: Connection, database: str) -> str | None:
    """Why a table definition of `database` cannot be dumped in the binary character set: the first
    literal outside ASCII the server parses in the connection's character set (a DEFAULT, ENUM or SET
    values, a generated column, a CHECK, a partition's values), or information_schema unreadable;
    None when there is none. Comments and names are not counted: they are stored as UTF-8 whatever the
    connection says. (information_schema holds these as UTF-8: a character outside ASCII is more than
    one byte.)"""

    def differs(column: str) -> str:
        return f"LENGTH({column}) <> CHAR_LENGTH({column})"

    columns = f"{differs('COLUMN_DEFAULT')} OR {differs('COLUMN_TYPE')}"
    select = "SELECT CONCAT(TABLE_NAME, '.', {}) FROM information_schema.{} WHERE {} = %s AND ({}) LIMIT 1"
    # (queries, the first of each group that the server can run counts: COLUMNS is read once, with
    # GENERATION_EXPRESSION where the server has it, MariaDB 10.2+ and MySQL 5.7+; CHECK_CONSTRAINTS:
    # MariaDB 10.2+, MySQL 8.0.16+, older servers do not enforce CHECK)
    groups = [
        [
            select.format("COLUMN_NAME", "COLUMNS", "TABLE_SCHEMA", f"{columns} OR {differs('GENERATION_EXPRESSION')}"),
            select.format("COLUMN_NAME", "COLUMNS", "TABLE_SCHEMA", columns),
        ],
        [select.format("CONSTRAINT_NAME", "CHECK_CONSTRAINTS", "CONSTRAINT_SCHEMA", differs("CHECK_CLAUSE"))],
        [
            select.format(
                "PARTITION_NAME",
                "PARTITIONS",
                "TABLE_SCHEMA",
                f"{differs('PARTITION_DESCRIPTION')} OR {differs('PARTITION_EXPRESSION')}",
            )
        ],
    ]
    with conn.cursor() as cur:
        for n, group in enumerate(groups):
            error = None
            for query in group:
                try:
                    cur.execute(query, (database,))
                except pymysql.MySQLError as exc:
                    error = exc
                    continue
                row = cur.fetchone()
                if row:
                    return f"the definition of {row[0]} holds a literal outside ASCII"
                error = None
                break
            if error is not None and n == 0:
                return f"information_schema.COLUMNS could not be read ({error.args[-1]})"
    return None


def grants(conn: Connection) -> Grants:
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        lines = [row[0] for row in cur.fetchall()]
    global_privs: set[str] = set()
    db_privs: dict[str, set[str]] = {}
    for line in lines:
        m = _GRANT_RE.match(line)
        if not m:
            continue
        privs = {p.strip().upper() for p in _split_privs(m.group(1))}
        target = m.group(2).strip()
        if target == "*.*":
            global_privs |= privs
        elif target.endswith(".*"):
            db = target[:-2].strip()
            if db.startswith("`") and db.endswith("`"):
                db = db[1:-1].replace("``", "`")
            db_privs.setdefault(db, set()).update(privs)
    return Grants(frozenset(global_privs), {k: frozenset(v) for k, v in db_privs.items()})


def _split_privs(text: str) -> list[str]:
    # "SELECT, INSERT (col1, col2), SHOW VIEW" → drop column lists
    return [re.sub(r"\s*\(.*?\)", "", p) for p in re.split(r",(?![^()]*\))", text)]


# The privileges each part of a dump needs.
DUMP_PRIVILEGES = {
    "SELECT": "read table data",
    "SHOW VIEW": "dump view definitions",
    "TRIGGER": "dump triggers",
    "EVENT": "dump events (--events)",
}


@dataclass(frozen=True)
class PrivilegeReport:
    missing: tuple[str, ...]  # privileges the dump cannot do without
    warnings: tuple[str, ...]  # degradations (no coordinates, ...)
    coordinates: bool  # binlog/GTID coordinates can be recorded


def check_dump_privileges(
    conn: Connection, info: ServerInfo, database: str, db: DatabaseInfo | None = None
) -> PrivilegeReport:
    g = grants(conn)
    missing = []
    # Every privilege is required even when the inventory shows no views/triggers/events: an
    # account without TRIGGER or EVENT cannot see them in information_schema either, and the
    # dump would silently lack them.
    for priv, why in DUMP_PRIVILEGES.items():
        if not g.has(priv, database):
            missing.append(f"{priv} (to {why})")
    warnings = []
    coordinates = False
    if info.log_bin:
        monitor = g.has("BINLOG MONITOR") or g.has("REPLICATION CLIENT") or g.has("SUPER")
        reload_ = g.has("RELOAD")
        if monitor and reload_:
            coordinates = True
        else:
            need = [
                p
                for p, ok in (
                    ("RELOAD", reload_),
                    ("BINLOG MONITOR" if info.flavour == "mariadb" else "REPLICATION CLIENT", monitor),
                )
                if not ok
            ]
            warnings.append(f"binary log coordinates will not be recorded: missing {', '.join(need)}")
    return PrivilegeReport(tuple(missing), tuple(warnings), coordinates)


def require_dump_privileges(
    conn: Connection, info: ServerInfo, database: str, db: DatabaseInfo | None = None
) -> PrivilegeReport:
    report = check_dump_privileges(conn, info, database, db)
    if report.missing:
        raise PrivilegeError(
            f"server {info.name}: user {info.user} lacks {', '.join(report.missing)} on database {database!r}"
        )
    return report


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
