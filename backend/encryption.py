"""Encryption at rest with age: recipients, identities, and the `age` binary's command lines.

A dump is encrypted after compression, in the same pipeline (backend.codecs chains the
compressor into `age`): `<db>-<stamp>.sql.zst.age`. It is encrypted to public-key *recipients*
(`age1…`, or an OpenSSH public key), so the host that makes backups cannot read them. Reading
one (L2/L3 re-verification, restore-test, restore) needs an *identity* file, which belongs off
the database host.

Why the `age` binary (Debian's `age`) and not pyrage: it runs in its own process, so encryption
never competes with the dump's read loop for the GIL (pyrage holds it and reads 8 KiB at a time:
716 MB/s alone, 84 MB/s beside one busy Python thread on the reference machine); the identity's
secret key never enters dumpdeck's memory (age reads the file itself; only its *path* is in
argv); recipients reach age through a pipe (`-R /dev/fd/N`), not argv; and it is the tool an
operator decrypts with by hand: `age -d -i key.txt f.sql.zst.age | zstd -d`.

The identity file in use is process-wide (`use_identity`), set once where the configuration is
loaded (the CLI, the runner), like the captured secret variables of backend.secretenv: every
reader of a dump (backend.codecs.open_decoded) finds it there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, DecryptKeyError, DumpError

MAGIC = b"age-encryption.org/v1\n"
EXTENSION = ".age"
# An X25519 recipient (bech32, 58 characters after the prefix) or an OpenSSH public key.
_RECIPIENT = re.compile(r"^(age1[02-9ac-hj-np-z]{58}|ssh-ed25519 [A-Za-z0-9+/=]+|ssh-rsa [A-Za-z0-9+/=]+)(?: .*)?$")
_SECRET = re.compile(r"AGE-SECRET-KEY-|PRIVATE KEY", re.I)

_IDENTITY: dict[str, Path] = {}  # "file": the identity file in use (process-wide, see use_identity)


@dataclass(frozen=True)
class Recipients:
    """The public keys a dump is encrypted to, with where they came from (for messages)."""

    keys: tuple[str, ...]
    source: str  # "encryption.recipients", "jobs.nightly.encryption.recipients_file /etc/…"

    @property
    def fingerprints(self) -> list[str]:
        return [fingerprint(k) for k in self.keys]

    def manifest_record(self, version: str) -> dict[str, object]:
        """What the manifest keeps: the recipients (public) and their fingerprints; never a secret."""
        return {
            "method": "age",
            "tool": version,
            "recipients": list(self.keys),
            "fingerprints": self.fingerprints,
        }


def fingerprint(recipient: str) -> str:
    """A short, stable name for a recipient: sha256 of its key text, 16 hex digits."""
    key = " ".join(recipient.split()[:2])  # an ssh key's comment is not part of it
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def parse_recipients(lines: Iterable[str], where: str) -> tuple[str, ...]:
    """Recipients from config values or a recipients file's lines (`#` comments, blank lines skipped).
    A secret key given as a recipient is refused without echoing it."""
    out: list[str] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _SECRET.search(line):
            raise ConfigError(
                f"{where}, entry {n}: this is a secret key (an identity), not a recipient; "
                "give the public key (`age-keygen -y IDENTITY` prints it) and keep the identity off this host"
            )
        if not _RECIPIENT.match(line):
            shown = line[:12] + ("…" if len(line) > 12 else "")
            raise ConfigError(
                f"{where}, entry {n}: {shown!r} is not an age recipient (age1… from age-keygen) "
                "or an OpenSSH public key (ssh-ed25519 …, ssh-rsa …)"
            )
        out.append(line)
    return tuple(dict.fromkeys(out))


def recipients_from(keys: tuple[str, ...], keys_file: Path | None, where: str) -> Recipients | None:
    """The recipients of a config section (`recipients` and/or `recipients_file`); None when it names none."""
    found = list(parse_recipients(keys, f"{where}.recipients"))
    source = f"{where}.recipients"
    if keys_file is not None:
        try:
            text = keys_file.read_text()
        except OSError as exc:
            raise ConfigError(f"{where}.recipients_file {keys_file}: cannot read: {exc.strerror}") from None
        from_file = parse_recipients(text.splitlines(), f"{where}.recipients_file {keys_file}")
        if not from_file:
            raise ConfigError(f"{where}.recipients_file {keys_file}: names no recipient")
        found += from_file
        source = f"{where}.recipients_file {keys_file}" if len(found) == len(from_file) else f"{where}"
    if not found:
        return None
    return Recipients(tuple(dict.fromkeys(found)), source)


# --------------------------------------------------------------------------- the identity in use


def use_identity(path: Path | None) -> None:
    """Set the identity file every reader of an encrypted dump uses in this process (None: none)."""
    _IDENTITY.pop("file", None)
    if path is not None:
        _IDENTITY["file"] = Path(path)


def identity_file() -> Path | None:
    return _IDENTITY.get("file")


def codec_label(codec: str | None, encrypted: bool) -> str:
    """What lists show for a dump's format: `zstd`, or `zstd+age` when it is age-encrypted ("" unknown)."""
    if not encrypted:
        return codec or ""
    return f"{codec}+age" if codec else "age"


def is_encrypted(path: Path | str) -> bool:
    """The file starts with age's header (a `.age` name alone proves nothing)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return str(path).removesuffix(".partial").endswith(EXTENSION)


def require_identity(path: Path) -> Path:
    """The identity to decrypt `path` with; DecryptKeyError (not checked, never failed) when there is none
    or it cannot be read."""
    ident = identity_file()
    if ident is None:
        raise DecryptKeyError(
            f"{path.name} is encrypted with age and no encryption.identity_file is configured: "
            "it cannot be decoded here (L1 needs no key; L2, L3 and restores need the identity)"
        )
    if not os.access(ident, os.R_OK):
        why = "does not exist" if not ident.exists() else "is not readable by this user"
        raise DecryptKeyError(f"{path.name} is encrypted with age; encryption.identity_file {ident} {why}")
    return ident


# --------------------------------------------------------------------------- the age binary


def age_binary() -> str:
    found = shutil.which("age")
    if not found:
        raise DumpError("age is not installed; install it with: apt-get install -y age")
    return found


@functools.lru_cache(maxsize=1)
def age_version() -> str:
    try:
        out = subprocess.run([age_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired, DumpError):
        return "age"
    return "age " + (out.stdout.strip() or "unknown")


@contextlib.contextmanager
def recipients_fd(recipients: Recipients) -> Iterator[int]:
    """A pipe whose read end holds the recipients file text, for `age -R /dev/fd/N` (not argv)."""
    r, w = os.pipe()
    try:
        data = ("\n".join(recipients.keys) + "\n").encode()
        os.write(w, data)  # a few hundred bytes: fits the pipe buffer
        os.close(w)
        w = -1
        yield r
    finally:
        if w >= 0:
            os.close(w)
        with contextlib.suppress(OSError):
            os.close(r)


def encrypt_argv() -> list[str]:
    """`age --encrypt -R`: the recipients file (`/dev/fd/N` of `recipients_fd`) is appended."""
    return [age_binary(), "--encrypt", "-R"]


def decrypt_argv(identity: Path, path: Path | None) -> list[str]:
    """The identity's path (never its content) and the dump's path; without a path, age reads its stdin
    (a remote copy streamed through rclone cat)."""
    return [age_binary(), "--decrypt", "-i", str(identity), *(["--", str(path)] if path is not None else [])]


def decrypt_failure(path: Path, identity: Path | None, rc: int, stderr: str) -> Exception:
    """What an `age -d` that exited non-zero means: a key problem (DecryptKeyError: not checked, nothing
    is condemned) or a damaged file (the caller's StreamError)."""
    lines = [ln.removeprefix("age: error: ").strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("age: report")]
    msg = "; ".join(lines).replace(str(path), path.name) or f"exit {rc}"
    if "no identity matched" in msg or (identity is not None and str(identity) in msg):
        return DecryptKeyError(
            f"cannot decrypt {path.name} with encryption.identity_file {identity}: {msg} "
            "(the manifest lists the recipients it was encrypted to)"
        )
    return DumpError(msg)
