"""When to notify: the always | failures | smart policy as a pure function.

`decide(policy, previous, status, now, digest_every)` takes the last notified
state of one subject (a job, a disk volume, the dead-man's check, a dump's
verification), the new outcome and the current time, and returns whether to
send, with which severity, and the state to persist. No I/O, no clock: the
caller passes `now` (seconds since the epoch), so tests drive time freely.

Statuses, from best to worst: ``ok``, ``warning``, ``failed`` (for disk and
the dead-man's check ``critical`` is accepted as a synonym of ``failed``).

smart (the default)
    - the first success ever is sent (so a new setup proves the channel works);
    - further successes are silent;
    - each new failure (a transition into ``failed``) is sent at once;
    - while the failure lasts, one digest at most every `digest_every` seconds;
    - the recovery after a failure or warning is sent;
    - a new warning (a transition into ``warning``) is sent once; a lasting
      warning follows the digest cadence too;
    - `detail` is a newline-separated set of problem ids (``overdue:main/shop``);
      while in a bad state, an id not seen in the previous outcome is a new
      event and is sent at once (a second database going stale is news).
failures
    - every failure and every warning is sent; the recovery after them is
      sent (an operator who was told "broken" must be told "fixed"); plain
      successes are silent.
always
    - every outcome is sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..config import Config

POLICIES = ("always", "failures", "smart")
STATUSES = ("ok", "warning", "failed")

# Severities, in the subject prefix: [FAILED] [RECOVERED] [OK] [WARNING] [CRITICAL]
OK, WARNING, FAILED, CRITICAL, RECOVERED = "OK", "WARNING", "FAILED", "CRITICAL", "RECOVERED"


@dataclass(frozen=True)
class NotifyState:
    """What was last notified about one subject; persisted in the state store as a dict."""

    status: str | None = None  # last outcome seen: ok | warning | failed
    since: float | None = None  # when the current status began (epoch seconds)
    streak: int = 0  # consecutive outcomes with this status
    last_sent: float | None = None  # when a notification about this subject was last sent
    last_sent_kind: str | None = None  # kind of that notification
    detail: str | None = None  # the last warning/failure text (a new text is a new event)
    sent_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> NotifyState:
        if not data:
            return cls()
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        try:
            return cls(**known)
        except TypeError:
            return cls()


@dataclass(frozen=True)
class Decision:
    send: bool
    kind: str  # first-success | success | failure | digest | recovery | warning | silent
    severity: str  # OK | WARNING | FAILED | CRITICAL | RECOVERED
    state: NotifyState  # to persist whether or not a message is sent
    why: str = ""  # one line: why this was (not) sent, for the log
    failing_for: float | None = None  # for digests and recoveries: how long the bad state lasted
    streak: int = 0  # for digests and recoveries: how many bad outcomes in a row
    extras: dict[str, Any] = field(default_factory=dict)


def normalise_status(status: str) -> str:
    s = status.lower()
    if s in ("critical", "failed", "failure", "error", "lost", "cancelled", "timeout"):
        return "failed"
    if s in ("warning", "warn", "partial"):
        return "warning"
    if s in ("ok", "success", "succeeded", "passed", "done"):
        return "ok"
    raise ValueError(f"unknown outcome status {status!r}")


def decide(
    policy: str,
    previous: NotifyState | dict[str, Any] | None,
    status: str,
    now: float,
    digest_every: float,
    *,
    detail: str | None = None,
    first_success: bool = True,
    bad_severity: str = FAILED,
) -> Decision:
    """Decide whether to notify about one new outcome.

    `first_success=False` for subjects that should stay silent until something
    goes wrong (disk volumes, the dead-man's check, verifications).
    `bad_severity` is FAILED for runs and verifications, CRITICAL for disk and checks.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown notify policy {policy!r}; expected one of {', '.join(POLICIES)}")
    prev = previous if isinstance(previous, NotifyState) else NotifyState.from_dict(previous)
    new = normalise_status(status)
    same = prev.status == new
    since = prev.since if same and prev.since is not None else now
    streak = prev.streak + 1 if same else 1
    base = replace(prev, status=new, since=since, streak=streak, detail=detail)
    was_bad = prev.status in ("warning", "failed")

    def sent(kind: str, severity: str, why: str, **kw: Any) -> Decision:
        state = replace(base, last_sent=now, last_sent_kind=kind, sent_count=prev.sent_count + 1)
        return Decision(True, kind, severity, state, why, **kw)

    def silent(why: str, severity: str) -> Decision:
        return Decision(False, "silent", severity, base, why)

    bad_for = (now - prev.since) if (was_bad and prev.since is not None) else None

    if new == "ok":
        if was_bad and policy in ("smart", "failures", "always"):
            return sent(
                "recovery",
                RECOVERED,
                f"recovered after {prev.streak} {prev.status} outcome(s)",
                failing_for=bad_for,
                streak=prev.streak,
            )
        if policy == "always":
            return sent("success", OK, "policy always")
        if policy == "smart" and first_success and prev.status is None:
            return sent("first-success", OK, "first success under the smart policy")
        return silent(
            f"success after {'nothing' if prev.status is None else prev.status}; policy {policy} stays quiet", OK
        )

    severity = bad_severity if new == "failed" else WARNING
    kind = "failure" if new == "failed" else "warning"
    if policy in ("always", "failures"):
        return sent(kind, severity, f"policy {policy}")
    # smart
    worse = prev.status is None or prev.status == "ok" or (prev.status == "warning" and new == "failed")
    if worse:
        return sent(kind, severity, f"new {kind}")
    if _new_items(detail, prev.detail):
        return sent(kind, severity, f"a new {kind}: {', '.join(_new_items(detail, prev.detail))}")
    # the same bad state goes on: a digest at most every digest_every seconds
    last = prev.last_sent if prev.last_sent is not None else prev.since
    if last is None or now - last >= digest_every:
        return sent(
            "digest",
            severity,
            f"still {new} after {streak} outcome(s); digest due",
            failing_for=now - since,
            streak=streak,
        )
    return silent(f"still {new}; next digest in {digest_every - (now - last):.0f}s", severity)


def _new_items(detail: str | None, previous: str | None) -> list[str]:
    """Lines of `detail` not in `previous` (a detail is a newline-separated set of problem ids)."""
    if not detail:
        return []
    old = set((previous or "").splitlines())
    return [line for line in detail.splitlines() if line and line not in old]


def effective_policy(config: Config, job_name: str | None) -> str:
    """The job's own `notify` override, else `notify.policy`."""
    job = config.jobs.get(job_name) if job_name else None
    if job is not None and job.notify:
        return job.notify
    return config.notify.policy
