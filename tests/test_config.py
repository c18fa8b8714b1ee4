"""Configuration: typed, validated, errors that name file, key path and line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dumpdeck.backend.config import load_config, parse_config, permission_warnings, redacted
from dumpdeck.backend.errors import ConfigError
from dumpdeck.backend.units import parse_duration, parse_size

BASE = """\
servers:
  main:
    host: db1.example.com
    port: 3306
    user: backup
    password_env: DD_TEST_PW
backup:
  dir: /var/backups/mysql
"""


def cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(cfg(tmp_path, text))
    return str(exc.value)


def test_minimal_config_gets_defaults(tmp_path):
    c = load_config(cfg(tmp_path, BASE))
    assert c.backup.compression == "zstd" and c.backup.level == 3
    assert c.backup.timeout == 7200 and c.backup.stall_timeout == 300
    assert c.servers["main"].port == 3306
    assert c.disk.warn_percent == 80 and c.disk.critical_percent == 90
    assert c.notify.policy == "smart"


def test_unknown_key_names_file_line_and_path_with_hint(tmp_path):
    msg = error_of(tmp_path, BASE + "  compresion: zstd\n")
    assert str(tmp_path / "c.yaml") + ":9: backup.compresion: unknown key (did you mean 'compression'?)" in msg


def test_bad_duration_and_size_are_named(tmp_path):
    msg = error_of(tmp_path, BASE + "  timeout: 2x\nlog:\n  max_size: 5 potatoes\n")
    assert ":9: backup.timeout: '2x' is not a duration" in msg
    assert ":11: log.max_size: '5 potatoes' is not a size" in msg


def test_wrong_types_are_all_reported_together(tmp_path):
    msg = error_of(tmp_path, BASE.replace("port: 3306", "port: many") + "  level: high\n")
    assert "servers.main.port: expected an integer" in msg
    assert "backup.level: expected an integer" in msg


def test_malformed_yaml_names_the_line(tmp_path):
    msg = error_of(tmp_path, "servers:\n  main: {host: x\nbackup: [\n")
    assert "malformed YAML" in msg and str(tmp_path / "c.yaml") in msg


def test_missing_file_points_to_example(tmp_path):
    with pytest.raises(ConfigError, match="config.example.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_bad_cron_expression_is_named(tmp_path):
    msg = error_of(tmp_path, BASE + "jobs:\n  nightly:\n    schedule: '61 2 * * *'\n")
    assert "jobs.nightly.schedule" in msg and "61 2 * * *" in msg


def test_job_must_name_a_known_server(tmp_path):
    msg = error_of(tmp_path, BASE + "jobs:\n  nightly:\n    server: replica\n")
    assert "jobs.nightly.server: no server named 'replica'" in msg


def test_two_password_sources_rejected(tmp_path):
    msg = error_of(tmp_path, BASE.replace("password_env: DD_TEST_PW", "password_env: X\n    password_file: /tmp/x"))
    assert "choose one password source" in msg


def test_plain_password_key_is_refused(tmp_path):
    msg = error_of(tmp_path, BASE.replace("password_env: DD_TEST_PW", "password: hunter2"))
    assert "servers.main.password: unknown key" in msg


@pytest.mark.parametrize(
    "text,seconds", [("90s", 90), ("5m", 300), ("2h", 7200), ("1h30m", 5400), ("7d", 604800), (45, 45), ("1.5h", 5400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["2x", "", "h", "-5s", "1h 2", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("text,n", [("5GiB", 5 * 1024**3), ("100MB", 100_000_000), ("512", 512), ("1.5KiB", 1536)])
def test_sizes(text, n):
    assert parse_size(text) == n


def test_password_sources(tmp_path, monkeypatch):
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    c = parse_config(BASE.replace("password_env: DD_TEST_PW", f"password_file: {pw}"), tmp_path / "c.yaml")
    assert c.servers["main"].password() == "from-file"
    monkeypatch.setenv("DD_TEST_PW", "from-env")
    assert parse_config(BASE, tmp_path / "c.yaml").servers["main"].password() == "from-env"
    mycnf = tmp_path / "my.cnf"
    mycnf.write_text('[client]\nuser = opt_user\npassword = "from option file"\n')
    c = parse_config(
        BASE.replace("    user: backup\n", "").replace("password_env: DD_TEST_PW", f"option_file: {mycnf}"),
        tmp_path / "c.yaml",
    )
    assert c.servers["main"].password() == "from option file"
    assert c.servers["main"].effective_user() == "opt_user"


def test_missing_password_env_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DD_TEST_PW", raising=False)
    c = parse_config(BASE, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="DD_TEST_PW"):
        c.servers["main"].password()


def test_several_servers_and_socket(tmp_path):
    text = BASE.replace("servers:\n", "servers:\n  replica:\n    socket: /run/mysqld/mysqld.sock\n    user: bk\n")
    c = parse_config(text, tmp_path / "c.yaml")
    assert set(c.servers) == {"main", "replica"}
    assert c.servers["replica"].socket == Path("/run/mysqld/mysqld.sock")
    with pytest.raises(ConfigError, match="several servers"):
        c.server(None)


def test_config_check_redacts_and_warns_on_readable_secret(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("TopSecret-123\n")
    pw.chmod(0o644)
    path = cfg(tmp_path, BASE.replace("password_env: DD_TEST_PW", f"password_file: {pw}"))
    proc = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), "config", "check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "TopSecret-123" not in proc.stdout + proc.stderr
    assert "<redacted: from file" in proc.stdout
    assert "readable by others" in proc.stderr and f"chmod 600 {pw}" in proc.stderr
    pw.chmod(0o600)
    assert permission_warnings(load_config(path)) == []


def test_config_check_invalid_exits_2_without_traceback(tmp_path):
    path = cfg(tmp_path, BASE + "  compression: brotli\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), "config", "check"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "backup.compression: 'brotli' is not one of zstd, gzip, xz, none" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_example_config_is_valid_and_documents_every_key(tmp_path, monkeypatch):
    example = Path(__file__).resolve().parent.parent / "config.example.yaml"
    monkeypatch.setenv("DUMPDECK_PRIMARY_PASSWORD", "x")
    c = load_config(example)
    assert c.servers and c.jobs
    # every line that sets a key carries a comment (on the line or just above)
    lines = example.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped and not stripped.startswith("-"):
            above = lines[i - 1].strip() if i else ""
            assert "#" in line or above.startswith("#"), f"config.example.yaml:{i + 1} lacks a comment: {line}"


def test_redacted_never_holds_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("DD_TEST_PW", "S3cr3t-value")
    c = parse_config(BASE, tmp_path / "c.yaml")
    assert "S3cr3t-value" not in repr(redacted(c))
