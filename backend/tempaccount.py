"""Temporary accounts that load a dump with privileges on one database only.

A dump is SQL written by someone else; the checks that read it (L3's scope scan, the loader's
per-statement check) are parsers, and a parser can be wrong. The server's grants cannot: a dump
loaded as an account holding ALL PRIVILEGES on one database and nothing else cannot drop another
database, create an account or write anywhere else, whatever the scanners missed. restore-test
(backend/restore.py, `dumpdeck_rt_…` accounts) and the real restore (backend/restore_real.py,
`dumpdeck_rs_…` accounts) both load that way. The account is created with a random name and
password just before the load, its password reaches the client through a 0600 option file (never
argv, never a log), and it is dropped afterwards, its sessions killed first; leftovers of a killed
process are dropped by `dumpdeck clean`.
"""

from __future__ import annotations

import contextlib
import secrets

import pymysql
import pymysql.cursors

from . import mysql


def grant_db(name: str) -> str:
    """A database name for GRANT: `_` and `%` are wildcards there, so they are escaped."""
    return mysql.quote_ident(name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%"))


def new_password(prefix: str = "Rt-") -> str:
    """Random, and meeting the usual password-validation plugins (upper, lower, digit, special)."""
    return prefix + secrets.token_urlsafe(24) + "-9z"


def own_host(cur: pymysql.cursors.Cursor) -> str:
    """The host part the server sees for this connection: the temporary account connects the same way."""
    cur.execute("SELECT USER()")
    return str(mysql.one_row(cur)[0]).rsplit("@", 1)[-1]


def kill_sessions(cur: pymysql.cursors.Cursor, user: str) -> None:
    """Kill every other session of `user` (a loader still running, a client left behind)."""
    with contextlib.suppress(pymysql.MySQLError):
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER=%s AND ID <> CONNECTION_ID()", (user,))
        for (pid,) in cur.fetchall():
            with contextlib.suppress(pymysql.MySQLError):
                cur.execute(f"KILL {int(pid)}")
