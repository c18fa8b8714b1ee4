"""The level-3 scanner's fast INSERT path gives exactly what the old scanner gave (issue 16).

tests/sqlstats_reference.py is the scanner as it was before the fast path. Generated dumps,
hostile on purpose (strings holding `),(`, quotes, backslashes, `;`, newlines, binary bytes,
comment openers; comments, other quotes and backslashes between values; DELIMITER blocks;
cut-off statements), are fed to both, cut into chunks at random places and, for small inputs,
at every offset. The statistics, every item the scanner yields (kind, name, bytes, offsets,
line numbers) and the stripped VALUES text must be identical.
"""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from dumpdeck.backend import sqlstats

from . import sqlstats_reference as ref

# --------------------------------------------------------------------------- generators

_ESC = {0: b"\\0", 10: b"\\n", 13: b"\\r", 92: b"\\\\", 39: b"\\'", 34: b'\\"', 26: b"\\Z"}


def escape(data: bytes) -> bytes:
    """As mysql_real_escape_string (what mysqldump writes between '…')."""
    return b"".join(_ESC.get(c, bytes([c])) for c in data)


# string contents, raw: hostile pieces included (an odd backslash at the end, a lone quote, a raw newline)
_IN_STRING = [
    b"a", b"xyz", b"),(", b"(", b")", b";", b");\n", b"\\'", b"\\\\", b"''", b'"', b'\\"', b"`", b"#",
    b"-- ", b"--", b"/*", b"*/", b"\n", b"\\n", b"\x00", b"\x00\x00", b"\xff\xfe", b"load_file(", b"_",
    b"\\N", b"VALUES", b" ", b",", b"0x", b"\\",  b"'", b"\\\\'", b"\\\\\\'", b"\r\n", b"INSERT INTO `t` VALUES (",
]  # fmt: skip
# values outside strings: plain ones mostly, some that must send the scanner to its slow path
_PLAIN_VALUES = [b"1", b"-42", b"3.25", b"1e5", b"NULL", b"0xDEADBEEF", b"0", b"-0.5", b"+7"]
_ODD_VALUES = [
    b"_binary 'ab'", b"\\N", b'"dq),(str"', b"`bq),(`", b"/* c),( */ 1", b"-- c\n1", b"# c\n1", b"(1,(2))",
    b"CONCAT('a','b')", b"load_file('/etc/passwd')", b"LOAD_FILE ('/x')", b"--1", b"\\", b"/*!50000 1*/",
    b"x'41'", b"'unclosed", b"1;2", b"\x00", b"'a'  'b'", b"''",
]  # fmt: skip


def a_string(rng: random.Random, hostile: bool) -> bytes:
    if not hostile:
        return b"'" + escape(bytes(rng.randrange(256) for _ in range(rng.randrange(12)))) + b"'"
    return b"'" + b"".join(rng.choice(_IN_STRING) for _ in range(rng.randrange(6))) + b"'"


def a_value(rng: random.Random, hostile: float) -> bytes:
    r = rng.random()
    if r < hostile * 0.15:
        return rng.choice(_ODD_VALUES)
    if r < 0.5:
        return a_string(rng, rng.random() < hostile)
    return rng.choice(_PLAIN_VALUES)


def an_insert(rng: random.Random, table: bytes, hostile: float) -> bytes:
    heads = [b"INSERT INTO `" + table + b"` VALUES ", b"INSERT INTO `" + table + b"` VALUES\n"] * 3 + [
        b"INSERT INTO `" + table + b"` (`a`, `b`) VALUES ",
        b"INSERT INTO `" + table + b"` (`a`,`b``c`) VALUES ",
        b"INSERT INTO `a``b` VALUES ",
        b"insert into t values ",
        b"INSERT INTO `other`.`" + table + b"` VALUES ",
        b"INSERT IGNORE INTO `" + table + b"` VALUES ",
        b"INSERT INTO `" + table + b"`  VALUES ",
        b"INSERT INTO `" + table + b"` VALUES\n",
    ]
    head = heads[rng.randrange(len(heads))] if rng.random() < hostile + 0.1 else heads[rng.randrange(2)]
    sep = b",\n" if head.endswith(b"\n") else b","  # MariaDB 11 puts each row on its own line
    rows = []
    for _ in range(rng.randrange(1, 8)):
        rows.append(b"(" + b",".join(a_value(rng, hostile) for _ in range(rng.randrange(1, 5))) + b")")
    seps = [b",", b",", b",", b",\n", b", ", b" , ", b""]
    body = rows[0]
    for row in rows[1:]:
        body += (rng.choice(seps) if rng.random() < hostile else sep) + row
    end = rng.choice([b";\n", b";\n", b" ;\n", b";", b";;\n", b";\r\n"]) if rng.random() < hostile else b";\n"
    return head + body + end


def a_dump(rng: random.Random, tables: int = 3, inserts: int = 4, hostile: float = 0.3) -> bytes:
    out = [
        b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\n--\n-- Host: x    Database: db\n",
        b"/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n",
    ]
    for i in range(tables):
        t = b"t%d" % i
        out.append(b"\n--\n-- Table structure for table `" + t + b"`\n--\n\nDROP TABLE IF EXISTS `" + t + b"`;\n")
        out.append(b"CREATE TABLE `" + t + b"` (\n  `a` int,\n  `b` text COMMENT 'x;''y'\n) ENGINE=InnoDB;\n")
        out.append(b"\n--\n-- Dumping data for table `" + t + b"`\n--\n\nLOCK TABLES `" + t + b"` WRITE;\n")
        out.append(b"/*!40000 ALTER TABLE `" + t + b"` DISABLE KEYS */;\n")
        for _ in range(rng.randrange(inserts + 1)):
            if rng.random() < hostile * 0.2:
                out.append(rng.choice([b"-- a comment ' \n", b"# hash ' \n", b"/* block ' */\n", b"\n\n"]))
            out.append(an_insert(rng, t, hostile))
        out.append(b"/*!40000 ALTER TABLE `" + t + b"` ENABLE KEYS */;\nUNLOCK TABLES;\n")
        if rng.random() < hostile:
            out.append(
                b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `tr"
                + t
                + b"` BEFORE INSERT ON `"
                + t
                + b"` FOR EACH ROW BEGIN INSERT INTO `"
                + t
                + b"` VALUES (1,'a;b'); SET NEW.a = 1; END */;;\nDELIMITER ;\n"
            )
    if rng.random() < hostile:
        out.append(b"DELIMITER $$\nINSERT INTO `t0` VALUES (1,'x');\n$$\nDELIMITER ;\nINSERT INTO `t0` VALUES (2);\n")
    out.append(b"\n-- Dump completed on 2026-11-29 22:00:00\n")
    data = b"".join(out)
    if rng.random() < hostile * 0.3:
        data = data[: rng.randrange(len(data))]  # cut short: an unterminated statement
    return data


# --------------------------------------------------------------------------- comparison


def _cuts(rng: random.Random, data: bytes, pieces: int) -> list[bytes]:
    points = sorted(rng.randrange(len(data) + 1) for _ in range(pieces - 1))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _describe(item) -> tuple:
    names = [f.name for f in dataclasses.fields(item) if f.name != "values"]
    return (type(item).__name__, *(getattr(item, n) for n in names))


def assert_same(data: bytes, chunks: list[bytes]) -> int:
    """Both scanners and both collectors over `chunks` agree; returns how many INSERTs took the fast path."""
    assert b"".join(chunks) == data
    old = ref.SqlScanner()
    new = sqlstats.SqlScanner(stats=True)
    old_items, new_items = [], []
    for c in chunks:
        old_items.extend(old.feed(c))
        new_items.extend(new.feed(c))
    old_items.extend(old.finish())
    new_items.extend(new.finish())
    assert [_describe(i) for i in new_items] == [_describe(i) for i in old_items]
    assert (new.tail, new.line, new.offset, new.delimiter, new.bytes) == (
        old.tail,
        old.line,
        old.offset,
        old.delimiter,
        old.bytes,
    )
    assert (new.unterminated and _describe(new.unterminated)) == (old.unterminated and _describe(old.unterminated))
    fast = 0
    for item in new_items:
        if isinstance(item, sqlstats.Statement) and item.values is not None:
            fast += 1
            stripped = ref._STRINGS.sub(b"", item.text)
            at = re.search(rb"VALUES\s", stripped)
            assert at is not None and stripped[at.end() - 1 :] == item.values
            assert item.hazard == ref.hazard(item.kind, item.text)
    old_col = ref.StatsCollector()
    new_col = sqlstats.StatsCollector(batch=0)
    for c in chunks:
        old_col.feed(c)
        new_col.feed(c)
    assert dataclasses.asdict(new_col.finish()) == dataclasses.asdict(old_col.finish())
    return fast


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("hostile", [0.0, 0.1, 0.4, 0.9])
def test_generated_dumps_give_identical_items_and_stats(hostile):
    rng = random.Random(f"scan-{hostile}")
    fast = inserts = 0
    for _ in range(60):
        data = a_dump(rng, tables=rng.randrange(1, 4), inserts=rng.randrange(1, 6), hostile=hostile)
        inserts += data.count(b"INSERT INTO `")
        fast += assert_same(data, [data])
        for pieces in (2, 3, 8, 40):
            assert_same(data, _cuts(rng, data, pieces))
    # the shortcut was taken (or the test proves nothing): for most INSERTs of a plain dump, some of a hostile one
    assert fast > (inserts * 3 // 4 if hostile == 0 else 10), (fast, inserts)


def test_every_cut_of_a_small_hostile_input():
    rng = random.Random("every-offset")
    seen_fast = 0
    for _ in range(6):
        data = a_dump(rng, tables=1, inserts=3, hostile=0.5)[-900:]
        for k in range(len(data) + 1):
            seen_fast += assert_same(data, [data[:k], data[k:]])
    assert seen_fast


def test_plain_rows_with_every_byte_escaped_take_the_fast_path():
    rng = random.Random("binary")
    rows = b",".join(
        b"(%d,%s,NULL,-1.5,0x%s)"
        % (i, a_string(rng, False), bytes(rng.randrange(256) for _ in range(4)).hex().encode())
        for i in range(3000)
    )
    data = b"CREATE TABLE `t` (a int);\nINSERT INTO `t` VALUES " + rows + b";\nINSERT INTO `t` VALUES (1,'a');\n"
    assert assert_same(data, [data]) == 2
    assert assert_same(data, _cuts(rng, data, 50)) == 2
    assert sqlstats.scan_bytes(data).tables == {"t": 3001}


@pytest.mark.parametrize(
    "values",
    [
        b"(1,'a'),(2,'b\\\\'),(3,'c\\'),(4,'d')",  # an escaped quote: one string
        b"(1,'a\\\\\\'),(2,'b')",
        b"(1,'x;y'),(2,'z')",
        b"(1,'x);\ny'),(2,'z')",  # a raw newline: `);\n` inside a string
        b"(1,'a'),\\N,(2,'b')",
        b"(1,'a') /* ),( */,(2,'b')",
        b"(1,'a'),(2,\"b',\"),(3,'c')",
        b"(1,load_file('/etc/passwd'))",
        b"(1,_binary 'a),(b')",
        b"(1,'a')\x00,(2,'b')",
    ],
)
def test_values_that_need_the_slow_path_give_the_same_answer(values):
    data = b"CREATE TABLE `t` (a int);\nINSERT INTO `t` VALUES " + values + b";\nINSERT INTO `t` VALUES (9);\n"
    for k in range(len(data) + 1):
        assert_same(data, [data[:k], data[k:]])


def test_real_dumps_of_the_sample_database_give_identical_stats(mariadb, config, make_db):
    """mariadb-dump's own output: BLOBs as hex, utf8mb4 and emoji, quotes, backslashes, tabs and newlines in
    text, a view, routines, a trigger, an event; more rows than one INSERT holds."""
    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.loader import decoded_chunks

    from .helpers import make_big_table

    db = make_db("scan_diff_sample", rows=3000)
    make_big_table(mariadb, db, rows=20_000)
    path = dump_database(config.server("main"), config.backup, db).path
    chunks = list(decoded_chunks(path))
    data = b"".join(chunks)
    assert assert_same(data, chunks) >= 2, "the fast path took mariadb-dump's INSERTs"
    assert_same(data, _cuts(random.Random("sample"), data, 30))
    stats = sqlstats.scan_bytes(data)
    assert stats.tables["customers"] == 3000 and stats.tables["big"] == 20_000 and not stats.scope_problems


# --------------------------------------------------------------------------- parts scanned apart (backend.scanpool)


def _reference_stats(data: bytes) -> dict:
    col = ref.StatsCollector()
    col.feed(data)
    return dataclasses.asdict(col.finish())


def _via_parts(data: bytes, cuts: list[int]) -> tuple[dict, int]:
    """What the pool's parent does with its workers' parts, in-process: (stats, parts adopted)."""
    col = sqlstats.StatsCollector(batch=0)
    adopted = 0
    for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
        chunk = data[a:b]
        adopted += col.take_part(lambda chunk=chunk: chunk, sqlstats.scan_part(chunk))
    return dataclasses.asdict(col.finish()), adopted


@pytest.mark.parametrize("hostile", [0.0, 0.1, 0.4, 0.9])
def test_parts_scanned_apart_give_the_stats_of_one_pass(hostile):
    """Cuts anywhere (inside strings, comments, DELIMITER blocks, hostile statements) and at every
    `\\nINSERT INTO ` (where the pool cuts): the ordered merge gives the old scanner's statistics."""
    rng = random.Random(f"parts-{hostile}")
    adopted = rescanned = 0
    for _ in range(60):
        data = a_dump(rng, tables=rng.randrange(1, 4), inserts=rng.randrange(1, 6), hostile=hostile)
        want = _reference_stats(data)
        candidates = [i + 1 for i in range(len(data)) if data.startswith(b"\nINSERT INTO ", i)]
        for cuts in (
            sorted(rng.randrange(len(data) + 1) for _ in range(rng.choice((1, 4, 30, 200)))),
            candidates,
            list(range(7, len(data), 7)),  # tiny parts: most cut statements
        ):
            got, used = _via_parts(data, cuts)
            assert got == want
            adopted += used
            rescanned += len(cuts) + 1 - used
    assert adopted > 100 and rescanned > 100, (adopted, rescanned)  # both ways were taken


def test_every_two_part_cut_of_a_small_hostile_input():
    rng = random.Random("parts-every-offset")
    for _ in range(6):
        data = a_dump(rng, tables=2, inserts=3, hostile=0.6)
        want = _reference_stats(data)
        for k in range(len(data) + 1):
            assert _via_parts(data, [k])[0] == want, k


def test_problems_lines_and_order_survive_the_merge():
    """Order-dependent state: USE before the first table (header) vs after, a late DROP DATABASE, a
    CREATE TABLE inside a view's temporary section, more scope problems than are kept, line numbers,
    a DELIMITER block, and a last statement cut short."""
    head = b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\nUSE `a`;\n"
    body = b""
    for i in range(30):
        body += b"\n--\n-- Table structure for table `t%d`\n--\n\nCREATE TABLE `t%d` (a int);\n" % (i, i)
        body += b"INSERT INTO `t%d` VALUES (1),(2);\nINSERT INTO `t%d` VALUES (3);\n" % (i, i)
        body += b"INSERT INTO `other`.`t%d` VALUES (4);\nUSE `b%d`;\n" % (i, i)
    body += b"\n--\n-- Temporary table structure for view `v`\n--\n\nCREATE TABLE `v` (a int);\n"
    body += b"DELIMITER ;;\nCREATE PROCEDURE `p`() BEGIN SELECT 1; END ;;\nDELIMITER ;\n"
    body += b"INSERT INTO `t1` VALUES (5),(6);\nDROP DATABASE `a`;\nINSERT INTO `t2` VALUES ('cut"
    data = head + body
    want = _reference_stats(data)
    assert len(want["scope_problems"]) == 20 and want["late_drop_database"] and want["unterminated"]
    rng = random.Random("order")
    for pieces in (2, 10, 100, 1000):
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(pieces - 1))
        assert _via_parts(data, cuts)[0] == want
    cuts = [i + 1 for i in range(len(data)) if data.startswith(b"\nINSERT INTO ", i)]
    got, adopted = _via_parts(data, cuts)
    assert got == want and adopted > 50


def test_the_pool_with_tiny_parts_gives_the_stats_of_one_pass(monkeypatch):
    """Real worker processes over shared memory, parts of 300 bytes: every kind of cut, hostile dumps."""
    import io

    from dumpdeck.backend import scanpool

    rng = random.Random("pool")
    dumps = [a_dump(rng, tables=3, inserts=5, hostile=h) for h in (0.0, 0.2, 0.5, 0.9, 0.0, 0.3) * 3]
    # whole dumps one after the other (one cut short would swallow the rest), then one cut short
    data = b"".join(d for d in dumps if _reference_stats(d)["unterminated"] is None) + dumps[3][:-200]
    want = _reference_stats(data)
    assert want["unterminated"] and want["scope_problems"]
    monkeypatch.setattr(scanpool, "START_IN_PARENT", False)  # the workers scan (else the parent may, all of it)
    with scanpool.ScanPool(2, part=300) as pool:
        pieces = [bytes(p) for p in pool.pieces(io.BytesIO(data))]
        got = dataclasses.asdict(pool.finish())
    assert b"".join(pieces) == data
    assert got == want
    assert pool.parts_adopted > 10 and pool.parts_rescanned > 0, (pool.parts_adopted, pool.parts_rescanned)


def test_the_quick_proof_agrees_with_stripping_the_strings():
    """`_plain_rows` (no strings removed) against `_strip_values` + `_count_body` (the stripped text) on
    the values of generated INSERTs, hostile ones included, small and over the text-density sample."""
    rng = random.Random("quick")
    quick = 0
    for i in range(4000):
        hostile = (0.0, 0.2, 0.6, 1.0)[i % 4]
        stmt = an_insert(rng, b"t", hostile)
        if i % 50 == 0:  # a long one: the sample decides between the two ways
            rows = [
                re.split(rb"\sVALUES\s", an_insert(rng, b"t", hostile), maxsplit=1, flags=re.I)[-1].rstrip(b"; \r\n")
                for _ in range(80)
            ]
            stmt = b"INSERT INTO `t` VALUES " + b",".join(rows) + b";\n"
        found = sqlstats._insert_end(stmt, 0)
        if found is None:
            continue
        span = stmt[found[0] - 1 : found[1] + 1]
        got = sqlstats._plain_rows(span)
        values = sqlstats._strip_values(span)
        if got is not None:
            quick += 1
            assert values is not None, span
            assert got == (sqlstats._count_body(values), span.count(b"\n")), span
            assert sqlstats.values_problem(values) is None
    assert quick > 1000


@pytest.mark.parametrize(
    ("values", "quick"),
    [
        (b"(1,'',''),(2,'','x'),(3,'''')", True),  # empty strings, an escaped quote as `''`
        (b"(1,'a''b'),(2,'''')", True),  # two adjacent strings: one once `''` is dropped
        (b"(1)'',(2)", True),  # an empty string outside the groups removes to nothing either way
        (b"'' (1),(2)''", True),
        (b"(1)'s',(2)", False),  # a string outside the groups: refused, the slow way answers
        (b"(1)'0x',(2)", True),  # (its bytes are dropped plain ones: `''` once translated, then nothing)
        (b"(1,'a''('),(2,'b')", False),  # a string holds a parenthesis
        (b"(1,'(''')'),(2)", False),
        (b"(1,''''''),(2,''')''')", False),
        (b"(1,'it\\'s'''),(2,'a\\\\')", True),  # escapes, then an empty string joined to the one before
        (b"(1,'\\'''),(2,'\\\\''')", False),  # `'\''`, `'),(2,'`, `''`, then `')` and `;` in a string
        (b"(1,'')'')'',(2)", False),  # `)` outside the groups
    ],
)
def test_dropping_empty_strings_keeps_the_quick_proof_exact(values, quick):
    """The quick proof drops `''` (empty or adjacent strings) before its grammar: the same answer as
    stripping the strings, and the scanner's items and statistics those of the statement regex."""
    span = b" " + values + b";"
    got = sqlstats._plain_rows(span)
    assert (got is not None) is quick
    stripped = sqlstats._strip_values(span)
    if got is not None:
        assert stripped is not None
        assert got == (sqlstats._count_body(stripped), span.count(b"\n"))
    data = b"CREATE TABLE `t` (a int);\nINSERT INTO `t` VALUES" + span + b"\nINSERT INTO `t` VALUES (9);\n"
    for k in range(len(data) + 1):
        assert_same(data, [data[:k], data[k:]])


_NORM_PER_BYTE = re.compile(  # sqlstats._NORM as it was, with a step per byte of a string
    rb"'(?:[^'\\]|\\.)*+(?:'|\\?\Z)"
    rb'|"(?:[^"\\]|\\.)*+(?:"|\\?\Z)'
    rb"|`(?:[^`]|``)*+(?:`|\Z)"
    rb"|/\*M?!\d*"
    rb"|/\*.*?(?:\*/|\Z)"
    rb"|\*/"
    rb"|--(?=[ \t\r\n]|\Z)[^\n]*+"
    rb"|#[^\n]*+"
    rb"|\\(.)",
    re.S,
)


def test_the_scope_scans_strings_are_the_ones_of_the_per_byte_pattern():
    """`_NORM` reads '…' and "…" unrolled: the same tokens as the pattern with a step per byte that it
    replaces, on short texts dense in quotes, backslashes and comments (cut anywhere: they end anyhow)."""
    rng = random.Random("norm")
    alphabet = [b"'", b'"', b"\\", b"\\\\", b"\\'", b"a", b"\n", b"`", b"/*", b"/*!", b"*/", b"-- ", b"#", b";"]
    for _ in range(30000):
        text = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 16)))
        got = [(m.span(), m.groups()) for m in sqlstats._NORM.finditer(text)]
        assert got == [(m.span(), m.groups()) for m in _NORM_PER_BYTE.finditer(text)], text
