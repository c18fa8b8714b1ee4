"""Secret environment variables, kept out of every child process.

The variables that hold secrets (each `password_env` of the config, and MYSQL_PWD) are captured
once, when the CLI or the runner has loaded its config (`credentials.capture_env_secrets`): their
values move into this process's memory and the variables leave `os.environ`, so no child process
inherits them. `env_secret` reads a captured value (or, before the capture, the environment). A
detached runner receives them through a pipe (`credentials.send_secrets` / `receive`).

This module imports nothing of dumpdeck: the configuration reads passwords through it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable

ALWAYS_SECRET = ("MYSQL_PWD",)
_CAPTURED: dict[str, str] = {}


def capture(names: Iterable[str]) -> None:
    """Move these variables from the environment into this process's memory."""
    for name in names:
        value = os.environ.pop(name, None)
        if value is not None:
            _CAPTURED[name] = value


def env_secret(name: str) -> str | None:
    """The value of a secret variable: captured at start, else (not captured yet) the environment."""
    if name in _CAPTURED:
        return _CAPTURED[name]
    return os.environ.get(name)


def scrubbed_env(drop: Iterable[str | None] = ()) -> dict[str, str]:
    """This process's environment without a secret variable (MYSQL_*, the captured ones, `drop`)."""
    names = set(_CAPTURED) | {n for n in drop if n}
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("MYSQL_")}


def receive(fd: int) -> None:
    """Read the variables a parent wrote to this pipe (JSON) and close it."""
    chunks = []
    with contextlib.suppress(OSError):
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    with contextlib.suppress(OSError):
        os.close(fd)
    if chunks:
        for name, value in json.loads(b"".join(chunks)).items():
            _CAPTURED[str(name)] = str(value)
