"""MySQL option files, read as the client reads them, move the inventory connection AND the dump tool.

A SECOND private mariadbd on another port holds a database the session server does not have
(`only_on_second`), so a setting that was ignored would send the backup to the wrong server — and
the test would see it: the database list, the dump's content and the manifest name the server that
was really reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dumpdeck.backend import optionfile
from dumpdeck.backend.config import load_config
from dumpdeck.backend.endpoint import resolve
from dumpdeck.backend.errors import ConfigError
from dumpdeck.backend.mysql import connect, list_databases
from dumpdeck.backend.sandbox import Sandbox, free_port

PASSWORD = 'S3c#ret "two"'  # a '#' (an inline comment would cut it) and double quotes (needs single quoting)


@pytest.fixture(scope="module")
def second(tmp_path_factory):
    """Another private mariadbd on another TCP port, with a database only it has and an account bk2."""
    sb = Sandbox.create(Path(tmp_path_factory.mktemp("second")) / "srv", port=free_port())
    sb.start()
    with sb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE only_on_second")
        cur.execute("CREATE TABLE only_on_second.marker (id INT PRIMARY KEY, what VARCHAR(40))")
        cur.execute("INSERT INTO only_on_second.marker VALUES (1, 'the second server')")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER 'bk2'@'{host}' IDENTIFIED BY %s", (PASSWORD,))
            cur.execute(
                f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, BINLOG MONITOR, PROCESS "
                f"ON *.* TO 'bk2'@'{host}'"
            )
    yield sb
    sb.destroy()


def _config(tmp_path: Path, server_yaml: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "servers:\n  main:\n"
        + textwrap.indent(textwrap.dedent(server_yaml), "    ")
        + f"backup:\n  dir: {tmp_path / 'backups'}\n  timeout: 5m\nstate_dir: {tmp_path / 'state'}\n"
    )
    return path


def _dumpdeck(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _option_file(tmp_path: Path, second: Sandbox) -> Path:
    """Host and port in [client], the password in an !include'd file, behind an inline comment."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "pw.cnf").write_text(f"[client]\npassword = '{PASSWORD}'   # quoted; this is a comment\n")
    opt = tmp_path / "backup.cnf"
    opt.write_text(
        textwrap.dedent(f"""\
        # the backup account on the second server
        [client]
        user = bk2            # inline comment
        host = 127.0.0.1
        port = {second.port}
        !includedir {tmp_path / "conf.d"}

        [mysql]
        port = 1              # a group the dump tool does not read
        """)
    )
    opt.chmod(0o600)
    return opt


def test_host_port_and_password_from_the_option_file_reach_the_server_it_names(tmp_path, mariadb, second):
    opt = _option_file(tmp_path, second)
    cfg = _config(tmp_path, f"option_file: {opt}\n")
    config = load_config(cfg)
    ep = resolve(config.servers["main"])
    assert (ep.host, ep.port, ep.user) == ("127.0.0.1", second.port, "bk2")
    assert ep.sources["port"] == f"option file {opt}" and ep.sources["host"] == f"option file {opt}"

    # the inventory connection went there...
    conn = connect(config.servers["main"])
    try:
        names = list_databases(conn, config.servers["main"])
    finally:
        conn.close()
    assert "only_on_second" in names

    # ...and so did the dump tool
    proc = _dumpdeck("backup", "only_on_second", "--json", config=cfg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dumps = sorted((tmp_path / "backups" / "main" / "only_on_second").glob("*.sql.zst"))
    assert len(dumps) == 1
    assert (
        b"the second server" in subprocess.run(["zstd", "-dc", str(dumps[0])], capture_output=True, check=True).stdout
    )
    assert PASSWORD not in proc.stdout + proc.stderr


def test_socket_from_the_option_file(tmp_path, mariadb, second):
    opt = tmp_path / "sock.cnf"
    opt.write_text(f"[client-server]\nsocket = {second.socket}\n[client]\nuser=root\n")
    cfg = _config(tmp_path, f"option_file: {opt}\n")
    config = load_config(cfg)
    ep = resolve(config.servers["main"])
    assert ep.socket == second.socket and ep.host is None
    proc = _dumpdeck("backup", "only_on_second", config=cfg)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "backups" / "main" / "only_on_second").glob("*.sql.zst"))) == 1


def test_config_wins_over_the_option_file_and_config_check_says_where_each_value_came_from(tmp_path, mariadb, second):
    """The file says the second server's port; the config names the session server's: the config wins."""
    opt = tmp_path / "backup.cnf"
    opt.write_text(
        f"[client]\nuser = bk\npassword = S3cret-Pw!x9 # the session server's bk account\nport = {second.port}\n"
    )
    cfg = _config(tmp_path, f"host: 127.0.0.1\nport: {mariadb.port}\noption_file: {opt}\n")
    config = load_config(cfg)
    ep = resolve(config.servers["main"])
    assert ep.port == mariadb.port and ep.sources["port"] == "config"
    assert ep.user == "bk" and ep.sources["user"] == f"option file {opt}"

    proc = _dumpdeck("config", "check", "--json", config=cfg)
    assert proc.returncode == 0, proc.stderr
    conns = json.loads(proc.stdout)["connections"]["main"]
    assert conns["port"] == {"value": mariadb.port, "from": "config"}
    assert conns["host"] == {"value": "127.0.0.1", "from": "config"}
    assert conns["user"] == {"value": "bk", "from": f"option file {opt}"}
    text = _dumpdeck("config", "check", config=cfg).stdout
    assert f"port: {mariadb.port}   # from config" in text
    assert f'user: "bk"   # from option file {opt}' in text
    assert "S3cret-Pw!x9" not in text

    # the session server has no only_on_second: the dump of it fails there, naming the config's server
    bad = _dumpdeck("backup", "only_on_second", config=cfg)
    assert bad.returncode != 0
    assert "does not exist" in bad.stderr
    assert not list((tmp_path / "backups").rglob("*.sql.zst"))


def test_my_cnf_is_read_when_a_server_names_no_credentials(tmp_path, mariadb, second):
    home = Path.home()  # the isolated HOME of this test
    (home / ".my.cnf").write_text(f"[client]\nuser=bk2\npassword='{PASSWORD}'\nhost=127.0.0.1\nport={second.port}\n")
    cfg = _config(tmp_path, "connect_timeout: 10s\n")
    config = load_config(cfg)
    server = config.servers["main"]
    assert server.my_cnf
    conn = connect(server)
    try:
        assert "only_on_second" in list_databases(conn, server)
    finally:
        conn.close()
    # naming a user (the demo's `user: root` on a passwordless sandbox) turns ~/.my.cnf off...
    assert not load_config(_config(tmp_path, "user: root\n")).servers["main"].my_cnf
    # ...and so does naming a password source: the defaults (127.0.0.1:3306, root) apply
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    pw.chmod(0o600)
    named = load_config(_config(tmp_path, f"password_file: {pw}\n")).servers["main"]
    assert not named.my_cnf and resolve(named).port == 3306 and named.effective_user() == "root"


def test_option_file_parsing_follows_the_client(tmp_path):
    """Quoting, inline comments, !include, later values win, groups the dump tool does not read ignored."""
    inc = tmp_path / "inc.cnf"
    inc.write_text("[client]\nport = 3400\n")
    opt = tmp_path / "my.cnf"
    opt.write_text(
        textwrap.dedent(f"""\
        [client]
        password = s3cret # note
        port = 3399
        ssl_ca = "/etc/my ca.pem"
        !include {inc}
        [mysql]
        user = only_for_the_mysql_cli
        [mariadb-dump]
        user = dumper
        """)
    )
    values = optionfile.read(opt, flavour="mariadb")
    assert values["password"] == "s3cret"
    assert values["port"] == "3400"  # the included file comes later: it wins
    assert values["ssl-ca"] == "/etc/my ca.pem"
    assert values["user"] == "dumper"
    # MySQL's clients read [client-mysql], not [client-mariadb] or [mariadb-dump]
    assert optionfile.groups_for("mysql") == ("client", "client-mysql", "mysqldump")
    assert "user" not in optionfile.read(opt, flavour="mysql")


def test_unreadable_or_broken_option_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        optionfile.read(tmp_path / "missing.cnf")
    bad = tmp_path / "bad.cnf"
    bad.write_text(f"[client]\n!include {tmp_path / 'nope.cnf'}\n")
    cfg = _config(tmp_path, f"option_file: {bad}\n")
    proc = _dumpdeck("config", "check", config=cfg)
    # the client itself ignores a missing !include; whatever it does, dumpdeck agrees with it
    values = optionfile.read(bad)
    assert proc.returncode == 0 and values == {}


def test_login_path_needs_mysql_client_tools():
    """MariaDB's my_print_defaults has no --login-path: say so instead of failing obscurely."""
    with pytest.raises(ConfigError, match=r"do not read ~/\.mylogin\.cnf"):
        optionfile.read_login_path("backup")
    mysql_help = (Path(__file__).parent / "data" / "mysql" / "my_print_defaults-8.4.help").read_text()
    assert optionfile.supports_login_path(mysql_help)


def test_tls_from_the_option_file_and_the_config_winning(tmp_path):
    """ssl-* settings of the file turn TLS on for both connections; a tls key set in the config wins."""
    from dumpdeck.backend.config import parse_config

    def server(tls_yaml: str):
        text = (
            "servers:\n  main:\n    host: db.example.com\n    user: backup\n    password_env: X\n"
            + tls_yaml
            + f"backup:\n  dir: {tmp_path}\n"
        )
        return parse_config(text, tmp_path / "c.yaml").servers["main"]

    plain = server("")
    ep = resolve(plain, {"ssl-ca": "/etc/ca.pem", "ssl-mode": "REQUIRED"}, "option file F")
    assert ep.tls.enabled and ep.tls.required and not ep.tls.verify_server_cert
    assert ep.tls.ca == Path("/etc/ca.pem") and ep.sources["tls.ca"] == "option file F"
    ep = resolve(plain, {"ssl": "", "ssl-verify-server-cert": ""}, "option file F")  # MariaDB's spelling
    assert ep.tls.required and ep.tls.verify_server_cert
    configured = server("    tls:\n      verify_server_cert: false\n      ca: /etc/mine.pem\n")
    ep = resolve(configured, {"ssl-ca": "/etc/ca.pem", "ssl-mode": "VERIFY_IDENTITY"}, "option file F")
    assert ep.tls.ca == Path("/etc/mine.pem") and not ep.tls.verify_server_cert
    assert ep.sources["tls.ca"] == "config" and ep.sources["tls.verify_server_cert"] == "config"
    ep = resolve(plain, optionfile.parse_output("--skip-ssl\n"), "F")  # ssl=0
    assert not ep.tls.enabled


def test_another_account_on_the_same_endpoint_never_gets_the_option_files_credentials(tmp_path, second):
    """A restore-test's temporary account: the option file's host/port stay, its user and password do not."""
    from dumpdeck.backend.endpoint import with_account

    opt = _option_file(tmp_path, second)
    server = load_config(_config(tmp_path, f"option_file: {opt}\n")).servers["main"]
    temp = with_account(server, "dumpdeck_rt_abc123")
    ep = resolve(temp)
    assert (ep.host, ep.port) == ("127.0.0.1", second.port)
    assert ep.user == "dumpdeck_rt_abc123" and temp.effective_user() == "dumpdeck_rt_abc123"
    assert temp.password() is None  # the caller hands the temporary password over explicitly
    Path.home().joinpath(".my.cnf").write_text("[client]\nuser=bk2\npassword=leak\n")
    assert with_account(server, "x").password() is None and resolve(with_account(server, "x")).user == "x"
