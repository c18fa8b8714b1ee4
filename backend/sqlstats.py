"""A streaming SQL scanner for dump files: statements, section markers, statistics.

It reads a decoded dump in chunks and splits it into top-level statements the
way the `mariadb` client does: quotes ('…', "…", `…`) and their escapes are
respected, `-- ` / `#` / `/* */` comments are skipped, `DELIMITER` lines change
the terminator (triggers and routines), and `/*!NNNNN … */` versioned comments
are treated as the code they are. The heavy lifting is one possessive regular
expression per delimiter, so a statement of 1 MB is matched in C (~200 MB/s on
the reference machine); Python runs once per statement, not per row. For L3
(`SqlScanner(stats=True)`) and the loader (`fast_inserts=True`), mysqldump's extended
INSERTs take a faster path with the same results (`_fast_insert`: bytes.find, then `_plain_rows`: one translate
and a small grammar over what it keeps, no Python object per string; tests/test_scan_differential.py holds the
old scanner as its reference). `scan_part` and `StatsCollector.take_part` let other processes scan later
stretches of the stream speculatively (backend.scanpool), with the same statistics as one pass.

Two consumers share it:
- L3 verification (`SqlStats`): CREATE TABLE/VIEW/PROCEDURE/FUNCTION/TRIGGER/EVENT
  counts, INSERT statements, rows per table (= value tuples, counted with the
  string literals removed so `'a),(b'` is one value), and the scope problems
  (USE, CREATE/DROP DATABASE, schema-qualified writes, server-wide statements).
- the restore-test loader, which cuts the stream at the dump's own section
  markers (`-- Table structure for table …`) and classifies statements before
  sending them anywhere.

The scope scan (`Statement.outside_scope`, `hazard()`) is an early warning, not the
boundary: a restore-test is confined by its temporary account's grants and by the
sandbox's OS user and settings (backend.restore, backend.sandbox). It looks at the
whole statement with comments removed and executable comments unwrapped, inside
routine, trigger and event bodies too, for: client commands (`\\u`, `connect`, …),
dynamic and compound SQL at the top level (PREPARE/EXECUTE, EXECUTE IMMEDIATE, SET
STATEMENT … FOR, BEGIN NOT ATOMIC, CALL), server-wide statements (accounts, privileges,
SET GLOBAL, replication, plugins), file access (LOAD DATA, LOAD_FILE, INTO OUTFILE and
DUMPFILE, DATA and INDEX DIRECTORY) and tables qualified with a database name where a
statement writes (DROP, TRUNCATE, RENAME, ALTER, multi-table DELETE and UPDATE, …).
Known blind spot: it always reads `\\'` as an escape, so a dump that sets
NO_BACKSLASH_ESCAPES can hide a statement inside what it takes for a string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import InitVar, dataclass, field
from functools import cached_property

# --------------------------------------------------------------------------- lexical pieces

_SQ = rb"'[^'\\]*+(?:\\.[^'\\]*+)*+'"
_DQ = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_BQ = rb"`[^`]*+`"
_STRINGS = re.compile(_SQ + rb"|" + _DQ + rb"|" + _BQ, re.S)
_WS = re.compile(rb"[ \t\r\n]*+")
_IDENT = rb"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$\x80-\xff]+)"
_VERSIONED = re.compile(rb"/\*M?!\d*\s?|\*/")

SANDBOX_LINE = b"/*M!999999\\- enable the sandbox mode */"

_MARKER = re.compile(
    rb"--\s+(Table structure for table|Dumping data for table|Temporary table structure for view|"
    rb"Temporary view structure for view|Final view structure for view|Sequence structure for)\s+`((?:[^`]|``)+)`"
    rb"|--\s+Dumping (events|routines) for database\s"
)
MARKER_KINDS = {
    b"Table structure for table": "table_structure",
    b"Dumping data for table": "table_data",
    b"Temporary table structure for view": "view_temp",
    b"Temporary view structure for view": "view_temp",
    b"Final view structure for view": "view_final",
    b"Sequence structure for": "sequence_structure",
    b"events": "events",
    b"routines": "routines",
}


def _statement_re(delimiter: bytes) -> re.Pattern[bytes]:
    """Match one statement up to and including `delimiter`, skipping quoted text and comments."""
    first = delimiter[:1]
    special = set(b"'\"`/-#;") | set(first)
    cls = b"[^" + b"".join(re.escape(bytes([c])) for c in sorted(special)) + b"]"
    singles = []
    for ch in (b"/", b"-", b"#", b";", first):
        if ch in (b"'", b'"', b"`") or ch in singles:
            continue
        if ch == first:
            guard = rb"(?!\*(?![!M]))" if ch == b"/" else b""  # see the lone `/` below
            singles.append(b"(?!" + re.escape(delimiter) + b")" + re.escape(ch) + guard)
        elif ch == b";" and first != b";":
            singles.append(b";")
        elif ch == b"/":
            # a lone `/` is never the start of a plain comment: a buffer that ends inside `/* …` has no
            # statement end yet (else the `;` inside the comment would end it, where the client does not)
            singles.append(rb"/(?!\*(?![!M]))")
        elif ch != b";":
            singles.append(re.escape(ch))
    body = (
        cls
        + b"*+(?:(?:"
        + _SQ
        + b"|"
        + _DQ
        + b"|"
        + _BQ
        + rb"|/\*(?![!M]).*?\*/|--[ \t\r][^\n]*+|--\n|#[^\n]*+|"
        + b"|".join(singles)
        + b")"
        + cls
        + b"*+)*+"
    )
    return re.compile(body + re.escape(delimiter), re.S)


_STMT_CACHE: dict[bytes, re.Pattern[bytes]] = {}


def statement_re(delimiter: bytes) -> re.Pattern[bytes]:
    pat = _STMT_CACHE.get(delimiter)
    if pat is None:
        pat = _STMT_CACHE[delimiter] = _statement_re(delimiter)
    return pat


# --------------------------------------------------------------------------- classification

_Q = rb"(" + _IDENT + rb")(?:\s*\.\s*(" + _IDENT + rb"))?"
_DEFINER = (
    rb"(?:DEFINER\s*=\s*(?:`[^`]*`|'[^']*'|[\w.%-]+|CURRENT_USER(?:\(\))?)(?:\s*@\s*(?:`[^`]*`|'[^']*'|[\w.%-]+))?\s+)?"
)
_CLASSIFY = [
    (
        "insert",
        re.compile(
            rb"(?:INSERT|REPLACE)\s+(?:LOW_PRIORITY\s+|DELAYED\s+|HIGH_PRIORITY\s+)?(?:IGNORE\s+)?(?:INTO\s+)?" + _Q,
            re.I,
        ),
    ),
    (
        "create_table",
        re.compile(rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _Q, re.I),
    ),
    (
        "create_view",
        re.compile(
            rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?"
            + _DEFINER
            + rb"(?:SQL\s+SECURITY\s+\w+\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?"
            + _Q,
            re.I,
        ),
    ),
    (
        "create_routine",
        re.compile(
            rb"CREATE\s+(?:OR\s+REPLACE\s+)?"
            + _DEFINER
            + rb"(?:AGGREGATE\s+)?(PROCEDURE|FUNCTION|TRIGGER|EVENT)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
            + _Q,
            re.I,
        ),
    ),
    (
        "create_sequence",
        re.compile(rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?SEQUENCE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _Q, re.I),
    ),
    ("setval", re.compile(rb"(?:DO|SELECT)\s+SETVAL\s*\(\s*" + _Q, re.I)),
    ("use", re.compile(rb"USE\s+" + _Q, re.I)),
    (
        "create_database",
        re.compile(rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:DATABASE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _Q, re.I),
    ),
    ("drop_database", re.compile(rb"DROP\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+EXISTS\s+)?" + _Q, re.I)),
    ("lock_tables", re.compile(rb"LOCK\s+TABLES?\s+" + _Q, re.I)),
    ("unlock_tables", re.compile(rb"UNLOCK\s+TABLES?", re.I)),
    ("alter_keys", re.compile(rb"ALTER\s+TABLE\s+" + _Q + rb"\s+(?:DISABLE|ENABLE)\s+KEYS", re.I)),
    (
        "write",
        re.compile(
            rb"(?:(?:DROP|ALTER|TRUNCATE|RENAME|OPTIMIZE|ANALYZE|REPAIR)\s+(?:TABLE|VIEW|PROCEDURE|FUNCTION|"
            rb"TRIGGER|EVENT|SEQUENCE)S?|UPDATE(?:\s+LOW_PRIORITY)?(?:\s+IGNORE)?|DELETE(?:\s+LOW_PRIORITY)?"
            rb"(?:\s+QUICK)?(?:\s+IGNORE)?\s+FROM|CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?"
            rb"(?:INDEX|SEQUENCE)\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _IDENT + rb"\s+ON)\s+(?:IF\s+EXISTS\s+)?" + _Q,
            re.I,
        ),
    ),
    (
        "server",
        re.compile(
            rb"(?:GRANT|REVOKE|(?:CREATE|DROP|ALTER|RENAME)\s+(?:USER|ROLE|SERVER)|SET\s+(?:PASSWORD|ROLE|"
            rb"DEFAULT\s+ROLE|GLOBAL\s|@@GLOBAL\.|PERSIST)|INSTALL\s|UNINSTALL\s|CHANGE\s+(?:MASTER|REPLICATION)"
            rb"|RESET\s|PURGE\s|START\s+(?:SLAVE|REPLICA)|STOP\s+(?:SLAVE|REPLICA)|FLUSH\s|SHUTDOWN|KILL\s"
            rb"|LOAD\s+(?:DATA|XML)|SELECT\b.*\bINTO\s+(?:OUT|DUMP)FILE|CREATE\s+(?:OR\s+REPLACE\s+)?"
            rb"(?:DEFINER\s*=\s*\S+\s+)?(?:LOGFILE\s+GROUP|TABLESPACE))\b",
            re.I | re.S,
        ),
    ),
    ("set", re.compile(rb"SET\s", re.I)),
]
_SCOPE_KINDS = {"use", "create_database", "drop_database", "server"}


# --------------------------------------------------------------------------- the scope scan

SCAN_VERSION = 2  # bumped when the scan learns new hazards: older level-3 results are not reused before a load

_NORM = re.compile(
    # (`[^'\\]*+(?:\\.[^'\\]*+)*+` is `(?:[^'\\]|\\.)*+` unrolled: the same bytes, without a step per byte)
    rb"'[^'\\]*+(?:\\.[^'\\]*+)*+(?:'|\\?\Z)"  # a string: its content cannot act (it may be cut inside an escape)
    rb'|"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)'  # a string, or an identifier under ANSI_QUOTES
    rb"|`(?:[^`]|``)*+(?:`|\Z)"  # an identifier
    rb"|/\*M?!\d*"  # an executable comment opens: its content is code
    rb"|/\*.*?(?:\*/|\Z)"  # a comment
    rb"|\*/"  # an executable comment closes
    rb"|--(?=[ \t\r\n]|\Z)[^\n]*+"
    rb"|#[^\n]*+"
    rb"|\\(.)",  # a backslash outside strings: a client command (\N is NULL)
    re.S,
)
_CLIENT_WORDS = (
    rb"USE|CONNECT|SOURCE|SYSTEM|CHARSET|TEE|NOTEE|PAGER|NOPAGER|PRINT|PROMPT|REHASH|STATUS|"
    rb"WARNINGS|NOWARNING|GO|EGO|EXIT|QUIT|HELP|CLEAR|EDIT|RESETCONNECTION|QUERY_ATTRIBUTES"
)
_CLIENT_CMD = re.compile(rb"\s*(" + _CLIENT_WORDS + rb"|\?)(?=\s|;|$)", re.I)
_TOP_ONLY = re.compile(
    rb"\s*(?:(?P<dyn>PREPARE|EXECUTE|DEALLOCATE|SET\s+STATEMENT|CALL)\b"
    rb"|(?P<compound>(?:[\w$]+\s*:\s*)?(?:BEGIN\s+NOT\s+ATOMIC|IF|CASE|LOOP|WHILE|REPEAT|FOR)\b))",
    re.I,
)
# a position where a statement may start, also inside a compound body
_START = rb"(?:^|[;:]|\b(?:BEGIN|THEN|ELSE|DO|ROW|LOOP|REPEAT|ATOMIC|FOR)\b)\s*"
_SERVER_STMT = re.compile(
    _START + rb"(GRANT|REVOKE|(?:CREATE|DROP|ALTER|RENAME)\s+(?:USER|ROLE|SERVER)|SET\s+(?:PASSWORD|ROLE|"
    rb"DEFAULT\s+ROLE)|INSTALL|UNINSTALL|CHANGE\s+(?:MASTER|REPLICATION)|RESET|PURGE|"
    rb"(?:START|STOP)\s+(?:SLAVE|REPLICA|ALL\s+SLAVES|ALL\s+REPLICAS)|FLUSH|SHUTDOWN|KILL|"
    rb"LOAD\s+(?:DATA|XML|INDEX)|BINLOG|(?:CREATE|DROP|ALTER)\s+(?:OR\s+REPLACE\s+)?(?:DATABASE|SCHEMA)|"
    rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:LOGFILE\s+GROUP|TABLESPACE)|USE)\b",
    re.I,
)
_SET_STMT = re.compile(_START + rb"SET\b([^;]*)", re.I)
_SET_GLOBAL = re.compile(rb"\b(?:GLOBAL|PERSIST|PERSIST_ONLY)\b", re.I)
_ANYWHERE = re.compile(
    rb"\bINTO\s+(?:OUT|DUMP)FILE\b|\bLOAD_FILE\s*\(|\b(?:DATA|INDEX)\s+DIRECTORY\b|@@\s*(?:GLOBAL|PERSIST)\s*\.",
    re.I,
)
_TOKEN = re.compile(rb"`[^`]*`|[A-Za-z0-9_$\x80-\xff]+|@@?[\w.$]*|\S")
_WRITE_VERBS = {
    b"INSERT",
    b"REPLACE",
    b"UPDATE",
    b"DELETE",
    b"DROP",
    b"TRUNCATE",
    b"RENAME",
    b"ALTER",
    b"CREATE",
    b"LOCK",
    b"OPTIMIZE",
    b"REPAIR",
    b"ANALYZE",
}
_SUB_START = {b";", b"BEGIN", b"THEN", b"ELSE", b"DO", b"ROW", b"LOOP", b"REPEAT", b"ATOMIC", b"FOR", b":", b"("}
_BODY_MAY_FOLLOW = {b")", b"'", b"DATA", b"SQL", b"DETERMINISTIC", b"DEFINER", b"INVOKER"}
_TABLE_POS = {
    b"INTO",
    b"TABLE",
    b"TABLES",
    b"VIEW",
    b"PROCEDURE",
    b"FUNCTION",
    b"TRIGGER",
    b"EVENT",
    b"SEQUENCE",
    b"JOIN",
    b",",
    b"USING",
    b"TO",
    b"AS",
    b"EXISTS",
    b"IGNORE",
    b"LOW_PRIORITY",
    b"QUICK",
    b"DELAYED",
    b"HIGH_PRIORITY",
    b"RENAME",
} | _WRITE_VERBS
_REGION_END = {
    b"INSERT": {b"VALUES", b"VALUE", b"SELECT", b"SET", b"(", b"ON"},
    b"REPLACE": {b"VALUES", b"VALUE", b"SELECT", b"SET", b"("},
    b"UPDATE": {b"SET"},
    b"DELETE": {b"WHERE", b"ORDER", b"LIMIT"},
    b"CREATE": {b"(", b"LIKE", b"SELECT"},
}


def _normalise(text: bytes) -> tuple[bytes, str | None]:
    """(the code with strings and identifiers neutralised, comments removed, executable comments
    unwrapped; the first client command found outside strings, or None)."""
    found: list[str] = []

    def sub(m: re.Match[bytes]) -> bytes:
        tok = m.group(0)
        c = tok[:1]
        if c == b"'":
            return b"''"
        if c in (b'"', b"`"):
            return b"`i`"
        if c == b"\\":
            ch = m.group(1)
            if ch != b"N" and not found:
                found.append("\\" + ch.decode("latin-1"))
            return b" "
        return b" "

    return _NORM.sub(sub, text), (found[0] if found else None)


def _qualified_write(norm: bytes) -> bool:
    """A table named with a database in a position a statement writes to (also inside bodies)."""
    if b"." not in norm:
        return False  # (a `.` token, which every such name needs, is a `.` byte of `norm`)
    toks = [t.upper() for t in _TOKEN.findall(norm)]
    verb: bytes | None = None  # the write statement whose target list we are in
    at_start = True
    n = len(toks)
    for i, t in enumerate(toks):
        if t == b"(":
            if verb is not None and b"(" in _REGION_END.get(verb, ()):
                verb = None  # the column list / values / routine parameters follow
            at_start = True  # a subquery may start here
            continue
        if t in _SUB_START:
            verb, at_start = None, True
            continue
        if t in _BODY_MAY_FOLLOW:  # a routine's body may start after its parameters or characteristics
            at_start = True
            if verb is None or t != b")":
                continue
        elif at_start and t in _WRITE_VERBS:
            verb, at_start = t, False
        else:
            at_start = False
        if verb is None:
            continue
        if t in _REGION_END.get(verb, ()) or (
            verb == b"CREATE" and t == b"AS" and i + 1 < n and toks[i + 1] in (b"SELECT", b"(", b"WITH")
        ):
            verb = None
            continue
        pos = t in _TABLE_POS or (t == b"FROM" and verb == b"DELETE") or (t == b"ON" and verb == b"CREATE")
        if pos and i + 3 < n and toks[i + 2] == b"." and _is_ident(toks[i + 1]) and _is_ident(toks[i + 3]):
            return True
    return False


def _is_ident(tok: bytes) -> bool:
    return tok[:1] == b"`" or (tok[:1].isalnum() or tok[:1] in (b"_", b"$")) or tok[:1] >= b"\x80"


def _words(b: bytes) -> str:
    return " ".join(b.decode("latin-1").split()).upper()


def hazard(kind: str, text: bytes) -> str | None:
    """Why a statement may act outside its own database, or None. `text` is the whole statement."""
    if kind == "insert":
        text = text[:2048]  # the rest is values; L3 checks them for client commands (see StatsCollector)
    norm, client = _normalise(text)
    if client is not None:
        return f"client command {client}"
    m = _CLIENT_CMD.match(norm)
    if m:
        return f"client command {m.group(1).decode('latin-1').lower()}"
    m = _TOP_ONLY.match(norm)
    if m:
        if m.group("dyn"):
            return f"dynamic SQL or a call ({_words(m.group('dyn'))})"
        return "a compound statement outside a routine"
    m = _SERVER_STMT.search(norm)
    if m:
        return f"server-wide statement ({_words(m.group(1))})"
    for m in _SET_STMT.finditer(norm):
        if _SET_GLOBAL.search(m.group(1)):
            return "sets a global variable"
    m = _ANYWHERE.search(norm)
    if m:
        return f"file or server access ({_words(m.group(0))})"
    if _qualified_write(norm):
        return "writes to a table qualified with a database name"
    return None


_INSERT_VALUES_HAZARD = re.compile(rb"\\[^N]|(?i:load_file)\s*\(")


def values_problem(stripped: bytes) -> str | None:
    """A scope problem in an INSERT's values with their strings removed: a client command, LOAD_FILE."""
    m = _INSERT_VALUES_HAZARD.search(stripped)
    if m is None:
        return None
    if m.group(0).startswith(b"\\"):
        return f"client command {m.group(0).decode('latin-1')}"
    return "file access (LOAD_FILE)"


def unquote(ident: bytes | None) -> str | None:
    if ident is None:
        return None
    text = ident.decode("utf-8", errors="replace")
    if text.startswith("`") and text.endswith("`") and len(text) >= 2:
        return text[1:-1].replace("``", "`")
    return text


def _head(text: bytes) -> bytes:
    """The statement's first bytes with versioned-comment brackets removed and whitespace squeezed."""
    head = _VERSIONED.sub(b" ", text[:1024])
    return head.strip()


@dataclass
class Statement:
    kind: str  # insert, create_table, create_view, create_procedure, …, set, other
    name: str | None  # object name (unquoted) where the kind has one
    schema: str | None  # a schema qualifier, when present (→ writes outside the target)
    raw: bytes  # the bytes as in the file, leading comments/whitespace and delimiter included
    start: int  # offset of `raw` in the decoded stream
    line: int  # line number (1-based) where the statement text starts
    text_offset: int = 0  # where the statement text starts inside `raw`
    # an INSERT taken by the scanner's fast path (SqlScanner(stats=True)): (value tuples, the scope problem
    # of its values or None), exactly what `count_tuples` and `values_problem` give; else None
    found: InitVar[tuple[int, str | None] | None] = None

    def __post_init__(self, found: tuple[int, str | None] | None) -> None:
        self.fast = found

    @cached_property
    def values(self) -> bytes | None:
        """For a fast-path INSERT, the text after `VALUES` with its string literals removed (what
        `_STRINGS.sub` leaves of it); else None. The scan itself no longer builds it (tests compare it)."""
        if self.fast is None:
            return None
        m = _FAST_HEAD.match(self.raw, self.text_offset)
        assert m is not None
        return _strip_values(self.raw[m.end() - 1 :])  # the statement ends with its `;`

    @property
    def text(self) -> bytes:
        return self.raw[self.text_offset :]

    @cached_property
    def hazard(self) -> str | None:
        """Why this statement may act outside its database (see `hazard()`), or None."""
        if self.kind == "insert":  # hazard() reads an INSERT's first 2 KiB: no copy of the rest
            return hazard(self.kind, self.raw[self.text_offset : self.text_offset + 2048])
        return hazard(self.kind, self.text)

    @property
    def outside_scope(self) -> bool:
        return self.kind in _SCOPE_KINDS or self.schema is not None or self.hazard is not None

    def describe(self) -> str:
        return f"line {self.line}: {self.snippet()}"

    def snippet(self) -> str:
        return _head(self.text)[:80].decode("utf-8", errors="replace").replace("\n", " ")


@dataclass
class Marker:
    kind: str  # table_structure, table_data, view_temp, view_final, events, routines
    name: str | None
    raw: bytes
    start: int
    line: int


@dataclass
class Delimiter:
    delimiter: bytes
    raw: bytes
    start: int
    line: int


def classify(text: bytes) -> tuple[str, str | None, str | None]:
    """(kind, name, schema) of one statement's text."""
    head = _head(text)
    for kind, pat in _CLASSIFY:
        m = pat.match(head)
        if not m:
            continue
        if kind in ("unlock_tables", "set", "server"):
            return kind, None, None
        if kind == "create_routine":
            sub = m.group(1).decode().lower()
            first, second = m.group(2), m.group(3)
            kind = f"create_{sub}"
        else:
            first, second = m.group(1), m.group(2)
        if second is not None:
            return kind, unquote(second), unquote(first)
        return kind, unquote(first), None
    return "other", None, None


# --------------------------------------------------------------------------- the INSERT fast path

# An extended INSERT as mysqldump/mariadb-dump write it: the head (MariaDB 11 puts each row on its
# own line: `VALUES\n(…),\n(…)`), then values up to `);\n`.
_FAST_HEAD = re.compile(rb"INSERT INTO `(?:[^`]|``)++`(?: \((?:`(?:[^`]|``)++`(?:, ?)?)++\))? VALUES[ \n]")
_ESCAPE_PAIR = re.compile(rb"\\[\\']")  # the escapes that decide where a '…' string ends
# what values hold outside strings in a plain dump: numbers, NULL, 0x… (--hex-blob), separators
_PLAIN = b"0123456789abcdefABCDEFxX+-.,()NUL \t\r\n"
_NOT_PLAIN = (b'"', b"`", b"#", b"\\", b"\x00", b"/*", b"--")


# The quick proof (`_plain_rows`): a translate keeps, of the values, only what is not a plain value byte
# (quotes, backslashes, parentheses, newlines, dashes and whatever a string holds); a small grammar over
# that residue then says where every string is, without a Python object per string.
_QUICK_DROP = bytes(sorted(set(_PLAIN) - set(b"()\n-")))
_ESCAPES_DROPPED = re.compile(rb"\\[" + re.escape(_QUICK_DROP) + rb"]")  # an escape whose 2nd byte is dropped
_DASH_STRINGS_DASH = re.compile(rb"-(?:'[^']*+')++-")  # `-'…'-`: `--` once the strings are removed
_QUICK_ROWS = re.compile(rb"(?:\((?:'[^']*+'|\n)*+\)|\n)*+;")
_NOT_QUOTE_OR_PAREN = bytes(c for c in range(256) if c not in b"'()")
_QUICK_SAMPLE = 4096  # the quick proof pays per byte kept: text-heavy values go the way of `_strip_values`


def _plain_rows(text: bytes, start: int = 0) -> tuple[int, int] | None:
    """(tuples, newlines) of the values `span` = `text[start:]` (from the blank after VALUES to the `;`;
    `text` may hold the statement's head before, read without a copy) when, outside their
    '…' strings, they hold only plain values and `(…)` groups that nest nowhere; else None (also for
    values that are mostly text: the proof pays per byte it keeps, `_strip_values` per string).

    Why it is exact (the same answer as `_strip_values` and `_count_body`): the translate drops only
    plain bytes other than `(`, `)`, newline and `-`, so every quote and backslash of `span` is in `u`,
    in order, and two bytes adjacent in `span` are adjacent in `u` (with no `\\\\` or `\\'` in `u` there is
    no escape pair to neutralise in `span` either). When no backslash of `span` is followed by a dropped
    byte, each backslash has the same successor in `u` as in `span`, so pairing `\\\\` and `\\'` from the
    left neutralises the same escapes as `_ESCAPE_PAIR` does, and every quote left in `u` is the string
    boundary it is in `span` (a pair taken outside a string leaves NUL bytes outside every string, which
    the grammar refuses). Dropping `''` removes an empty string or joins two adjacent strings: no byte
    moves in or out of a string, so the bytes outside the strings of `q` are those of `u`, in order (and
    the strings of `q` hold the bytes of those of `u`). The grammar then proves that outside the strings
    of `q` there is nothing but `(`…`)` groups, newlines, the dropped plain bytes (and dashes, never two
    adjacent once the strings are removed) and the final `;`: so the stripped values are plain
    (`_strip_values` accepts them) and their parentheses outside strings are `()()…()`. (It refuses a
    string outside the groups; an empty one there, which `q` no longer holds, removes to nothing, as
    `_strip_values` removes it.) In `w` (quotes and parentheses only), dropping `''` again joins or removes
    strings as above: when no quote is left, no string holds a parenthesis, and `_count_body` counts
    every `(`.
    """
    size = len(text) - start
    sample = text[start : start + _QUICK_SAMPLE]
    if size > 2 * _QUICK_SAMPLE and len(sample.translate(None, _QUICK_DROP)) > _QUICK_SAMPLE // 4:
        return None
    u = text.translate(None, _QUICK_DROP)
    if start:
        u = u[len(text[:start].translate(None, _QUICK_DROP)) :]  # (a byte's fate does not depend on its neighbours)
    if b"\\\\" in u or b"\\'" in u:  # (no such pair in `u`: none in `span` either, nothing to neutralise)
        if _ESCAPES_DROPPED.search(text, start) is not None:
            return None
        u = u.replace(b"\\\\", b"\x00\x00").replace(b"\\'", b"\x00\x00")
    if b"-" in u:
        if text.find(b"--", start) >= 0 or _DASH_STRINGS_DASH.search(u) is not None:
            return None
        u = u.translate(None, b"-")
    q = u.replace(b"''", b"")  # (fewer strings for the grammar to step over: most values hold empty ones)
    if _QUICK_ROWS.fullmatch(q) is None:
        return None
    w = q.translate(None, _NOT_QUOTE_OR_PAREN)
    if b"''" in w:
        w = w.replace(b"''", b"")
    if b"'" in w:
        return None  # a string holds a parenthesis
    return w.count(b"("), u.count(b"\n")


def _strip_values(span: bytes) -> bytes | None:
    """The values `span` (from the blank after VALUES to the `;`) with every '…' string removed, or None.

    None whenever the shortcut could disagree with the statement regex: a `;` inside a string at the
    end, or outside the strings anything but plain values (another quote, a comment, a backslash).

    Why it is exact: `\\[\\']` pairs backslashes from the left as the client does inside a
    string, so in `t` every `'` left is a string boundary, unless a pair was taken outside a
    string; the pair's marker bytes (NUL) or a lone backslash would then be outside every string
    of `t`, and that refuses the shortcut. With only plain values outside the strings, the first
    `;` outside them (the end) is the last byte, and `_STRINGS.sub` removes exactly these strings.
    """
    t = _ESCAPE_PAIR.sub(b"\x00\x00", span) if b"\\" in span else span
    parts = t.split(b"'")
    if len(parts) % 2 == 0:
        return None  # the `;` is inside a string
    values = b"".join(parts[::2]) if len(parts) > 1 else t
    rest = values.translate(None, _PLAIN)
    # (`-` is plain, so a `-- ` comment can leave only the `;`: `(1) -- );\n(2);` ends at the second)
    if (rest != b";" or b"--" in values) and (rest.count(b";") != 1 or any(x in values for x in _NOT_PLAIN)):
        return None
    return values


def _insert_end(buf: bytes, cur: int, searched: int = 0) -> tuple[int, int] | None:
    """(end of the head, the `;` of the `);\n` that may end it) of the extended INSERT at `cur`, or None."""
    m = _FAST_HEAD.match(buf, cur)
    if m is None:
        return None
    head_end = m.end()
    e = buf.find(b";", max(head_end, searched))  # memchr: usually the end already
    if e < 0:
        return None
    if buf[e - 1 : e + 2] != b");\n":
        e = buf.find(b");\n", e - 1)  # a `;` in a string first: an extended INSERT ends with `);\n`
        if e < 0:
            return None
        e += 1
    return head_end, e


def _fast_insert(
    buf: bytes, cur: int, searched: int = 0, pos: int | None = None
) -> tuple[int, int, int, str | None, bytes] | None:
    """(end, tuples, newlines, scope problem in the values, `buf[pos:end]`) of the INSERT at `cur` (`pos`: where
    its leading blanks and comments start, default `cur`), found with C-speed bytes operations, or None (the
    caller then runs the statement regex): no `);\n` in the buffer yet, or the
    shortcut could disagree with it (`_strip_values`). `_plain_rows` answers plain values without
    removing the strings; anything else goes through `_strip_values`, `_count_body` and `values_problem`.
    """
    found = _insert_end(buf, cur, searched)
    if found is None:
        return None
    head_end, e = found
    pos = cur if pos is None else pos
    raw = buf[pos : e + 1]  # the statement's bytes: the one copy of them
    start = head_end - 1 - pos  # the values, from the blank after VALUES (a newline there counts with them)
    quick = _plain_rows(raw, start)
    if quick is not None:
        return e + 1, quick[0], quick[1], None, raw
    values = _strip_values(raw[start:])
    if values is None:
        return None
    newlines = raw.count(b"\n", start)
    # no backslash in `values` (refused above): only LOAD_FILE can be a problem there
    return e + 1, _count_body(values), newlines, values_problem(values) if b"_" in values else None, raw


_CUT_REFUSE = (b"\\", b'"', b"`", b"#", b"/*", b"--")


def _fast_cut(buf: bytes, cur: int, searched: int = 0) -> int | None:
    """The end of the INSERT at `cur` when `_fast_insert` would give the same end, found cheaper; else None.

    The loader's shortcut (it needs no values): between the head and the first `);\n` there is one `;`
    (the last byte), no backslash, `"`, backquote, `#`, `/*` or `--`, and an even number of `'`. Then
    every `'` is a string boundary, so the `;` is outside every string and comment: the client ends
    the statement there and nowhere before. Bounded finds and counts, no copy of the values.
    """
    m = _FAST_HEAD.match(buf, cur)
    if m is None:
        return None
    h = m.end()
    e = buf.find(b");\n", max(h, searched))  # `searched`: as in `_fast_insert` (a `;` before it is counted below)
    if e < 0 or buf.count(b";", h, e + 2) != 1 or buf.count(b"'", h, e) % 2:
        return None
    for x in _CUT_REFUSE:
        if buf.find(x, h, e) >= 0:
            return None
    return e + 2


# --------------------------------------------------------------------------- the scanner


class SqlScanner:
    """feed(chunk) → Statement / Marker / Delimiter items in stream order; finish() for the rest.

    The concatenation of every item's `raw` is the input, byte for byte, except
    for trailing whitespace/comments after the last statement (kept in `tail`).
    """

    def __init__(self, fast_inserts: bool = False, stats: bool = False) -> None:
        # the loader: L3's exact INSERT fast path (`_fast_insert`), without Statement.values
        self.fast_inserts = fast_inserts
        self.stats = stats  # L3: the exact INSERT fast path (`_fast_insert`), which also fills Statement.values
        self.buf = b""
        self.offset = 0  # stream offset of buf[0]
        self.line = 1  # line number at buf[0]
        self.delimiter = b";"
        self._stmt = statement_re(b";")
        self._retry_len = 0
        self._searched = 0  # stream offset up to which the pending INSERT has no `);\n` (the fast path)
        self.unterminated: Statement | None = None
        self.tail = b""
        self.bytes = 0

    def feed(self, chunk: bytes) -> Iterator[Statement | Marker | Delimiter]:
        self.bytes += len(chunk)
        self.buf = self.buf + chunk if self.buf else bytes(chunk)
        if len(self.buf) < self._retry_len and self.delimiter not in chunk:
            return iter(())
        return self._scan(final=False)

    def finish(self) -> Iterator[Statement | Marker | Delimiter]:
        return self._scan(final=True)

    def resume(self, rest: bytes, delimiter: bytes) -> None:
        """Go on from another scanner's end: `rest` unconsumed, `delimiter` in force (offset, line and
        bytes are the caller's to set)."""
        self.buf = rest
        self.delimiter = delimiter
        self._stmt = statement_re(delimiter)
        self._retry_len = max(2 * len(rest), 1 << 16) if rest else 0
        self._searched = 0

    def _scan(self, final: bool) -> Iterator[Statement | Marker | Delimiter]:
        buf = self.buf
        n = len(buf)
        pos = 0  # start of the pending item (leading comments are glued to the next statement)
        cur = 0
        line = self.line
        limit: int | None = None
        while True:
            cur = _WS.match(buf, cur).end()  # type: ignore[union-attr]  # [ \t\r\n]*+ always matches
            if cur >= n:
                break
            c = buf[cur]
            if c == 45 and buf.startswith(b"--", cur) and (cur + 2 >= n or buf[cur + 2] in b" \t\r\n"):  # '-- '
                eol = buf.find(b"\n", cur)
                if eol < 0:
                    if not final:
                        break
                    eol = n - 1
                m = _MARKER.match(buf, cur, eol + 1) if buf[cur + 3 : cur + 4] in (b"T", b"D", b"F", b"S") else None
                if m:
                    if m.group(3):
                        kind, name = MARKER_KINDS[m.group(3)], None
                    else:
                        kind, name = MARKER_KINDS[m.group(1)], unquote(b"`" + m.group(2) + b"`")
                    raw = buf[pos : eol + 1]
                    yield Marker(kind, name, raw, self.offset + pos, line + buf.count(b"\n", pos, cur))
                    line += raw.count(b"\n")
                    pos = eol + 1
                cur = eol + 1
                continue
            if c == 35:  # '#'
                eol = buf.find(b"\n", cur)
                if eol < 0:
                    if not final:
                        break
                    eol = n - 1
                cur = eol + 1
                continue
            if (
                c == 47
                and buf.startswith(b"/*", cur)
                and not buf.startswith(b"/*!", cur)
                and (not buf.startswith(b"/*M!", cur) or buf.startswith(SANDBOX_LINE[:13], cur))
            ):
                end = buf.find(b"*/", cur + 2)
                if end < 0:
                    if not final:
                        break
                    end = n - 2
                cur = end + 2
                continue
            if (
                c in (68, 100)
                and (cur == 0 or not buf[buf.rfind(b"\n", 0, cur) + 1 : cur].strip())  # first word of its line
                and buf[cur : cur + 9].upper() == b"DELIMITER"
                and buf[cur + 9 : cur + 10] in (b" ", b"\t")
            ):
                eol = buf.find(b"\n", cur)
                if eol < 0:
                    if not final:
                        break
                    eol = n
                parts = buf[cur + 9 : eol].split()
                if parts:
                    raw = buf[pos : eol + 1]
                    yield Delimiter(parts[0], raw, self.offset + pos, line)
                    line += raw.count(b"\n")
                    self.delimiter = parts[0]
                    self._stmt = statement_re(parts[0])
                    limit = None
                    pos = cur = eol + 1
                    continue
            if (self.stats or self.fast_inserts) and self.delimiter == b";" and buf.startswith(b"INSERT INTO `", cur):
                # one fast path for L3 and the loader, exact by construction: the loader must never end a
                # statement where the client and the L3 scope check do not (a raw newline in a string: `'x);\n`)
                # `searched`: how far an earlier feed looked for this statement's `);\n` (a restart costs a rescan)
                searched = self._searched - self.offset if self._searched > self.offset + cur else 0
                cut = None if self.stats else _fast_cut(buf, cur, searched)
                if cut is not None:
                    kind, name, schema = classify(buf[cur : min(cut, cur + 2048)])
                    raw = buf[pos:cut]
                    yield Statement(
                        kind, name, schema, raw, self.offset + pos, line + buf.count(b"\n", pos, cur), cur - pos
                    )
                    line += raw.count(b"\n")
                    pos = cur = cut
                    continue
                fast = _fast_insert(buf, cur, searched, pos)
                if fast is None and not final:
                    self._searched = self.offset + max(cur, n - 2)
                if fast is not None:
                    end, tuples, newlines, problem, raw = fast
                    kind, name, schema = classify(buf[cur : min(end, cur + 2048)])
                    lead = buf.count(b"\n", pos, cur)  # the head's only possible newline is its last byte
                    yield Statement(
                        kind,
                        name,
                        schema,
                        raw,
                        self.offset + pos,
                        line + lead,
                        cur - pos,
                        (tuples, problem) if self.stats else None,
                    )
                    line += lead + newlines
                    pos = cur = end
                    continue
            if final:
                m = self._stmt.match(buf, cur)
            else:
                # Only try where a delimiter exists: a failed match on a partial statement costs a full scan.
                if limit is None or limit < cur:
                    limit = buf.rfind(self.delimiter)
                if limit < cur:
                    break
                m = self._stmt.match(buf, cur, limit + len(self.delimiter))
            if m is None:
                if not final:
                    break
                raw = buf[pos:]
                text_line = line + buf.count(b"\n", pos, cur)
                kind, name, schema = classify(buf[cur:])
                self.unterminated = Statement(kind, name, schema, raw, self.offset + pos, text_line, cur - pos)
                line += raw.count(b"\n")
                pos = cur = n
                break
            end = m.end()
            raw = buf[pos:end]
            kind, name, schema = classify(buf[cur : min(end, cur + 2048)])
            text_line = line + buf.count(b"\n", pos, cur)
            yield Statement(kind, name, schema, raw, self.offset + pos, text_line, cur - pos)
            line += raw.count(b"\n")
            pos = cur = end
        # keep the unconsumed rest
        if final:
            self.tail = buf[pos:]
            line += self.tail.count(b"\n")
            pos = n
        self.line = line
        self.offset += pos
        self.buf = buf[pos:]
        self._retry_len = max(2 * len(self.buf), 1 << 16) if self.buf else 0


# --------------------------------------------------------------------------- statistics


_VALUES = re.compile(rb"\bVALUES?\b|\bSELECT\b|\bSET\b", re.I)


def count_tuples(insert_text: bytes, stripped: bytes | None = None) -> int:
    """Value tuples of one INSERT statement: `(`…`)` groups at depth 0 after VALUES, strings removed."""
    if stripped is None:
        stripped = _STRINGS.sub(b"", insert_text)
    m = _VALUES.search(stripped)
    if m is None:
        return 0
    word = m.group(0).upper()
    if word == b"SELECT":
        return 0  # INSERT … SELECT: rows unknown from the text
    if word == b"SET":
        return 1
    return _count_body(stripped[m.end() :])


def _count_body(body: bytes) -> int:
    """Tuples in the stripped text after VALUES: `(` at depth 0."""
    opens = body.count(b"(")
    if opens == 1 + body.count(b"),(") + body.count(b"),\n(") + body.count(b"), ("):
        return opens  # the common case: no parentheses inside values
    depth = 0
    tuples = 0
    for m2 in re.finditer(rb"[()]", body):
        if m2.group(0) == b"(":
            if depth == 0:
                tuples += 1
            depth += 1
        else:
            depth -= 1
    return tuples


@dataclass
class SqlStats:
    """What L3 learns from one pass over the SQL."""

    tables: dict[str, int] = field(default_factory=dict)  # table → rows (value tuples); CREATE TABLE order
    inserts: dict[str, int] = field(default_factory=dict)  # table → INSERT statements
    views: list[str] = field(default_factory=list)
    procedures: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)  # CREATE SEQUENCE (MariaDB), not in `tables`
    setvals: dict[str, int] = field(default_factory=dict)  # sequence → the value of its SETVAL
    create_counts: dict[str, int] = field(default_factory=dict)  # statement counts by kind
    scope_problems: list[str] = field(default_factory=list)  # "line N: USE `x`"
    databases: list[str] = field(default_factory=list)  # named by USE / CREATE / DROP DATABASE (a --databases dump)
    header_use: list[str] = field(default_factory=list)  # USE before the first table section (a --databases dump)
    late_drop_database: bool = False  # a DROP DATABASE after the first table section (never from a dump tool)
    other_scope: int = 0  # scope problems other than those: schema-qualified writes, server-wide statements
    unterminated: str | None = None
    statements: int = 0
    bytes: int = 0
    lines: int = 0
    markers: int = 0

    @property
    def insert_statements(self) -> int:
        return sum(self.inserts.values())

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


_SETVAL_VALUE = re.compile(rb"SETVAL\s*\([^,]+,\s*(-?\d+)", re.I)


class StatsCollector:
    """Feeds a SqlScanner and accumulates SqlStats; `feed(chunk)`, then `finish()`."""

    MAX_PROBLEMS = 20

    def __init__(self, batch: int = 4 << 20) -> None:
        self.batch = batch  # decoders hand out pipe-sized pieces: the scanner gets them joined to this size
        self.scanner = SqlScanner(stats=True)
        self.stats = SqlStats()
        self._views: set[str] = set()
        self._objs: dict[str, dict[str, None]] = {
            k: {} for k in ("procedure", "function", "trigger", "event", "view", "sequence")
        }
        self._section: str | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def feed(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= self.batch:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_bytes = [], 0
        for item in self.scanner.feed(data):
            self._take(item)

    def finish(self) -> SqlStats:
        if self._pending:
            self._flush()
        for item in self.scanner.finish():
            self._take(item)
        s = self.stats
        if self.scanner.unterminated is not None:
            st = self.scanner.unterminated
            s.unterminated = (
                f"line {st.line}: statement not terminated by {self.scanner.delimiter.decode()!r} "
                f"({st.kind}{' ' + st.name if st.name else ''}; the SQL is cut short)"
            )
        for view in self._objs["view"]:
            s.tables.pop(view, None)
            s.inserts.pop(view, None)
        s.views = list(self._objs["view"])
        s.procedures = list(self._objs["procedure"])
        s.functions = list(self._objs["function"])
        s.triggers = list(self._objs["trigger"])
        s.events = list(self._objs["event"])
        s.sequences = list(self._objs["sequence"])
        for seq in s.sequences:
            s.tables.pop(seq, None)
        s.bytes = self.scanner.bytes
        s.lines = self.scanner.line
        return s

    def _take(self, item: Statement | Marker | Delimiter) -> None:
        seen = see(item)
        if seen is not None:
            self.apply(seen)

    def apply(self, seen: Seen, line_offset: int = 0) -> None:
        """Count one item (or a run of INSERTs) in stream order; `line_offset` is added to its line."""
        s = self.stats
        kind = seen.kind
        if kind == "marker":
            s.markers += 1
            self._section = seen.name
            return
        s.statements += seen.statements
        if kind == "insert":
            name = seen.name or "?"
            s.inserts[name] = s.inserts.get(name, 0) + seen.statements
            s.tables[name] = s.tables.get(name, 0) + seen.tuples
        elif kind == "setval" and seen.name is not None:
            if seen.setval is not None:
                s.setvals[seen.name] = seen.setval
        elif kind.startswith("create_"):
            s.create_counts[kind] = s.create_counts.get(kind, 0) + 1
            if kind == "create_table":
                if self._section != "view_temp" and seen.name is not None:
                    s.tables.setdefault(seen.name, 0)
            elif kind[7:] in self._objs and seen.name is not None:
                self._objs[kind[7:]][seen.name] = None
        if kind in ("use", "create_database", "drop_database"):
            if seen.name is not None and seen.name not in s.databases:
                s.databases.append(seen.name)
            if kind == "use" and not s.markers and seen.name is not None:
                s.header_use.append(seen.name)
            if kind == "drop_database" and s.markers:
                s.late_drop_database = True
        elif seen.problem is not None:
            s.other_scope += 1
        if seen.problem is not None and len(s.scope_problems) < self.MAX_PROBLEMS:
            s.scope_problems.append(f"line {seen.line + line_offset}: {seen.problem}")

    def between_statements(self) -> bool:
        """The scanner stands where a fresh one would start: nothing but blanks pending, delimiter `;`.
        (A part scanned from its first byte by `scan_part` then yields what this scanner would.)"""
        sc = self.scanner
        return not self._pending and sc.delimiter == b";" and not sc.buf.strip(b" \t\r\n")

    def take_part(self, data: Callable[[], bytes], part: Part | None) -> bool:
        """The next stretch of the stream, scanned elsewhere by `scan_part` as if it began the stream:
        used when this scanner stands where a fresh one would start (`between_statements`), else the bytes
        (`data()`) are scanned here. The statistics come out as a scan of the whole stream would give
        them. True when `part` was used. (The collector must have been made with `batch=0`.)"""
        if part is not None and self.between_statements():
            self.adopt(part)
            return True
        self.feed(data())
        return False

    def adopt(self, part: Part) -> None:
        """Take `part` (the bytes that follow, scanned from their first byte by `scan_part`) as if this
        collector had scanned it; only when `between_statements()`."""
        sc = self.scanner
        line_offset = sc.line + sc.buf.count(b"\n") - 1  # the part's line 1 is this line + 1
        for seen in part.seen:
            self.apply(seen, line_offset)
        sc.offset += len(sc.buf) + part.size - len(part.rest)
        sc.line = part.line + line_offset
        sc.bytes += part.size
        sc.resume(part.rest, part.delimiter)


@dataclass(slots=True)
class Seen:
    """What StatsCollector keeps of one item (`see`), or of a run of INSERTs into one table with no
    scope problem: the order-free work done, the order-dependent part left to `StatsCollector.apply`."""

    kind: str  # a statement kind, or "marker" (then `name` is the marker's kind)
    name: str | None
    line: int = 0
    statements: int = 1
    tuples: int = 0
    setval: int | None = None
    problem: str | None = None  # the scope problem, without its "line N: "


_SCOPE_WHAT = {
    "use": "USE switches to another database",
    "create_database": "CREATE DATABASE",
    "drop_database": "DROP DATABASE",
    "server": "server-wide statement",
}


def see(item: Statement | Marker | Delimiter) -> Seen | None:
    """The order-free part of counting one item (None for a DELIMITER line)."""
    if isinstance(item, Marker):
        return Seen("marker", item.kind)
    if not isinstance(item, Statement):
        return None
    kind = item.kind
    problem: str | None = None
    seen = Seen(kind, item.name, item.line)
    if kind == "insert":
        if item.fast is not None:  # the fast path counted them
            seen.tuples, problem = item.fast
        else:
            stripped = _STRINGS.sub(b"", item.text)
            seen.tuples = count_tuples(item.text, stripped)
            problem = values_problem(stripped)  # past the head that `hazard()` reads
    elif kind == "setval" and item.name is not None:
        sm = _SETVAL_VALUE.search(item.text)
        if sm:
            seen.setval = int(sm.group(1))
    if item.outside_scope or problem:
        if kind in _SCOPE_WHAT:
            what = _SCOPE_WHAT[kind]
        elif item.schema is not None:
            what = f"writes to database `{item.schema}`"
        else:
            what = item.hazard or problem or "outside the database"
        seen.problem = f"{item.snippet()} ({what})"
    return seen


@dataclass
class Part:
    """A stretch of SQL scanned from its first byte by a fresh scanner (`scan_part`): what it saw, in order
    (runs of plain INSERTs into one table merged), and where the scanner stopped."""

    seen: list[Seen]
    rest: bytes  # the bytes not consumed at the end (a statement that goes on, blanks, comments)
    delimiter: bytes
    line: int  # the scanner's line at `rest` (line 1: the part's first)
    size: int


def scan_part(data: bytes) -> Part:
    """Scan `data` as if it began the stream (see `StatsCollector.between_statements`)."""
    sc = SqlScanner(stats=True)
    out: list[Seen] = []
    last: Seen | None = None
    for item in sc.feed(data):
        seen = see(item)
        if seen is None:
            continue
        if seen.kind == "insert" and seen.problem is None:
            if last is not None and last.name == seen.name:
                last.statements += 1
                last.tuples += seen.tuples
                continue
            last = seen
        else:
            last = None
        out.append(seen)
    return Part(out, sc.buf, sc.delimiter, sc.line, len(data))


def scan_bytes(data: bytes, chunk: int = 1 << 20) -> SqlStats:
    """Statistics of an in-memory SQL text (tests, small files)."""
    col = StatsCollector(batch=0)  # every chunk reaches the scanner as it is (tests cut at odd places)
    for i in range(0, len(data), chunk):
        col.feed(data[i : i + chunk])
    return col.finish()
