"""Notifications: compose plain-text messages, deliver them by SMTP and webhook.

Composition takes typed summaries (a run, a disk level, a failed verification,
the dead-man's check) and returns a `Message`: a subject prefixed with its
severity (``[FAILED]``, ``[RECOVERED]``, ``[OK]``, ``[WARNING]``, ``[CRITICAL]``)
and a body with the facts and what to look at next.

Delivery never raises: `deliver()` returns one `Delivery` per channel with the
error text when it failed; the caller records and retries it. Before anything
leaves the process, every known secret (server passwords, the SMTP password,
the webhook URL's path) is replaced by ``<redacted>`` — composition never puts
one in, and this is the belt to those braces.

E-mail: smtplib with ``security: starttls`` (port 587), ``tls`` (implicit TLS,
port 465) or ``none``; certificates are verified against the system store
(``SSL_CERT_FILE`` points it at a private CA). Webhook: a JSON POST; ``format:
slack`` sends ``{"text": ...}`` as Slack, Mattermost and Rocket.Chat incoming
webhooks expect, ``format: json`` sends the structured fields as well.
"""

from __future__ import annotations

import email.policy
import json
import logging
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from dumpdeck import __version__

from ..config import Config, EmailConfig, WebhookConfig, redact_url
from ..disk import VolumeUsage
from ..errors import DumpdeckError, NotifyError
from ..naming import printable
from ..state import StateStore
from ..units import format_bytes, format_duration
from ..vocabulary import DbStatus, RunStatus
from . import policy as policy_mod

log = logging.getLogger("dumpdeck.notify")

SEVERITIES = ("FAILED", "RECOVERED", "OK", "WARNING", "CRITICAL")
REDACTED = "<redacted>"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Message:
    severity: str  # FAILED | RECOVERED | OK | WARNING | CRITICAL
    title: str  # the subject without its severity prefix
    body: str  # plain text
    key: str = ""  # what it is about: job:nightly, disk:/var/backups, check, verify:main/shop
    facts: dict[str, Any] = field(default_factory=dict)  # structured fields for `format: json` webhooks

    def __post_init__(self) -> None:
        # names from servers may hold control characters: never into a subject line or a mail body
        object.__setattr__(self, "title", printable(self.title))
        object.__setattr__(self, "body", printable(self.body, keep_newlines=True))

    @property
    def subject(self) -> str:
        return f"[{self.severity}] {self.title}"

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "title": self.title, "body": self.body, "key": self.key, "facts": self.facts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        return cls(
            severity=d["severity"], title=d["title"], body=d["body"], key=d.get("key", ""), facts=d.get("facts") or {}
        )


@dataclass(frozen=True)
class Delivery:
    channel: str  # email | webhook
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class DbOutcome:
    """One database of a run, as a notification reports it."""

    server: str
    database: str
    status: DbStatus
    error: str | None = None
    file: str | None = None
    bytes_raw: int | None = None
    bytes_stored: int | None = None
    duration: float | None = None
    flags: tuple[str, ...] = ()  # trend flag texts
    verified_level: int | None = None
    verification_failed: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == DbStatus.SUCCEEDED


@dataclass(frozen=True)
class RunSummary:
    run_id: int | None
    job: str | None
    trigger: str | None
    server: str | None
    status: RunStatus
    reason: str | None
    started: datetime | None
    finished: datetime | None
    databases: tuple[DbOutcome, ...] = ()
    log_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED and all(d.ok for d in self.databases)

    @property
    def label(self) -> str:
        who = f"job {self.job}" if self.job else "ad-hoc backup"
        return f"{who} on {self.server}" if self.server else who


# --------------------------------------------------------------------------- composition


def _when(dt: datetime | None) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in rows), default=0) + 1
    return "\n".join(f"{(k + ':').ljust(width + 1)}{v}" for k, v in rows)


def _one_line(text: str | None, limit: int = 300) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compose_run(
    summary: RunSummary,
    kind: str,
    severity: str,
    *,
    disk: Sequence[VolumeUsage] = (),
    failing_for: float | None = None,
    streak: int = 0,
    config_path: str | None = None,
) -> Message:
    """The message for one finished run: `kind` from the policy (failure, digest, recovery, ...)."""
    dbs = tuple(
        replace(d, database=printable(d.database), server=printable(d.server), file=d.file and printable(d.file))
        for d in summary.databases
    )
    failed = [d for d in dbs if not d.ok]
    flagged = [d for d in dbs if d.flags]
    if kind == "recovery":
        headline = f"{summary.label}: recovered"
        if failing_for is not None:
            headline += f" after {format_duration(failing_for)} ({streak} failed run{'s' if streak != 1 else ''})"
    elif kind == "digest":
        headline = (
            f"{summary.label}: still failing"
            + (f" for {format_duration(failing_for)}" if failing_for is not None else "")
            + (f", {streak} failed runs in a row" if streak else "")
        )
    elif not summary.ok:
        if failed and len(dbs) > 1:
            headline = f"{summary.label}: {len(failed)} of {len(dbs)} databases failed"
        elif failed:
            headline = f"{summary.label}: {failed[0].database} failed"
        else:
            headline = f"{summary.label}: run {summary.status}"
    elif [d for d in dbs if d.verification_failed]:
        bad = [d.database for d in dbs if d.verification_failed]
        headline = f"{summary.label}: dumped, but verification failed ({', '.join(bad)})"
    elif flagged:
        headline = f"{summary.label}: succeeded with unusual dumps ({', '.join(d.database for d in flagged)})"
    else:
        n = len(dbs)
        headline = f"{summary.label}: {n} database{'s' if n != 1 else ''} backed up"
        if kind == "first-success":
            headline += " (first success: notifications work)"

    status_text = str(summary.status)
    if summary.reason:
        status_text += f" — {_one_line(summary.reason)}"
    duration = None
    if summary.started and summary.finished:
        duration = (summary.finished - summary.started).total_seconds()
    rows = [
        ("Server", summary.server or "-"),
        ("Job", summary.job or "(ad-hoc)"),
        (
            "Run",
            f"{summary.run_id if summary.run_id is not None else '-'}"
            + (f" (trigger: {summary.trigger})" if summary.trigger else ""),
        ),
        ("Status", status_text),
        ("Started", _when(summary.started)),
        ("Finished", _when(summary.finished)),
        ("Duration", format_duration(duration)),
    ]
    lines = [headline, "", _kv(rows), "", "Databases:"]
    if not dbs:
        lines.append("  (none reached)")
    for d in dbs:
        lines.append(f"  {d.server}/{d.database}: {'OK' if d.ok else d.status.upper()}")
        if d.error:
            lines.append(f"    reason:   {_one_line(d.error, 500)}")
        if d.file:
            lines.append(f"    file:     {d.file}")
        if d.bytes_stored is not None or d.bytes_raw is not None:
            lines.append(f"    size:     {format_bytes(d.bytes_stored)} stored, {format_bytes(d.bytes_raw)} SQL")
        if d.duration is not None:
            lines.append(f"    duration: {format_duration(d.duration)}")
        if d.verified_level is not None:
            lines.append(f"    verified: level {d.verified_level}")
        if d.verification_failed:
            lines.append(f"    VERIFICATION FAILED: {_one_line(d.verification_failed, 500)}")
        for flag in d.flags:
            lines.append(f"    TREND:    {flag}")
    if disk:
        lines += ["", "Disk:"] + [f"  {line.text}" for line in disk]
    lines += ["", "What to look at next:"]
    cfg = f" --config {config_path}" if config_path else ""
    if summary.run_id is not None:
        lines.append(f"  dumpdeck{cfg} job status {summary.run_id}")
    if summary.log_path:
        lines.append(f"  run log: {summary.log_path}")
    for d in failed[:5]:
        lines.append(f"  dumpdeck{cfg} databases --server {d.server}   (is {d.database} reachable and dumpable?)")
    for d in flagged[:5]:
        lines.append(f"  dumpdeck{cfg} dumps   (compare {d.database}'s recent dumps)")
    unverified = [d for d in dbs if d.verification_failed]
    for d in unverified[:5]:
        lines.append(f"  dumpdeck{cfg} verify {d.file or d.database}   (the failed check and its evidence)")
    if not failed and not flagged and not unverified and summary.ok:
        lines.append(f"  dumpdeck{cfg} report   (the status page of every database)")
    facts = {
        "run": summary.run_id,
        "job": summary.job,
        "server": summary.server,
        "status": summary.status,
        "reason": summary.reason,
        "started": _when(summary.started),
        "finished": _when(summary.finished),
        "kind": kind,
        "databases": [
            {
                "database": d.database,
                "server": d.server,
                "status": d.status,
                "error": d.error,
                "file": d.file,
                "bytes_stored": d.bytes_stored,
                "bytes_raw": d.bytes_raw,
                "duration": d.duration,
                "flags": list(d.flags),
            }
            for d in dbs
        ],
    }
    key = f"job:{summary.job}" if summary.job else f"adhoc:{summary.server}"
    return Message(severity, f"dumpdeck: {headline}", "\n".join(lines) + "\n", key, facts)


def compose_disk(line: VolumeUsage, kind: str, severity: str, *, backups_note: str | None = None) -> Message:
    if kind == "recovery":
        headline = f"disk {line.path}: back below the warning level ({line.percent:.0f}% used)"
    elif kind == "digest":
        headline = f"disk {line.path}: still {line.level} ({line.percent:.0f}% used)"
    else:
        headline = f"disk {line.path}: {line.level} ({line.percent:.0f}% used)"
    body = [headline, "", "Disk:", f"  {line.text}"]
    if backups_note:
        body += ["", backups_note]
    body += [
        "",
        "What to look at next:",
        "  dumpdeck prune --dry-run   (what retention would free)",
        f"  du -sh {line.path}/*",
    ]
    return Message(
        severity,
        f"dumpdeck: {headline}",
        "\n".join(body) + "\n",
        f"disk:{line.path}",
        {"path": line.path, "percent": line.percent, "level": line.level, "kind": kind},
    )


def compose_verification(
    server: str, database: str, file: str, level: int, reason: str, kind: str, severity: str, *, at: str | None = None
) -> Message:
    server, database, file = printable(server), printable(database), printable(file)
    if kind == "recovery":
        headline = f"{server}/{database}: verification passes again (level {level})"
    elif severity == "WARNING":
        headline = f"{server}/{database}: verification not checked past level {level} (it could not run)"
    else:
        headline = f"{server}/{database}: verification level {level} FAILED"
    rows = [
        ("Server", server),
        ("Database", database),
        ("File", file),
        ("Level", str(level)),
        ("When", at or "-"),
        ("Result", _one_line(reason, 500) or "-"),
    ]
    body = [
        headline,
        "",
        _kv(rows),
        "",
        "What to look at next:",
        f"  dumpdeck verify {file}",
        "  dumpdeck dumps   (is an older dump verified?)",
    ]
    return Message(
        severity,
        f"dumpdeck: {headline}",
        "\n".join(body) + "\n",
        f"verify:{server}/{database}",
        {"server": server, "database": database, "file": file, "level": level, "reason": reason, "kind": kind},
    )


def compose_check(
    line: str,
    problems: Sequence[str],
    kind: str,
    severity: str,
    *,
    disk: Sequence[VolumeUsage] = (),
    failing_for: float | None = None,
    config_path: str | None = None,
) -> Message:
    if kind == "recovery":
        headline = "dead-man's check: all clear again" + (
            f" after {format_duration(failing_for)}" if failing_for is not None else ""
        )
    elif kind == "digest":
        headline = (
            f"dead-man's check: still {severity.lower()} ({len(problems)} problem{'s' if len(problems) != 1 else ''})"
        )
    else:
        headline = f"dead-man's check: {len(problems)} problem{'s' if len(problems) != 1 else ''}"
    cfg = f" --config {config_path}" if config_path else ""
    body = [headline, "", line, ""]
    if problems:
        body.append("Problems:")
        body += [f"  - {p}" for p in problems]
        body.append("")
    if disk:
        body += ["Disk:"] + [f"  {d.text}" for d in disk] + [""]
    body += [
        "What to look at next:",
        f"  dumpdeck{cfg} check --no-notify",
        f"  dumpdeck{cfg} report",
        f"  dumpdeck{cfg} job list   (did the scheduled jobs run? is cron/systemd installed?)",
    ]
    return Message(
        severity,
        f"dumpdeck: {headline}",
        "\n".join(body) + "\n",
        "check",
        {"line": line, "problems": list(problems), "kind": kind},
    )


def compose_test(config_path: str | None = None) -> Message:
    host = socket.gethostname()
    body = (
        f"This is a test message from dumpdeck {__version__} on {host}, sent by `dumpdeck notify test`.\n"
        f"Configuration: {config_path or '-'}\nSent: {_when(datetime.now(UTC))}\n\n"
        "If you read this, this channel works: failures, recoveries, disk alarms and the dead-man's\n"
        "check will reach you here.\n"
    )
    return Message("OK", f"dumpdeck: test message from {host}", body, "test", {"kind": "test"})


# --------------------------------------------------------------------------- secrets


def secrets(config: Config) -> list[str]:
    """Every secret the config can reach, for scrubbing; a secret that cannot be read is skipped."""
    out: list[str] = []
    for s in config.servers.values():
        try:
            pw = s.password()
        except Exception:
            pw = None
        if pw:
            out.append(pw)
    email = config.notify.email
    if email is not None:
        try:
            pw = email.password()
        except Exception:
            pw = None
        if pw:
            out.append(pw)
    urls = list(config.notify.apprise)
    for channel in (config.notify.webhook, config.notify.heartbeat):
        if channel is not None and channel.url:
            urls.append(channel.url)
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.path and len(parts.path) > 1:
            out.append(parts.path.lstrip("/"))
        if parts.query:
            out.append(parts.query)
        if parts.password:
            out.append(parts.password)
        if parts.username and "apprise" in channels(config):
            out.append(parts.username)  # Apprise URLs often carry a token as the user part
    # longest first, so a secret containing another is replaced whole
    return sorted({s for s in out if len(s) >= 4}, key=len, reverse=True)


def scrub(text: str, secret_values: Sequence[str]) -> str:
    for s in secret_values:
        if s and s in text:
            text = text.replace(s, REDACTED)
    return text


def scrubbed(message: Message, secret_values: Sequence[str]) -> Message:
    if not secret_values:
        return message
    facts = json.loads(scrub(json.dumps(message.facts, default=str), [json.dumps(s)[1:-1] for s in secret_values]))
    return Message(
        message.severity, scrub(message.title, secret_values), scrub(message.body, secret_values), message.key, facts
    )


# --------------------------------------------------------------------------- channels


def channels(config: Config) -> list[str]:
    out = []
    if config.notify.email is not None:
        out.append("email")
    if config.notify.webhook is not None:
        out.append("webhook")
    if config.notify.apprise:
        out.append("apprise")
    return out


def build_email(cfg: EmailConfig, message: Message) -> EmailMessage:
    # long lines rather than folded ones: Python's folder may break a long subject before its
    # first word, and some clients then show it with a leading space
    em = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    em["Subject"] = message.subject
    em["From"] = cfg.sender
    em["To"] = ", ".join(cfg.to)
    if cfg.cc:
        em["Cc"] = ", ".join(cfg.cc)
    em["Date"] = formatdate(localtime=False, usegmt=True)
    em["Message-ID"] = make_msgid(domain=cfg.sender.rpartition("@")[2] or None)
    em["X-Dumpdeck-Severity"] = message.severity
    if message.key:
        em["X-Dumpdeck-Key"] = message.key
    em["Auto-Submitted"] = "auto-generated"
    em.set_content(message.body)
    return em


def send_email(cfg: EmailConfig, message: Message) -> None:
    """Deliver one message by SMTP to `to` + `cc`. Raises NotifyError naming the server and the reason."""
    where = f"SMTP {cfg.smtp_host}:{cfg.port} ({cfg.security})"
    em = build_email(cfg, message)
    recipients = list(cfg.to) + list(cfg.cc)
    try:
        password = cfg.password()
    except DumpdeckError as exc:
        raise NotifyError(f"e-mail: {exc}") from None
    if cfg.user and password is None:
        raise NotifyError(
            f"e-mail: {where}: user {cfg.user!r} is set but no password (notify.email.password_file or password_env)"
        )
    context = ssl.create_default_context()
    try:
        if cfg.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.smtp_host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            client = smtplib.SMTP(cfg.smtp_host, cfg.port, timeout=cfg.timeout)
        try:
            client.ehlo()
            if cfg.security == "starttls":
                if not client.has_extn("starttls"):
                    raise NotifyError(
                        f"e-mail: {where}: the server does not offer STARTTLS (set notify.email.security: tls or none)"
                    )
                client.starttls(context=context)
                client.ehlo()
            if cfg.user:
                client.login(cfg.user, password or "")
            refused = client.send_message(em, from_addr=cfg.sender, to_addrs=recipients)
            if refused:
                raise NotifyError(f"e-mail: {where}: recipients refused: {', '.join(sorted(refused))}")
        finally:
            try:
                client.quit()
            except Exception:
                client.close()
    except NotifyError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(f"e-mail: {where}: authentication as {cfg.user!r} failed ({exc.smtp_code})") from None
    except smtplib.SMTPException as exc:
        raise NotifyError(f"e-mail: {where}: {_smtp_reason(exc)}") from None
    except ssl.SSLError as exc:
        raise NotifyError(f"e-mail: {where}: TLS failed: {exc.reason or exc}") from None
    except (TimeoutError, OSError) as exc:
        raise NotifyError(f"e-mail: {where}: {exc.strerror or exc}") from None


def _smtp_reason(exc: smtplib.SMTPException) -> str:
    code = getattr(exc, "smtp_code", None)
    err = getattr(exc, "smtp_error", None)
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    if code:
        return f"{code} {err}"
    return str(exc) or type(exc).__name__


def webhook_payload(cfg: WebhookConfig, message: Message) -> dict[str, Any]:
    if cfg.format == "slack":
        return {"text": _slack_escape(f"*{message.subject}*\n```\n{message.body.rstrip()}\n```")}
    return {"text": message.subject + "\n\n" + message.body, **message.to_dict(), "subject": message.subject}


def _slack_escape(text: str) -> str:
    """Slack reads <...> as links and mentions (<!channel>): escape &, <, > as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def send_webhook(cfg: WebhookConfig, message: Message) -> None:
    where = f"webhook {redact_url(cfg.url)}"
    data = json.dumps(webhook_payload(cfg, message), ensure_ascii=False).encode()
    req = urllib.request.Request(
        cfg.url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": f"dumpdeck/{__version__}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:
            resp.read(4096)
    except urllib.error.HTTPError as exc:
        detail = ""
        try:
            detail = exc.read(200).decode("utf-8", "replace").strip()
        except Exception:
            pass
        raise NotifyError(
            f"{where}: HTTP {exc.code} {exc.reason}" + (f": {_one_line(detail, 200)}" if detail else "")
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "strerror", None) or str(reason)
        raise NotifyError(f"{where}: {text}") from None
    except (TimeoutError, OSError) as exc:
        raise NotifyError(f"{where}: {getattr(exc, 'strerror', None) or exc}") from None


def send_apprise(urls: Sequence[str], message: Message) -> None:
    """Deliver through Apprise (chat and paging services by URL; `pip install 'dumpdeck[apprise]'`).
    Its URLs are secrets: errors name only their scheme and host."""
    try:
        import apprise  # an optional extra, not part of dumpdeck
    except ImportError:
        raise NotifyError("apprise: the apprise package is not installed (pip install 'dumpdeck[apprise]')") from None
    if not urls:
        raise NotifyError("apprise: notify.apprise lists no URLs")
    targets = apprise.Apprise()
    bad = [redact_url(u) for u in urls if not targets.add(u)]
    if bad:
        raise NotifyError(f"apprise: not a URL Apprise understands: {', '.join(bad)}")
    kind = {
        "OK": apprise.NotifyType.SUCCESS,
        "RECOVERED": apprise.NotifyType.SUCCESS,
        "WARNING": apprise.NotifyType.WARNING,
    }.get(message.severity, apprise.NotifyType.FAILURE)
    apprise_logger = logging.getLogger("apprise")
    level = apprise_logger.level
    apprise_logger.setLevel(logging.CRITICAL)  # apprise logs URLs (secrets) at lower levels
    try:
        ok = targets.notify(title=message.title, body=message.body, notify_type=kind)
    finally:
        apprise_logger.setLevel(level)
    if not ok:
        raise NotifyError(f"apprise: delivery failed on {', '.join(redact_url(u) for u in urls)}")


def send(config: Config, message: Message, channel: str) -> None:
    """Send on one channel; raises NotifyError."""
    if channel == "email":
        if config.notify.email is None:
            raise NotifyError("e-mail: notify.email is not configured")
        send_email(config.notify.email, message)
    elif channel == "webhook":
        if config.notify.webhook is None:
            raise NotifyError("webhook: notify.webhook is not configured")
        send_webhook(config.notify.webhook, message)
    elif channel == "apprise":
        send_apprise(config.notify.apprise, message)
    else:
        raise NotifyError(f"unknown notification channel {channel!r}")


def deliver(config: Config, message: Message, only: Sequence[str] | None = None) -> list[Delivery]:
    """Send `message` on every configured channel (or `only` those). Never raises."""
    secret_values = secrets(config)
    clean = scrubbed(message, secret_values)
    out = []
    for channel in only if only is not None else channels(config):
        try:
            send(config, clean, channel)
        except NotifyError as exc:
            error = scrub(str(exc), secret_values)
            log.warning("notification %r on %s failed: %s", clean.subject, channel, error)
            out.append(Delivery(channel, False, error))
        except Exception as exc:  # a bug must not break the caller's backup either
            error = scrub(f"{type(exc).__name__}: {exc}", secret_values)
            log.exception("notification %r on %s failed unexpectedly", clean.subject, channel)
            out.append(Delivery(channel, False, error))
        else:
            log.info("notification %r sent on %s", clean.subject, channel)
            out.append(Delivery(channel, True, None))
    return out


def log_path_for(config: Config, run_id: int | None) -> str | None:
    if run_id is None:
        return None
    return str(Path(config.runs_log_dir) / f"{run_id}.log")


# --------------------------------------------------------------------------- outbox: policy + delivery + record


@dataclass(frozen=True)
class Dispatch:
    """What happened to one subject's outcome: the policy decision and each channel's delivery."""

    key: str
    decision: policy_mod.Decision
    message: Message | None
    deliveries: tuple[Delivery, ...] = ()

    @property
    def sent(self) -> bool:
        return any(d.ok for d in self.deliveries)


def dispatch(
    config: Config,
    store: StateStore,
    key: str,
    status: str,
    compose: Callable[[policy_mod.Decision], Message],
    *,
    now: float,
    policy: str | None = None,
    first_success: bool = True,
    bad_severity: str = "FAILED",
    detail: str | None = None,
) -> Dispatch:
    """Apply the policy to one outcome of `key`, persist the new state, deliver and record.

    `compose(decision) -> Message` is called only when the policy says send.
    Failed deliveries are recorded with the message, so `retry_pending` can resend them.
    """

    state_key = f"notify:{key}"
    previous = store.get_notify_state(state_key)
    decision = policy_mod.decide(
        policy or config.notify.policy,
        previous,
        status,
        now,
        config.notify.digest_every,
        detail=detail,
        first_success=first_success,
        bad_severity=bad_severity,
    )
    store.set_notify_state(state_key, decision.state.to_dict())
    if not decision.send:
        log.debug("notification for %s not sent: %s", key, decision.why)
        return Dispatch(key, decision, None)
    message = compose(decision)
    clean = scrubbed(message, secrets(config))
    deliveries = tuple(deliver(config, clean))
    for d in deliveries:
        store.record_notification(
            d.channel, key, clean.subject, d.ok, d.error, payload=None if d.ok else clean.to_dict()
        )
    return Dispatch(key, decision, clean, deliveries)


def retry_pending(
    config: Config, store: StateStore, *, max_age: float = 3 * 86400.0, now: float | None = None
) -> list[Delivery]:
    """Resend failed notifications (oldest first) on their channel; older than `max_age` are left alone."""
    import time as _time

    now = _time.time() if now is None else now
    out = []
    for row in store.pending_notifications():
        payload = row.get("payload")
        at = row.get("at")
        if not payload or (at is not None and now - at.timestamp() > max_age):
            continue
        if row["channel"] not in channels(config):
            continue
        try:
            original = Message.from_dict(payload)
        except (KeyError, TypeError):
            continue
        when = _when(at)
        note = (
            f"(This message could not be delivered at {when}: {row.get('error') or 'unknown error'}.\n"
            f" It is resent now, with the next event.)\n\n"
        )
        message = Message(original.severity, original.title, note + original.body, original.key, original.facts)
        [result] = deliver(config, message, only=[row["channel"]])
        if result.ok:
            store.mark_notification_sent(row["id"])
        else:
            store.mark_notification_failed(row["id"], result.error or "failed")
        out.append(result)
    return out
