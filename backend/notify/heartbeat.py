"""Push heartbeat: after every run, ping a monitor (healthchecks.io style) — URL on success, URL/fail on failure.

A dead-man's switch from the outside: when dumpdeck stops running (cron gone, host down), the pings
stop and the monitor raises the alarm. Skipped and cancelled runs say nothing about health and send
no ping. Each ping is retried with a growing delay; the URL is a secret (its token is the path), so
logs and errors show only scheme and host. The body is a one-line summary, never a secret.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from dumpdeck import __version__

from ..config import Config, HeartbeatConfig, redact_url
from ..state import Run

log = logging.getLogger("dumpdeck.heartbeat")

FIRST_DELAY = 1.0  # seconds before the first retry; doubles each time


@dataclass(frozen=True)
class Ping:
    ok: bool  # the monitor answered 2xx
    attempts: int
    error: str | None = None


def url_for(cfg: HeartbeatConfig, success: bool) -> str:
    """healthchecks.io convention: the check URL for success, URL/fail for a failure."""
    return cfg.url if success else cfg.url.rstrip("/") + "/fail"


def ping(cfg: HeartbeatConfig, success: bool, summary: str = "", *, first_delay: float = FIRST_DELAY) -> Ping:
    """POST the summary to the heartbeat URL (or URL/fail), retrying `cfg.retries` times. Never raises."""
    url = url_for(cfg, success)
    where = f"heartbeat {redact_url(url)}{'' if success else ' (fail)'}"
    data = summary.encode("utf-8", "replace")[:10_000]
    error = None
    for attempt in range(1 + cfg.retries):
        if attempt:
            time.sleep(first_delay * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"User-Agent": f"dumpdeck/{__version__}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=cfg.timeout) as resp:
                resp.read(1024)
                if 200 <= resp.status < 300:
                    log.info("%s: pinged (attempt %d)", where, attempt + 1)
                    return Ping(True, attempt + 1)
                error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            error = str(getattr(reason, "strerror", None) or reason)
        error = error.replace(cfg.url, redact_url(cfg.url))
        log.warning("%s: attempt %d of %d failed: %s", where, attempt + 1, 1 + cfg.retries, error)
    return Ping(False, 1 + cfg.retries, f"{where}: {error}")


def for_run(config: Config, run: Run) -> Ping | None:
    """The ping for a finished run: success for `succeeded`, /fail for failed, timed-out or lost;
    none for skipped or cancelled runs, or without notify.heartbeat."""
    cfg = config.notify.heartbeat
    if cfg is None or run.status in ("skipped", "cancelled", "queued", "running"):
        return None
    success = run.status == "succeeded"
    summary = f"dumpdeck run {run.id} ({run.job} on {run.server}) {run.status}"
    if not success and run.reason:
        summary += f": {' '.join(str(run.reason).split())[:500]}"
    return ping(cfg, success, summary)
