"""A thin wrapper around the `rclone` binary: every byte that leaves the host goes through rclone.

dumpdeck never speaks S3, SFTP or any storage protocol itself. Each function here runs one rclone
command against one destination (`copies.<name>` of the configuration) and turns a failure into a
`CopyError` whose `cause` says in a word what an operator acts on (unreachable, wrong credentials,
full, not found, killed, timed out). Credentials live in rclone's config file (or the
`rclone_config` a destination names); nothing secret is ever put in argv.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .config import CopyDestination
from .errors import CopyError

# Flags placed before a destination's own `options` (rclone keeps the last value of a flag, so the
# configuration can override each): fail fast and let dumpdeck's own retry-with-backoff take over.
DEFAULT_FLAGS = ("--retries", "1", "--low-level-retries", "3", "--contimeout", "15s", "--stats", "0")

TMP_SUFFIX = ".dumpdeck-partial"  # uploads land under this name, then are moved to their final name

POLL = 0.2  # seconds between looks at a Stop while an rclone command runs


@dataclass(frozen=True)
class Stop:
    """When the rclone commands of a thread give up: a cancel (a run being stopped) or a deadline
    (time.monotonic(): what is left of a job's max_runtime). Set with `stopping`."""

    cancels: tuple[threading.Event, ...] = ()  # any of them set: stop
    deadline: float | None = None
    limit: str = "max_runtime"  # what the deadline is, in messages

    def reason(self) -> str | None:
        """Why to stop now ("cancelled", "<limit> spent"), or None."""
        if any(c.is_set() for c in self.cancels):
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return f"{self.limit} spent"
        return None


_STOP: contextvars.ContextVar[Stop | None] = contextvars.ContextVar("rclone_stop", default=None)


@contextlib.contextmanager
def stopping(stop: Stop) -> Iterator[None]:
    """Every rclone command this thread runs inside stops (its process group killed, CopyError with cause
    "cancelled" or "timed out") when `stop` says so, within POLL seconds."""
    token = _STOP.set(stop)
    try:
        yield
    finally:
        _STOP.reset(token)


def check_stop(dest: CopyDestination, what: str) -> None:
    """CopyError now if this thread's Stop says to stop (before an rclone command starts)."""
    stop = _STOP.get()
    why = stop.reason() if stop is not None else None
    if why is not None:
        raise CopyError(f"copies.{dest.name}: {what}: {why}", "cancelled" if why == "cancelled" else "timed out")


_CAUSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "wrong credentials",
        (
            "unable to authenticate",
            "handshake failed",
            "authentication failed",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "accessdenied",
            "access denied",
            "401 unauthorized",
            "403 forbidden",
            "invalid credentials",
        ),
    ),
    (
        "full",
        (
            "no space left",
            "remaining disk space",  # local/SMB: "preallocate: file too big for remaining disk space"
            "quota exceeded",
            "quotaexceeded",
            "disk full",
            "insufficient storage",
            "storage full",
        ),
    ),
    (
        "unreachable",
        (
            "connection refused",
            "no route to host",
            "i/o timeout",
            "no such host",
            "connection reset",
            "couldn't connect",
            "network is unreachable",
            "dial tcp",
            "broken pipe",
            "eof",
        ),
    ),
    ("permission denied", ("permission denied", "read-only file system")),
    (
        "not found",
        (
            "directory not found",
            "object not found",
            "not found",
            "nosuchbucket",
            "nosuchkey",
            "didn't find section in config file",
            "doesn't exist",
            "no such file",
        ),
    ),
)


def classify(stderr: str, rc: int | None) -> str:
    """The cause of an rclone failure, from its exit status and messages."""
    if rc is not None and rc < 0:
        return "killed"
    text = stderr.lower()
    for cause, needles in _CAUSES:
        if any(n in text for n in needles):
            return cause
    return "failed"


def binary() -> str:
    found = shutil.which("rclone")
    if found is None:
        raise CopyError("rclone is not installed (Debian: apt-get install rclone; scripts/bootstrap does it)", "failed")
    return found


def join(dest: CopyDestination, rel: str) -> str:
    """The rclone path of `rel` (server/database/file) at a destination."""
    base = dest.remote
    rel = rel.strip("/")
    if not rel:
        return base
    if base.endswith((":", "/")):
        return base + rel
    return f"{base}/{rel}"


def _argv(dest: CopyDestination, *args: str) -> list[str]:
    argv = [binary()]
    if dest.rclone_config is not None:
        argv += ["--config", str(dest.rclone_config)]
    argv += list(DEFAULT_FLAGS)
    if dest.bwlimit:
        argv += ["--bwlimit", dest.bwlimit]
    argv += list(dest.options)
    argv += list(args)
    return argv


def _summary(stderr: str) -> str:
    """The messages rclone printed, minus its timestamps and the config-file notice."""
    lines = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line or ("Config file" in line and "not found" in line):
            continue
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0].count("/") == 2:  # "2026/11/29 21:57:58 ERROR : …"
            line = parts[2]
        lines.append(line)
    return "; ".join(lines[-3:])[:500] or "no message"


def _env() -> dict[str, str]:
    return dict(os.environ)


def run(dest: CopyDestination, *args: str, what: str, timeout: float | None = None) -> str:
    """Run one rclone command; its stdout, or CopyError naming the destination and the cause. The
    thread's Stop (`stopping`) ends it early."""
    check_stop(dest, what)
    argv = _argv(dest, *args)
    limit = timeout if timeout is not None else dest.timeout
    stop = _STOP.get()
    end = time.monotonic() + limit
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_env(),
        process_group=0,
    )
    try:
        while True:
            left = end - time.monotonic()
            try:
                out, err = proc.communicate(timeout=max(0.0, min(left, POLL) if stop is not None else left))
                break
            except subprocess.TimeoutExpired:
                why = stop.reason() if stop is not None else None
                if why is None and time.monotonic() < end:
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                if why is not None:
                    cause = "cancelled" if why == "cancelled" else "timed out"
                    raise CopyError(f"copies.{dest.name}: {what}: {why}", cause) from None
                raise CopyError(
                    f"copies.{dest.name}: {what}: rclone timed out after {limit:g} s", "timed out"
                ) from None
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        raise
    if proc.returncode != 0:
        text = err.decode(errors="replace")
        cause = classify(text, proc.returncode)
        raise CopyError(f"copies.{dest.name}: {what}: {cause}: {_summary(text)}", cause)
    return out.decode(errors="replace")


# --------------------------------------------------------------------------- the commands


def copyto(dest: CopyDestination, local: Path, rel: str, *, replace: bool = True) -> None:
    """Upload one file under its final name, through a temporary name: nothing partial ever has it.
    `replace=False` when nothing can be at the final name yet (a first try): saves one rclone call."""
    final = join(dest, rel)
    tmp = final + TMP_SUFFIX
    run(dest, "copyto", str(local), tmp, what=f"upload {rel}")
    _move(dest, tmp, final, rel, replace)


def _move(dest: CopyDestination, tmp: str, final: str, rel: str, replace: bool = True) -> None:
    """Move the temporary name onto the final one. An object already there (a copy made again after it
    failed its verification) is deleted first: SFTP cannot rename onto an existing file, and rclone
    would then copy the whole object again instead of renaming it."""
    if replace:
        try:
            run(dest, "deletefile", final, what=f"replace {rel}")
        except CopyError as exc:
            if exc.cause != "not found":
                raise
    run(dest, "moveto", tmp, final, what=f"move {rel}{TMP_SUFFIX} to its name")


def upload_bytes(dest: CopyDestination, data: bytes, rel: str) -> None:
    """Upload small contents (a manifest) through a temporary name (`rclone rcat`, then `moveto`)."""
    check_stop(dest, f"upload {rel}")
    final = join(dest, rel)
    tmp = final + TMP_SUFFIX
    argv = _argv(dest, "rcat", tmp)
    try:
        proc = subprocess.run(
            argv, check=False, input=data, capture_output=True, env=_env(), timeout=dest.timeout, process_group=0
        )
    except subprocess.TimeoutExpired:
        raise CopyError(f"copies.{dest.name}: upload {rel}: rclone timed out", "timed out") from None
    if proc.returncode != 0:
        text = proc.stderr.decode(errors="replace")
        cause = classify(text, proc.returncode)
        raise CopyError(f"copies.{dest.name}: upload {rel}: {cause}: {_summary(text)}", cause)
    _move(dest, tmp, final, rel)


@dataclass(frozen=True)
class RemoteFile:
    rel: str  # path below the destination root
    size: int
    mtime: str


def lsjson(dest: CopyDestination, rel: str = "", *, recursive: bool = True) -> list[RemoteFile]:
    """Files below `rel` at the destination (an empty list when the directory does not exist yet)."""
    args = ["lsjson", "--files-only", "--no-mimetype"]
    if recursive:
        args.append("-R")
    try:
        out = run(dest, *args, join(dest, rel), what=f"list {rel or '/'}")
    except CopyError as exc:
        if exc.cause == "not found":
            return []
        raise
    try:
        items = json.loads(out or "[]")
    except json.JSONDecodeError:
        raise CopyError(f"copies.{dest.name}: rclone lsjson gave unreadable output", "failed") from None
    prefix = rel.strip("/")
    return [
        RemoteFile(f"{prefix}/{i['Path']}" if prefix else i["Path"], int(i.get("Size", 0)), str(i.get("ModTime", "")))
        for i in items
        if not i.get("IsDir")
    ]


def stat(dest: CopyDestination, rel: str) -> RemoteFile | None:
    """One remote file, or None when it is not there."""
    parent, _, name = rel.strip("/").rpartition("/")
    for f in lsjson(dest, parent, recursive=False):
        if f.rel.rpartition("/")[2] == name:
            return f
    return None


def hashsum_sha256(dest: CopyDestination, rel: str) -> str | None:
    """The sha256 the storage itself reports, or None when its backend has no SHA-256."""
    try:
        out = run(dest, "hashsum", "sha256", join(dest, rel), what=f"sha256 of {rel}")
    except CopyError as exc:
        if "not supported" in str(exc).lower() or "unsupported" in str(exc).lower():
            return None
        raise
    first = out.strip().split()
    if not first or len(first[0]) != 64:
        return None
    return first[0].lower()


class Cat:
    """`rclone cat` of one remote file as a readable byte stream; `close()` raises CopyError when it
    did not end well. Nothing is written to local disk."""

    def __init__(self, dest: CopyDestination, rel: str, *, include: str | None = None):
        self.dest = dest
        self.rel = rel
        check_stop(dest, f"read {rel}")
        filters = ["--include", include] if include is not None else []
        self.proc = subprocess.Popen(
            _argv(dest, "cat", *filters, join(dest, rel)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=_env(),
            process_group=0,
        )
        assert self.proc.stdout is not None
        self.stdout: IO[bytes] = self.proc.stdout
        self._err = b""
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()
        self._why: str | None = None  # the thread's Stop ended the read
        stop = _STOP.get()
        if stop is not None:
            threading.Thread(target=self._watch, args=(stop,), daemon=True).start()

    def _watch(self, stop: Stop) -> None:
        while self.proc.poll() is None:
            why = stop.reason()
            if why is not None:
                self._why = why
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                return
            time.sleep(POLL)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        self._err = self.proc.stderr.read()

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        while True:
            chunk = self.stdout.read(size)
            if not chunk:
                return
            yield chunk

    def close(self, check: bool = True) -> None:
        if not check and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.stdout.close()
        rc = self.proc.wait()
        self._t.join()
        if check and self._why is not None:
            cause = "cancelled" if self._why == "cancelled" else "timed out"
            raise CopyError(f"copies.{self.dest.name}: read {self.rel}: {self._why}", cause)
        if check and rc != 0:
            text = self._err.decode(errors="replace")
            cause = classify(text, rc)
            raise CopyError(f"copies.{self.dest.name}: read {self.rel}: {cause}: {_summary(text)}", cause)


def read_bytes(dest: CopyDestination, rel: str, limit: int = 64 << 20, *, include: str | None = None) -> bytes:
    """A small remote file (a manifest), read whole; with `include`, every file below `rel` matching that
    rclone filter pattern, concatenated (one rclone call for all the manifests of a destination)."""
    c = Cat(dest, rel, include=include)
    buf = bytearray()
    try:
        for chunk in c.chunks():
            buf += chunk
            if len(buf) > limit:
                raise CopyError(f"copies.{dest.name}: {rel} is larger than {limit} bytes", "failed")
    except BaseException:
        c.close(check=False)
        raise
    c.close()
    return bytes(buf)


def deletefile(dest: CopyDestination, rel: str) -> None:
    run(dest, "deletefile", join(dest, rel), what=f"delete {rel}")
