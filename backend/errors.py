"""One exception hierarchy; every message names the file, key, server or database at fault."""

from __future__ import annotations


class DumpdeckError(Exception):
    """Base of every error the engine reports to a user."""

    exit_code = 1


class ConfigError(DumpdeckError):
    """The configuration file is missing, malformed or invalid."""

    exit_code = 2


class UsageError(DumpdeckError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class ConnectError(DumpdeckError):
    """A server could not be reached or refused the credentials."""


class PrivilegeError(DumpdeckError):
    """The account lacks a privilege a dump needs."""


class DumpError(DumpdeckError):
    """A dump failed; the message carries the reason."""


class CancelledError(DumpError):
    """A dump was cancelled by the user or a signal."""


class TimeoutError_(DumpError):
    """A dump exceeded its wall-clock or stall timeout."""


class VerifyError(DumpdeckError):
    """Verification could not run (not: a check failed)."""


class LockedError(DumpdeckError):
    """A job is already running under its lock."""

    exit_code = 3
