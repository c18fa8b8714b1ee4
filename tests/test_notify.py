"""Notifications against real servers on loopback: aiosmtpd (plain + AUTH, STARTTLS, implicit TLS)
and an http.server webhook. Messages arrive with the right recipients, subject and facts, no secret."""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import shutil
import subprocess
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from dumpdeck.backend import notify
from dumpdeck.backend.config import load_config
from dumpdeck.backend.disk import VolumeUsage
from dumpdeck.backend.sandbox import free_port
from dumpdeck.backend.vocabulary import Severity

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SMTP_USER = "dumpdeck-mailer"
SMTP_PASSWORD = "Smtp-Pa55w0rd-zz7!"
DB_PASSWORD = "S3cret-Pw!x9"  # the 'bk' user's password in tests/conftest.py
WEBHOOK_TOKEN = "T0AAA/B0BBB/XyzSecretHookToken"


# --------------------------------------------------------------------------- real servers


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message and every login."""

    def __init__(self, *, port: int | None = None, tls_context=None, implicit_tls=None, require_auth=True):
        self.messages: list = []
        self.logins: list = []
        self.port = port or free_port()
        kwargs = dict(
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._auth,
            auth_required=require_auth,
            auth_require_tls=tls_context is not None,
        )
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls, server_hostname="localhost")
        self.controller = Controller(self, **kwargs)

    def _auth(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
        self.logins.append((mechanism, login, password, bool(session.ssl)))
        return AuthResult(success=(login == SMTP_USER and password == SMTP_PASSWORD), handled=False)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"

    def parsed(self, i: int = -1):
        return email.message_from_bytes(self.messages[i].content, policy=email.policy.default)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


class WebhookSink:
    """A real HTTP server on 127.0.0.1 recording POSTed JSON; `status` chooses the reply."""

    def __init__(self, status: int = 200):
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self.status = status
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                sink.bodies.append(self.rfile.read(n))
                sink.paths.append(self.path)
                sink.content_types = self.headers.get("Content-Type")
                self.send_response(sink.status)
                self.end_headers()
                self.wfile.write(b"ok" if sink.status == 200 else b"invalid_payload")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/services/{WEBHOOK_TOKEN}"

    def json(self, i: int = -1) -> dict:
        return json.loads(self.bodies[i])

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (openssl req -x509)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install -y openssl): cannot make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def notify_yaml(
    tmp_path: Path,
    *,
    smtp_port: int | None = None,
    security: str = "none",
    webhook_url: str | None = None,
    fmt: str = "slack",
    policy: str = "smart",
    digest_every: str = "6h",
    host: str = "127.0.0.1",
) -> str:
    pw = tmp_path / "smtp.pass"
    pw.write_text(SMTP_PASSWORD + "\n")
    pw.chmod(0o600)
    text = f"notify:\n  policy: {policy}\n  digest_every: {digest_every}\n"
    if smtp_port is not None:
        text += textwrap.indent(
            textwrap.dedent(f"""\
            email:
              smtp_host: {host}
              port: {smtp_port}
              security: {security}
              user: {SMTP_USER}
              password_file: {pw}
              from: dumpdeck@db1.example.org
              to: [dba@example.org, oncall@example.org]
              cc: [boss@example.org]
              timeout: 5s
            """),
            "  ",
        )
    if webhook_url is not None:
        text += f"  webhook:\n    url: {webhook_url}\n    format: {fmt}\n    timeout: 5s\n"
    return text


def failed_summary(
    db: str = "shop", error: str = "mariadb-dump exited 2: Got error: 1049: Unknown database"
) -> notify.RunSummary:
    start = datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)
    return notify.RunSummary(
        run_id=42,
        job="nightly",
        trigger="cron",
        server="main",
        status="failed",
        reason="1 of 2 databases failed",
        started=start,
        finished=start + timedelta(seconds=95),
        databases=(
            notify.DbOutcome("main", db, "failed", error=error),
            notify.DbOutcome(
                "main",
                "crm",
                "succeeded",
                file="/srv/backups/main/crm/crm-20261124T020000Z.sql.zst",
                bytes_raw=50 * 1024**2,
                bytes_stored=9 * 1024**2,
                duration=61.0,
                flags=("small: 9.0 MiB is 30% of the median 30.0 MiB of the last 5 dumps (smaller than usual)",),
            ),
        ),
        log_path="/var/lib/dumpdeck/runs/42.log",
    )


def no_secret(blob: bytes | str) -> None:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    for secret in (SMTP_PASSWORD, DB_PASSWORD, WEBHOOK_TOKEN, "XyzSecretHookToken"):
        assert secret not in text, f"secret {secret!r} leaked into a delivered message"


# --------------------------------------------------------------------------- tests


def test_smtp_delivers_to_and_cc_with_subject_facts_and_no_secret(tmp_path, write_config):
    with SmtpSink() as smtp:
        config = load_config(write_config(notify_yaml(tmp_path, smtp_port=smtp.port), password=True))
        message = notify.compose_run(
            failed_summary(),
            "failure",
            "FAILED",
            config_path=str(config.path),
            disk=[
                VolumeUsage(
                    "/srv/backups",
                    total=100 * 1024**3,
                    used=70 * 1024**3,
                    free=30 * 1024**3,
                    percent=71.5,
                    level=Severity.OK,
                    paths=("backups: /srv/backups",),
                )
            ],
        )
        [result] = notify.deliver(config, message)
        assert result.ok, result.error
    assert len(smtp.messages) == 1
    env = smtp.messages[0]
    assert sorted(env.rcpt_tos) == ["boss@example.org", "dba@example.org", "oncall@example.org"]
    assert env.mail_from == "dumpdeck@db1.example.org"
    assert smtp.logins and smtp.logins[0][1] == SMTP_USER  # it authenticated
    msg = smtp.parsed()
    assert msg["Subject"].startswith("[FAILED] dumpdeck: job nightly on main: 1 of 2 databases failed")
    assert msg["To"] == "dba@example.org, oncall@example.org" and msg["Cc"] == "boss@example.org"
    body = msg.get_content()
    for fact in (
        "Server:",
        "main",
        "shop: FAILED",
        "Unknown database",
        "Status:",
        "1 of 2 databases failed",
        "/srv/backups/main/crm/crm-20261124T020000Z.sql.zst",
        "9.0 MiB stored",
        "50.0 MiB SQL",
        "duration: 1m01s",
        "Duration:",
        "1m35s",
        "TREND:",
        "smaller than usual",
        "72% used",
        "dumpdeck --config",
        "job status 42",
        "/var/lib/dumpdeck/runs/42.log",
    ):
        assert fact in body, f"{fact!r} missing from the body:\n{body}"
    no_secret(env.content)


def test_a_secret_that_slips_into_a_reason_is_redacted(tmp_path, write_config):
    """Composition never adds a secret; if a server error message echoes one, delivery scrubs it."""
    with SmtpSink() as smtp, WebhookSink() as hook:
        config = load_config(
            write_config(notify_yaml(tmp_path, smtp_port=smtp.port, webhook_url=hook.url), password=True)
        )
        leaky = failed_summary(error=f"connect failed for password {DB_PASSWORD} and smtp {SMTP_PASSWORD}")
        results = notify.deliver(config, notify.compose_run(leaky, "failure", "FAILED"))
        assert [r.ok for r in results] == [True, True], results
    no_secret(smtp.messages[0].content)
    no_secret(hook.bodies[0])
    assert "<redacted>" in smtp.parsed().get_content()


def test_smtp_starttls_with_auth(tmp_path, write_config, monkeypatch):
    import ssl

    cert, key = make_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our CA the way an operator's would
    with SmtpSink(tls_context=ctx) as smtp:
        config = load_config(
            write_config(
                notify_yaml(tmp_path, smtp_port=smtp.port, security="starttls", host="localhost"), password=True
            )
        )
        [r] = notify.deliver(config, notify.compose_test(str(config.path)))
        assert r.ok, r.error
    assert smtp.logins[0][3] is True, "AUTH must happen after STARTTLS"
    assert smtp.parsed()["Subject"].startswith("[OK] dumpdeck: test message")
    no_secret(smtp.messages[0].content)


def test_smtp_implicit_tls(tmp_path, write_config, monkeypatch):
    import ssl

    cert, key = make_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with SmtpSink(implicit_tls=ctx) as smtp:
        config = load_config(write_config(notify_yaml(tmp_path, smtp_port=smtp.port, security="tls", host="localhost")))
        [r] = notify.deliver(config, notify.compose_test())
        assert r.ok, r.error
    assert len(smtp.messages) == 1


def test_starttls_refuses_an_untrusted_certificate(tmp_path, write_config):
    import ssl

    cert, key = make_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    with SmtpSink(tls_context=ctx) as smtp:  # SSL_CERT_FILE not set: the self-signed cert is not trusted
        config = load_config(
            write_config(notify_yaml(tmp_path, smtp_port=smtp.port, security="starttls", host="localhost"))
        )
        [r] = notify.deliver(config, notify.compose_test())
    assert not r.ok and "TLS" in r.error and "certificate" in r.error.lower()
    assert smtp.messages == [] and smtp.logins == []  # no password went over an unverified channel


def test_smtp_wrong_password_is_a_clear_error(tmp_path, write_config):
    with SmtpSink() as smtp:
        config = load_config(write_config(notify_yaml(tmp_path, smtp_port=smtp.port)))
        (tmp_path / "smtp.pass").write_text("wrong\n")
        [r] = notify.deliver(config, notify.compose_test())
    assert not r.ok and "authentication" in r.error and SMTP_USER in r.error
    assert smtp.messages == []


def test_smtp_down_is_a_delivery_failure_not_an_exception(tmp_path, write_config):
    port = free_port()  # nothing listens there
    config = load_config(write_config(notify_yaml(tmp_path, smtp_port=port)))
    [r] = notify.deliver(config, notify.compose_test())
    assert not r.ok and r.channel == "email"
    assert f"127.0.0.1:{port}" in r.error and "refused" in r.error.lower()


def test_webhook_slack_format(tmp_path, write_config):
    with WebhookSink() as hook:
        config = load_config(write_config(notify_yaml(tmp_path, webhook_url=hook.url), password=True))
        summary = failed_summary(db="<!channel> & <script>")
        [r] = notify.deliver(config, notify.compose_run(summary, "failure", "FAILED"))
        assert r.ok, r.error
    payload = hook.json()
    assert set(payload) == {"text"}  # what a Slack incoming webhook takes
    assert payload["text"].startswith("*[FAILED] dumpdeck: job nightly on main")
    assert "Unknown database" in payload["text"] and "job status 42" in payload["text"]
    # Slack control sequences from a database name are escaped, not executed
    assert "<!channel>" not in payload["text"] and "&lt;!channel&gt; &amp; &lt;script&gt;" in payload["text"]
    assert hook.paths == [f"/services/{WEBHOOK_TOKEN}"]
    assert hook.content_types.startswith("application/json")
    no_secret(hook.bodies[0])


def test_webhook_json_format_has_structured_facts(tmp_path, write_config):
    with WebhookSink() as hook:
        config = load_config(write_config(notify_yaml(tmp_path, webhook_url=hook.url, fmt="json")))
        [r] = notify.deliver(config, notify.compose_run(failed_summary(), "failure", "FAILED"))
        assert r.ok
    p = hook.json()
    assert p["severity"] == "FAILED" and p["subject"].startswith("[FAILED]")
    assert p["facts"]["run"] == 42 and p["facts"]["databases"][0]["database"] == "shop"
    assert "text" in p


def test_webhook_http_error_is_reported_without_the_url_token(tmp_path, write_config):
    with WebhookSink(status=500) as hook:
        config = load_config(write_config(notify_yaml(tmp_path, webhook_url=hook.url)))
        [r] = notify.deliver(config, notify.compose_test())
    assert not r.ok and "HTTP 500" in r.error
    assert WEBHOOK_TOKEN not in r.error and f"127.0.0.1:{hook.port}/…" in r.error


def test_notify_test_command_sends_to_every_channel(tmp_path, write_config, capsys):
    from dumpdeck.cli.main import main

    with SmtpSink() as smtp, WebhookSink() as hook:
        path = write_config(notify_yaml(tmp_path, smtp_port=smtp.port, webhook_url=hook.url), password=True)
        code = main(["--config", str(path), "notify", "test"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK      email" in out and "OK      webhook" in out
    assert len(smtp.messages) == 1 and len(hook.bodies) == 1
    assert smtp.parsed()["Subject"].startswith("[OK] dumpdeck: test message")
    no_secret(smtp.messages[0].content)
    no_secret(hook.bodies[0])


def test_notify_test_command_exit_1_when_a_channel_fails(tmp_path, write_config, capsys):
    from dumpdeck.cli.main import main

    with WebhookSink() as hook:
        path = write_config(notify_yaml(tmp_path, smtp_port=free_port(), webhook_url=hook.url))
        code = main(["--config", str(path), "notify", "test"])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED  email" in out and "OK      webhook" in out


def test_notify_test_without_channels_is_a_config_error(write_config, capsys):
    from dumpdeck.cli.main import main

    code = main(["--config", str(write_config()), "notify", "test"])
    assert code == 2 and "no notification channel" in capsys.readouterr().err
