"""Configuration: typed, validated, errors that name file, key path and line."""

from __future__ import annotations

import os
import re
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
    with pytest.raises(ConfigError, match=r"config\.example\.yaml"):
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


def _example_key_paths() -> set[tuple[str, ...]]:
    """Key paths of config.example.yaml, counting commented-out keys (`# key: value`) as documented."""
    from dumpdeck.backend.config import _line_map

    example = Path(__file__).resolve().parent.parent / "config.example.yaml"
    uncommented = "\n".join(
        re.sub(r"^(\s*)# ?(?=\s*[a-z_]+:(\s|$))", r"\1", line) for line in example.read_text().splitlines()
    )
    paths = set(_line_map(uncommented))
    assert paths, "the uncommented example must still be YAML"
    return paths


def test_example_config_documents_every_schema_key():
    """Every key declared in the schema appears in config.example.yaml (set, or commented out).

    A section used in several places (a retention policy: global, per job, per database) is documented
    once: each of its keys must appear under one of its places."""
    from dumpdeck.backend.config import schema

    paths = _example_key_paths()
    documented: dict[tuple[str, str], bool] = {}
    for k in schema():
        parts = k.path.split(".")
        found = any(
            len(p) == len(parts) and all(a.startswith("<") or a == b for a, b in zip(parts, p, strict=True))
            for p in paths
        )
        slot = (k.section, parts[-1])
        documented[slot] = documented.get(slot, False) or found
    missing = sorted(f"{section}.{name}" for (section, name), ok in documented.items() if not ok)
    assert missing == [], f"config.example.yaml does not document: {', '.join(missing)}"


def test_schema_declares_each_default_once():
    """The defaults a parsed minimal config gets are the ones `config keys` shows (one declaration)."""
    from dumpdeck.backend.config import schema

    shown = {k.path: k.default for k in schema()}
    assert shown["servers.<server>.port"] == "3306"
    assert shown["backup.timeout"] == "2h" and shown["checks.max_age"] == "26h"
    c = parse_config(BASE, Path("/etc/dumpdeck/c.yaml"))
    assert c.backup.timeout == parse_duration(shown["backup.timeout"])
    assert c.checks.max_age == parse_duration(shown["checks.max_age"])
    assert c.log.max_size == parse_size(shown["log.max_size"].replace(" ", ""))


def test_config_keys_command_lists_the_schema():
    proc = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "config", "keys"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "servers.<server>.port" in proc.stdout and "backup.compression" in proc.stdout
    assert "zstd | gzip | xz | none" in proc.stdout


def test_config_locations_user_then_xdg_dirs_then_etc(tmp_path, monkeypatch):
    """The user's own config wins; else the first XDG_CONFIG_DIRS entry holding one; else /etc/dumpdeck."""
    from dumpdeck.backend import config as config_mod

    user = Path(os.environ["XDG_CONFIG_HOME"]) / "dumpdeck" / "config.yaml"
    xdg1, xdg2 = tmp_path / "xdg1", tmp_path / "xdg2"
    etc = tmp_path / "etc" / "dumpdeck" / "config.yaml"
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{xdg1}:{xdg2}")
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", etc)
    assert config_mod.config_candidates() == [
        user,
        xdg1 / "dumpdeck" / "config.yaml",
        xdg2 / "dumpdeck" / "config.yaml",
        etc,
    ]
    assert config_mod.default_config_path() == user  # nothing exists: the user's path, for the message
    etc.parent.mkdir(parents=True)
    etc.write_text(BASE)
    assert config_mod.default_config_path() == etc
    (xdg2 / "dumpdeck").mkdir(parents=True)
    (xdg2 / "dumpdeck" / "config.yaml").write_text(BASE)
    assert config_mod.default_config_path() == xdg2 / "dumpdeck" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text(BASE)
    assert config_mod.default_config_path() == user
    monkeypatch.setenv("DUMPDECK_CONFIG", str(tmp_path / "explicit.yaml"))
    assert config_mod.default_config_path() == tmp_path / "explicit.yaml"


def test_root_with_a_config_in_etc_finds_it_and_uses_var_lib(tmp_path):
    """`sudo dumpdeck` on a host configured in /etc: root's own home has no config, the /etc one is read,
    and the state lives in /var/lib/dumpdeck (not in whichever HOME sudo kept)."""
    xdg = tmp_path / "sysconf"
    (xdg / "dumpdeck").mkdir(parents=True)
    (xdg / "dumpdeck" / "config.yaml").write_text(BASE)
    env = {k: v for k, v in os.environ.items() if k != "DUMPDECK_CONFIG"}
    env["XDG_CONFIG_DIRS"] = str(xdg)
    proc = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "config", "check", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["path"] == str(xdg / "dumpdeck" / "config.yaml")
    if os.geteuid() == 0:
        assert out["settings"]["state_dir"] == "/var/lib/dumpdeck"
    else:
        assert out["settings"]["state_dir"].startswith(os.environ["HOME"])


def test_missing_config_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "nowhere"))
    proc = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "config", "check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "looked in:" in proc.stderr and "/etc/dumpdeck/config.yaml" in proc.stderr
    assert str(tmp_path / "nowhere" / "dumpdeck" / "config.yaml") in proc.stderr
