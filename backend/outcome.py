"""The three verdicts of a check and of a verification run: passed, failed, not checked.

- PASSED: the check ran and proved what it names.
- FAILED: the check ran and the dump is bad. Only this condemns a dump (retention may delete it,
  the catalog flags it, notifications call it a failure).
- NOT_CHECKED: the check could not run (the restore-test target is down, no space, cancelled,
  no decryption key, no manifest to compare a checksum with). It proves nothing either way: the
  dump keeps the level it had, and retention keeps it.

A run's outcome combines its checks: any FAILED → FAILED; else any NOT_CHECKED → NOT_CHECKED;
else PASSED. Exit codes of `verify`/`restore-test`: 0 passed, 1 failed, 4 not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

EXIT_NOT_CHECKED = 4  # the requested level was not proven, but nothing was found wrong


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not_checked"

    @classmethod
    def of(cls, value: Outcome | bool | str | None) -> Outcome:
        """An Outcome from what older code and older manifests hold: True/False, a string."""
        if isinstance(value, Outcome):
            return value
        if value is True:
            return cls.PASSED
        if value is False:
            return cls.FAILED
        if value is None:
            return cls.NOT_CHECKED
        text = str(value).strip().lower().replace(" ", "_").replace("-", "_")
        return cls(text)

    @classmethod
    def combine(cls, outcomes: Iterable[Outcome]) -> Outcome:
        """FAILED if any failed; else NOT_CHECKED if any was not checked (or there were none); else PASSED."""
        seen = set(outcomes)
        if cls.FAILED in seen:
            return cls.FAILED
        if cls.NOT_CHECKED in seen or not seen:
            return cls.NOT_CHECKED
        return cls.PASSED

    @property
    def label(self) -> str:
        """For people: 'passed', 'FAILED', 'not checked'."""
        return {"passed": "passed", "failed": "FAILED", "not_checked": "not checked"}[self.value]

    @property
    def mark(self) -> str:
        """One character for a checklist: ✓ passed, ✗ failed, ? not checked (never a tick)."""
        return {"passed": "✓", "failed": "✗", "not_checked": "?"}[self.value]

    @property
    def tone(self) -> str:
        """ok | bad | warn: the colour family a front end uses."""
        return {"passed": "ok", "failed": "bad", "not_checked": "warn"}[self.value]

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed, 4 not checked."""
        return {"passed": 0, "failed": 1, "not_checked": EXIT_NOT_CHECKED}[self.value]
