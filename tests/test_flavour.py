"""MySQL and MariaDB from one config: client flags from the detected tool and server.

MySQL cannot run here (Debian ships MariaDB only): MySQL's paths are driven by recorded `--version`
and `--help` outputs (tests/data/mysql/, see its README); MariaDB's by the live tools, which also
prove the generated option files are accepted (or, for MySQL's dialect, rejected) by a real client.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dumpdeck.backend import flavour
from dumpdeck.backend.config import ServerConfig, TLSConfig
from dumpdeck.backend.credentials import option_file_text
from dumpdeck.backend.dump import parse_coordinates

DATA = Path(__file__).parent / "data" / "mysql"


def recorded(name: str) -> flavour.ToolInfo:
    return flavour.from_outputs(
        f"/usr/bin/{name.split('-', maxsplit=1)[0]}",
        (DATA / f"{name}.version").read_text(),
        (DATA / f"{name}.help").read_text(),
    )


MYSQL80, MYSQL84, MYSQL57 = recorded("mysqldump-8.0"), recorded("mysqldump-8.4"), recorded("mysqldump-5.7")
MARIADB1011 = recorded("mariadb-dump-10.11")


@pytest.mark.parametrize(
    "name,expected",
    [
        ("mysqldump-8.0", ("mysql", (8, 0, 40))),
        ("mysqldump-8.4", ("mysql", (8, 4, 3))),
        ("mysqldump-5.7", ("mysql", (5, 7, 44))),
        ("mariadb-dump-10.11", ("mariadb", (10, 11, 19))),
        ("mariadb-dump-11.4", ("mariadb", (11, 4, 4))),
    ],
)
def test_versions_from_recorded_outputs(name, expected):
    flav, version = flavour.parse_version((DATA / f"{name}.version").read_text())
    assert flav == expected[0]
    assert version[:2] == expected[1][:2]
    if name != "mariadb-dump-10.11":  # the live tool's patch level moves with Debian updates
        assert version == expected[1]


def test_live_tool_is_detected_from_its_own_output():
    tool = shutil.which("mariadb-dump")
    info = flavour.tool_info(tool)
    assert info.flavour == "mariadb" and info.version >= (10, 6, 0)
    live_help = subprocess.run([tool, "--help"], capture_output=True, text=True, check=True).stdout
    options = flavour.parse_options(live_help)
    assert "master-data" in options and "ssl-verify-server-cert" in options and "ssl-mode" not in options


TLS = TLSConfig(ca=Path("/etc/ssl/ca.pem"), verify_server_cert=True)


def _tls_text(tool, tls=TLS):
    server = ServerConfig(name="main", host="db.example.com", port=3306, user="backup", tls=tls)
    return option_file_text(server, password="pw", tool=tool)


@pytest.mark.parametrize("tool", [MYSQL80, MYSQL84, MYSQL57], ids=["8.0", "8.4", "5.7"])
def test_mysql_clients_get_ssl_mode(tool):
    text = _tls_text(tool)
    assert "ssl-mode=VERIFY_IDENTITY" in text
    assert "\nssl\n" not in text and "ssl-verify-server-cert" not in text
    no_verify = _tls_text(tool, TLSConfig(ca=Path("/etc/ssl/ca.pem"), verify_server_cert=False))
    assert "ssl-mode=REQUIRED" in no_verify


def test_mariadb_clients_get_ssl_and_verify_and_really_accept_it(tmp_path):
    tool = shutil.which("mariadb-dump")
    live = flavour.tool_info(tool)
    for tls, flag in ((TLS, "ssl-verify-server-cert"), (TLSConfig(required=True, verify_server_cert=False), None)):
        text = _tls_text(live, tls)
        assert "\nssl\n" in text and "ssl-mode" not in text
        if flag:
            assert f"\n{flag}\n" in text
        else:
            assert "\nskip-ssl-verify-server-cert\n" in text
        cnf = tmp_path / "client.cnf"
        cnf.write_text(text.replace("host=db.example.com\nport=3306\nprotocol=TCP\n", ""))
        proc = subprocess.run(
            [tool, f"--defaults-file={cnf}", f"--socket={tmp_path / 'none.sock'}", "db"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "unknown variable" not in proc.stderr and "unknown option" not in proc.stderr, proc.stderr
        assert "2002" in proc.stderr  # it got as far as connecting
    # the MySQL dialect is what a MariaDB client rejects: the reason the dialect is chosen per tool
    cnf.write_text(_tls_text(MYSQL84).replace("host=db.example.com\nport=3306\nprotocol=TCP\n", ""))
    proc = subprocess.run(
        [tool, f"--defaults-file={cnf}", "db"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "unknown variable 'ssl-mode" in proc.stderr


def test_coordinate_and_gtid_flags_per_tool_and_server():
    mysql8 = ("mysql", (8, 0, 36))
    f = flavour.coordinate_flags(MYSQL80, *mysql8, gtid_mode=True, coordinates=True)
    assert f.options == ("--source-data=2", "--set-gtid-purged=COMMENTED")
    f = flavour.coordinate_flags(MYSQL84, "mysql", (8, 4, 3), gtid_mode=False, coordinates=True)
    assert f.options == ("--source-data=2", "--set-gtid-purged=OFF")
    f = flavour.coordinate_flags(MYSQL57, "mysql", (5, 7, 44), gtid_mode=True, coordinates=True)
    assert f.options == ("--master-data=2", "--set-gtid-purged=COMMENTED")
    # MySQL's mysqldump against MariaDB: no GTID_PURGED for a server that has no such thing
    f = flavour.coordinate_flags(MYSQL80, "mariadb", (10, 11, 6), gtid_mode=True, coordinates=True)
    assert f.options == ("--source-data=2", "--set-gtid-purged=OFF")
    # MariaDB's dump tool: --master-data, never MySQL's GTID flag
    f = flavour.coordinate_flags(MARIADB1011, "mariadb", (10, 11, 6), gtid_mode=True, coordinates=True)
    assert f.options == ("--master-data=2",)
    f = flavour.coordinate_flags(MARIADB1011, "mysql", (8, 0, 36), gtid_mode=False, coordinates=True)
    assert f.options == ("--master-data=2",)
    # ...which cannot read coordinates from MySQL 8.4: said, not failed
    f = flavour.coordinate_flags(MARIADB1011, "mysql", (8, 4, 0), gtid_mode=False, coordinates=True)
    assert f.options == () and "SHOW MASTER STATUS" in f.warnings[0]
    assert flavour.coordinate_flags(MYSQL80, *mysql8, gtid_mode=True, coordinates=False).options == (
        "--set-gtid-purged=COMMENTED",
    )


MYSQL_HEADER = b"""-- MySQL dump 10.13  Distrib 8.0.40, for Linux (x86_64)
--
-- Host: 127.0.0.1    Database: shop
-- ------------------------------------------------------
-- Server version\t8.0.40

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;
SET @@SESSION.SQL_LOG_BIN= 0;

--
-- GTID state at the beginning of the backup
--

/* SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,
4f22ab58-71ca-11e1-9e33-c80aa9429562:1-12'; */

--
-- Position to start replication or point-in-time recovery from
--

-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000042', SOURCE_LOG_POS=157;
"""


def test_gtid_set_and_coordinates_from_a_mysql_header():
    c = parse_coordinates(MYSQL_HEADER)
    assert c["binlog_file"] == "binlog.000042" and c["binlog_position"] == 157
    assert c["gtid"] == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4f22ab58-71ca-11e1-9e33-c80aa9429562:1-12"


def test_dump_flavour_from_the_server_version_line_not_the_tool():
    assert flavour.header_flavour(MYSQL_HEADER) == ("mysql", "8.0.40")
    maria_tool_mysql_server = MYSQL_HEADER.replace(b"-- MySQL dump 10.13  Distrib 8.0.40", b"-- MariaDB dump 10.19")
    assert flavour.header_flavour(maria_tool_mysql_server) == ("mysql", "8.0.40")
    maria = b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n-- Server version\t10.11.6-MariaDB-0+deb12u1\n"
    assert flavour.header_flavour(maria) == ("mariadb", "10.11.6-MariaDB-0+deb12u1")
    assert flavour.needs_mysql_target("mysql", "8.0.40") and not flavour.needs_mysql_target("mariadb", "10.11.6")


def test_the_gtid_position_of_a_real_mariadb_dump_is_in_its_manifest(config, sample_db, mariadb):
    """mariadb-dump --master-data=2 writes the GTID position just before the footer: it reaches the manifest."""
    import re

    from dumpdeck.backend import manifest as manifest_mod
    from dumpdeck.backend.dump import dump_database

    path = dump_database(config.server("main"), config.backup, sample_db).path
    coords = manifest_mod.load(path).coordinates
    assert coords["binlog_file"].startswith("binlog.") and coords["binlog_position"] > 0
    assert re.fullmatch(r"\d+-\d+-\d+(,\d+-\d+-\d+)*", coords["gtid"]), coords
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        now = cur.fetchone()[0]
    assert int(coords["gtid"].split("-")[-1]) <= int(now.split("-")[-1])


def test_a_row_cannot_pose_as_the_gtid_line():
    data = b"INSERT INTO t VALUES ('-- SET GLOBAL gtid_slave_pos=\\'9-9-9\\';');\n-- Dump completed\n"
    assert "gtid" not in parse_coordinates(b"-- MariaDB dump\n", data)
