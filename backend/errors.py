"""One exception hierarchy; every message names the file, key, server or database at fault.

Every error the engine reports to a user is a `DumpdeckError`; its `exit_code` is what the CLI
exits with (1 failed, 2 usage or configuration, 3 locked). The CLI prints the message without
a traceback; the console shows it in a toast or modal. Only "could not run" errors live here:
a check that ran and failed is a verdict (a value), never an exception.
"""

from __future__ import annotations


class DumpdeckError(Exception):
    """Base of every error the engine reports to a user."""

    exit_code = 1


# --------------------------------------------------------------------------- usage and configuration


class ConfigError(DumpdeckError):
    """The configuration file is missing, malformed or invalid."""

    exit_code = 2


class UsageError(DumpdeckError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class LockedError(DumpdeckError):
    """A job is already running under its lock."""

    exit_code = 3


# --------------------------------------------------------------------------- servers and dumps


class ConnectError(DumpdeckError):
    """A server could not be reached or refused the credentials.

    `cause` says why in a word or two an operator acts on: wrong password, refused, DNS, TLS,
    timeout, no socket, … (see mysql.connect_cause)."""

    def __init__(self, message: str, cause: str = "unreachable"):
        super().__init__(message)
        self.cause = cause


class PrivilegeError(DumpdeckError):
    """The account lacks a privilege a dump needs."""


class DumpError(DumpdeckError):
    """A dump failed; the message carries the reason."""


class ParallelUnavailable(DumpError):
    """A parallel dump could not prove one snapshot (or does not apply); the dump runs as one stream.
    `quiet`: nothing went wrong (the tables make one unit of work): the log says it, not a warning."""

    def __init__(self, message: str, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet


class CancelledError(DumpError):
    """A dump was cancelled by the user or a signal."""


class TimeoutError_(DumpError):
    """A dump exceeded its wall-clock or stall timeout."""


class StallError(TimeoutError_):
    """A dump wrote nothing for its stall timeout (a stall, not the wall clock or the job's budget)."""


class StreamError(DumpdeckError):
    """A compressed stream does not decode: truncated or corrupt."""


class DecryptKeyError(DumpdeckError):
    """An encrypted dump cannot be decrypted here: no identity configured, unreadable, or not one of its
    recipients. The dump is not condemned: checks that need the plaintext are *not checked*."""


# --------------------------------------------------------------------------- files and state


class ManifestError(DumpdeckError):
    """A manifest is missing, unreadable or malformed."""


class StateError(DumpdeckError):
    """The state database cannot be opened or is from a newer dumpdeck."""


# --------------------------------------------------------------------------- verification and loading


class VerifyError(DumpdeckError):
    """Verification could not run (not: a check failed)."""


class LoadError(DumpdeckError):
    """The client failed to load part of the dump."""


class ScopeError(LoadError):
    """The dump would write outside the scratch database."""


class MappingError(DumpdeckError):
    """A dump names databases in a way no single target can take (backend.rewrite)."""


class RestoreError(DumpdeckError):
    """A restore was refused or failed; the message says what, where, and that the target is as it was."""


class RestoreRefused(RestoreError):
    """A restore refused before anything was changed."""


class SandboxError(DumpdeckError):
    """The sandbox server could not be created, started or stopped."""


class MissingBinaryError(SandboxError):
    """mariadbd or mariadb-install-db is not installed."""

    exit_code = 2


# --------------------------------------------------------------------------- around the engine


class NotifyError(DumpdeckError):
    """A notification could not be delivered (the message names the channel and why)."""


class DemoError(DumpdeckError):
    """The demo could not be set up, shared or stopped."""


class CheckUnknown(DumpdeckError):
    """`dumpdeck check` cannot evaluate (unreadable state or backups): Nagios UNKNOWN."""

    exit_code = 3


class Untranslatable(ValueError):
    """A cron expression with no exact systemd OnCalendar equivalent (`schedule install --systemd` says which)."""


# --------------------------------------------------------------------------- off-host copies


class CopyError(DumpdeckError):
    """An rclone command against a copy destination failed.

    `cause` says why in a word or two an operator acts on: unreachable, wrong credentials, full,
    not found, killed, timed out, failed (see backend.rclone.classify)."""

    def __init__(self, message: str, cause: str = "failed"):
        super().__init__(message)
        self.cause = cause
