"""The notification policy as a pure function: smart, failures, always, digests on an injected clock."""

from __future__ import annotations

import pytest

from dumpdeck.backend.notify.policy import NotifyState, decide

HOUR = 3600.0


def run_sequence(policy, outcomes, *, start=1_000_000.0, step=HOUR, digest_every=24 * HOUR, **kw):
    """Feed outcomes one `step` apart; return [(index, kind, severity)] of the sent ones."""
    state: dict | None = None
    sent = []
    now = start
    for i, status in enumerate(outcomes):
        d = decide(policy, state, status, now, digest_every, **kw)
        state = d.state.to_dict()  # persisted as a dict, exactly as the state store keeps it
        if d.send:
            sent.append((i, d.kind, d.severity))
        now += step
    return sent


def test_smart_sends_first_success_failure_and_recovery_only():
    sent = run_sequence("smart", ["ok", "ok", "failed", "failed", "ok"])
    assert sent == [(0, "first-success", "OK"), (2, "failure", "FAILED"), (4, "recovery", "RECOVERED")]


def test_smart_quiet_on_lasting_success():
    assert run_sequence("smart", ["ok"] * 10) == [(0, "first-success", "OK")]


def test_smart_digest_cadence_during_a_long_failure():
    # a failing run every hour for 3 days, digest every 6 hours
    outcomes = ["ok"] + ["failed"] * 72 + ["ok"]
    sent = run_sequence("smart", outcomes, digest_every=6 * HOUR)
    kinds = [k for _, k, _ in sent]
    assert kinds[0] == "first-success" and kinds[1] == "failure" and kinds[-1] == "recovery"
    digests = [i for i, k, _ in sent if k == "digest"]
    # first failure at index 1, then exactly one digest per 6 hours: 7, 13, ..., 67
    assert digests == list(range(7, 73, 6))
    gaps = {b - a for a, b in zip([1, *digests], digests, strict=False)}
    assert gaps == {6}


def test_digest_never_more_often_than_configured_even_with_frequent_runs():
    # runs every 10 minutes, digest every 24 hours, 2 days of failure
    outcomes = ["failed"] * (6 * 48 + 1)  # 0 h .. 48 h inclusive
    sent = run_sequence("smart", outcomes, step=600.0, digest_every=24 * HOUR)
    assert [k for _, k, _ in sent] == ["failure", "digest", "digest"]


def test_digest_carries_duration_and_streak():
    s = None
    now = 0.0
    for _ in range(5):
        d = decide("smart", s, "failed", now, 2 * HOUR)
        s = d.state
        now += HOUR
    # failures at 0,1,2,3,4 h: sent at 0 (failure), 2 (digest), 4 (digest)
    assert d.send and d.kind == "digest"
    assert d.failing_for == 4 * HOUR and d.streak == 5
    r = decide("smart", s, "ok", now, 2 * HOUR)
    assert r.kind == "recovery" and r.failing_for == 5 * HOUR and r.streak == 5


def test_failures_policy():
    sent = run_sequence("failures", ["ok", "ok", "failed", "failed", "ok", "ok"])
    assert sent == [(2, "failure", "FAILED"), (3, "failure", "FAILED"), (4, "recovery", "RECOVERED")]


def test_always_policy():
    sent = run_sequence("always", ["ok", "failed", "ok"])
    assert [k for _, k, _ in sent] == ["success", "failure", "recovery"]


def test_alarm_subjects_without_first_success_and_critical_severity():
    # disk: quiet while fine, warning, then critical, then back to fine
    sent = run_sequence(
        "smart", ["ok", "ok", "warning", "warning", "critical", "ok"], first_success=False, bad_severity="CRITICAL"
    )
    assert sent == [(2, "warning", "WARNING"), (4, "failure", "CRITICAL"), (5, "recovery", "RECOVERED")]


def test_new_warning_text_is_a_new_event():
    d1 = decide("smart", None, "warning", 0, 1e9, detail="shop is small", first_success=False)
    d2 = decide("smart", d1.state, "warning", 10, 1e9, detail="shop is small", first_success=False)
    d3 = decide("smart", d2.state, "warning", 20, 1e9, detail="shop is small\ncrm is small", first_success=False)
    d4 = decide("smart", d3.state, "warning", 30, 1e9, detail="crm is small", first_success=False)
    assert (d1.send, d2.send, d3.send, d4.send) == (True, False, True, False)


def test_state_round_trips_and_tolerates_garbage():
    st = NotifyState(status="failed", since=1.0, streak=2, last_sent=1.0, last_sent_kind="failure")
    assert NotifyState.from_dict(st.to_dict()) == st
    assert NotifyState.from_dict({"bogus": 1}) == NotifyState()
    assert NotifyState.from_dict(None) == NotifyState()


def test_unknown_policy_and_status_are_errors():
    with pytest.raises(ValueError, match="policy"):
        decide("sometimes", None, "ok", 0, 1)
    with pytest.raises(ValueError, match="status"):
        decide("smart", None, "meh", 0, 1)
