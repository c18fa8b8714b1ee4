"""What a load changes in a dump on its way to the server, statement by statement.

Used by the restore (backend.restore_real) and the restore-test (backend.restore) as the
loader's `transform`; nothing here writes to a server.

- A legacy `--databases` dump of exactly one database: its `CREATE DATABASE`, `USE` and
  `DROP DATABASE` of that one name are dropped, so the dump loads into the target. A dump
  naming several databases is refused before anything is loaded (`database_mapping`).
- Sequences (MariaDB): `SHOW CREATE TABLE` writes a column default `nextval(`db`.`seq`)` with
  the *source* database's name, so a restore under another name would keep using the source's
  sequence. The qualifier of the dump's own database is removed. `LOCK TABLES` around such a
  table's data is dropped: the server refuses the INSERT because the sequence is not locked too.
- `--definer=current`: DEFINER clauses of views, triggers, routines and events are removed, so
  the objects belong to the restoring account.
- `--tables`: only the sections of the chosen tables (triggers included); a view, routine or
  event is kept when every table or view it names is restored, else it is left out and named
  in `warnings`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .errors import MappingError
from .loader import _DEFINER_RE
from .sqlstats import Delimiter, Marker, SqlScanner, SqlStats, Statement

Item = Statement | Marker | Delimiter

_IDENT_WORD = re.compile(rb"`((?:[^`]|``)+)`|\b([A-Za-z_$][A-Za-z0-9_$]*)\b")
_NEXTVAL_QUAL = r"((?:nextval|lastval|setval)\s*\(\s*)`{}`\s*\.\s*"
_OBJECT_KINDS = ("create_view", "create_trigger", "create_procedure", "create_function", "create_event")
_TABLE_SECTIONS = ("table_structure", "table_data", "sequence_structure")


def database_mapping(stats: SqlStats) -> str | None:
    """The one database a legacy `--databases` dump creates/uses (to be mapped to the target), or None
    when the dump names none. MappingError, with the reason, for several databases or other scope
    problems (schema-qualified writes, server-wide statements)."""
    if stats.other_scope:
        raise MappingError(
            f"the dump reaches outside its database ({stats.other_scope} statement(s), e.g. "
            + "; ".join(p for p in stats.scope_problems if "USE" not in p and "DATABASE" not in p)[:300]
            + ")"
        )
    if not stats.databases:
        return None
    if not stats.header_use or stats.late_drop_database:
        names = ", ".join(f"`{d}`" for d in stats.databases[:5])
        raise MappingError(
            f"the dump names {names} outside the header a --databases dump has (CREATE DATABASE and USE before "
            "its first table)"
        )
    if len(stats.databases) > 1:
        names = ", ".join(f"`{d}`" for d in stats.databases[:5])
        raise MappingError(
            f"the dump holds {len(stats.databases)} databases ({names}): a restore loads one database; "
            "dump them one by one, or cut the file at its `USE` lines and restore each part"
        )
    return stats.databases[0]


@dataclass
class Survey:
    """What the objects of a dump refer to (one pass, only needed for --tables)."""

    tables: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    refs: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (kind, name) → identifiers it names


def survey(chunks: Iterator[bytes]) -> Survey:
    sv = Survey()
    scanner = SqlScanner()
    section: Marker | None = None

    def take(item: Item) -> None:
        nonlocal section
        if isinstance(item, Marker):
            section = item
            return
        if not isinstance(item, Statement) or item.name is None:
            return
        if item.kind in ("create_table", "create_sequence") and (section is None or section.kind != "view_temp"):
            if item.name not in sv.tables:
                sv.tables.append(item.name)
        elif item.kind in _OBJECT_KINDS:
            if section is not None and section.kind == "view_temp":
                return
            if item.kind == "create_view" and item.name not in sv.views:
                sv.views.append(item.name)
            sv.refs[(item.kind[7:], item.name)] = identifiers(item.text)

    for chunk in chunks:
        for item in scanner.feed(chunk):
            take(item)
    for item in scanner.finish():
        take(item)
    return sv


def identifiers(text: bytes) -> set[str]:
    out = set()
    for m in _IDENT_WORD.finditer(text):
        raw = m.group(1) if m.group(1) is not None else m.group(2)
        out.add(raw.decode("utf-8", errors="replace").replace("``", "`").lower())
    return out


@dataclass
class Subset:
    """The decision for `--tables`: which objects go with the chosen tables, which are left out."""

    tables: set[str]
    objects: dict[tuple[str, str], bool]  # (kind, name) → included
    warnings: list[str]

    @property
    def included_objects(self) -> list[tuple[str, str]]:
        return [k for k, v in self.objects.items() if v]


def plan_subset(sv: Survey, wanted: list[str]) -> Subset:
    known = set(sv.tables)
    missing = [t for t in wanted if t not in known]
    if missing:
        raise MappingError(
            "--tables: not in the dump: " + ", ".join(f"`{t}`" for t in missing) + f" (it has {len(known)} tables)"
        )
    chosen = set(wanted)
    lower_all = {t.lower(): t for t in [*sv.tables, *sv.views]}
    objects: dict[tuple[str, str], bool] = {}
    warnings: list[str] = []
    # views may name views: settle them until nothing changes
    decided_views: set[str] = set()
    changed = True
    while changed:
        changed = False
        for (kind, name), refs in sv.refs.items():
            if (kind, name) in objects:
                continue
            named = {lower_all[r] for r in refs if r in lower_all and lower_all[r] != name}
            pending = [n for n in named if n in sv.views and (("view", n) not in objects)]
            if pending:
                continue
            ok = all(n in chosen or n in decided_views for n in named)
            if kind == "trigger":
                ok = ok and bool(named & chosen)
            objects[(kind, name)] = ok
            if ok and kind == "view":
                decided_views.add(name)
            changed = True
    for key in sv.refs:
        objects.setdefault(key, False)  # a cycle of views: left out
    left = [f"{k} `{n}`" for (k, n), ok in objects.items() if not ok and k != "trigger"]
    if left:
        warnings.append(
            f"{len(left)} object(s) left out because they name tables that are not restored: " + ", ".join(left[:10])
        )
    return Subset(chosen, objects, warnings)


class Rewriter:
    """The loader's `transform`: one instance per load (it follows the dump's sections)."""

    def __init__(
        self,
        source_db: str | None,
        *,
        mapped_db: str | None = None,
        definer_current: bool = False,
        subset: Subset | None = None,
    ):
        self.source_db = source_db
        self.mapped_db = mapped_db
        self.definer_current = definer_current
        self.subset = subset
        self.skip = False  # inside a section of a table that is not restored
        self.no_locks = False  # inside a section of a table whose default uses a sequence
        self.in_view_temp = False
        self.section_name: str | None = None
        self.changes: dict[str, int] = {}
        names = {n for n in (source_db, mapped_db) if n}
        self._nextval = [
            re.compile(_NEXTVAL_QUAL.format(re.escape(n.replace("`", "``"))).encode(), re.I) for n in names
        ]

    def _count(self, what: str) -> None:
        self.changes[what] = self.changes.get(what, 0) + 1

    def __call__(self, item: Item) -> Item | None:
        if isinstance(item, Marker):
            if not (item.kind == "table_data" and item.name == self.section_name):
                self.no_locks = False
            self.section_name = item.name
            self.in_view_temp = item.kind == "view_temp"
            if self.subset is not None:
                if item.kind in _TABLE_SECTIONS:
                    self.skip = item.name not in self.subset.tables
                elif item.kind in ("view_temp", "view_final"):
                    self.skip = not self.subset.objects.get(("view", item.name or ""), False)
                else:
                    self.skip = False
            return None if self.skip else item
        if self.skip:
            return None
        if not isinstance(item, Statement):
            return item
        kind = item.kind
        if (
            self.mapped_db is not None
            and kind in ("use", "create_database", "drop_database")
            and item.name == self.mapped_db
        ):
            self._count("database statements dropped")
            return None
        if kind == "create_table" and self._nextval and b"val" in item.raw.lower():
            raw = item.raw
            for pat in self._nextval:
                raw = pat.sub(rb"\1", raw)
            if raw != item.raw:
                self._count("sequence defaults")
                item.raw = raw
            if re.search(rb"nextval\s*\(", raw, re.I):
                self.no_locks = True
        if kind in ("lock_tables", "unlock_tables") and self.no_locks:
            return None
        if kind in _OBJECT_KINDS:
            if (
                self.subset is not None
                and not self.in_view_temp
                and not self.subset.objects.get((kind[7:], item.name or ""), False)
            ):
                self._count("objects left out")
                return None
            if self.definer_current:
                raw = _DEFINER_RE.sub(b"", item.raw)
                if raw != item.raw:
                    self._count("definers removed")
                    item.raw = raw
        return item


Transform = Callable[[Item], Item | None]


# --------------------------------------------------------------------------- extract one table


def extract_table(chunks: Iterator[bytes], table: str, write: Callable[[bytes], object]) -> dict[str, int]:
    """Stream one table's DDL and data (its triggers too) out of a dump: the dump's session header, the
    table's sections, the footer that restores the session. Nothing is held beyond one statement.
    MappingError when the dump has no such table."""
    scanner = SqlScanner()
    found = False
    inside = False
    header = True
    delimiter = b";"
    out_bytes = 0
    statements = 0

    held: list[bytes] = []  # the header, written once the table is found

    def emit(raw: bytes) -> None:
        nonlocal out_bytes
        if not found:
            held.append(raw)
            return
        if held:
            for part in held:
                write(part)
                out_bytes += len(part)
            held.clear()
        write(raw)
        out_bytes += len(raw)

    def take(item: Item) -> None:
        nonlocal found, inside, header, delimiter, statements
        if isinstance(item, Marker):
            header = False
            inside = item.kind in _TABLE_SECTIONS and item.name == table
            found = found or inside
            if inside:
                emit(item.raw)
            return
        if isinstance(item, Delimiter):
            delimiter = item.delimiter
            if inside or header:
                emit(item.raw)
            return
        if header and isinstance(item, Statement) and item.kind == "set":
            emit(item.raw)
        elif inside:
            emit(item.raw)
            statements += 1

    for chunk in chunks:
        for item in scanner.feed(chunk):
            take(item)
    for item in scanner.finish():
        take(item)
    if not found:
        raise MappingError(f"table `{table}` is not in the dump")
    if delimiter != b";":
        emit(b"\nDELIMITER ;\n")
    emit(b"\n" + _FOOTER_RESTORE)
    return {"bytes": out_bytes, "statements": statements}


_FOOTER_RESTORE = (
    b"/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
    b"/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n"
    b"/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n"
    b"/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n"
    b"/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;\n"
    b"/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;\n"
    b"/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n"
)
