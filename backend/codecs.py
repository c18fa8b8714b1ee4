"""Compressed streams: zstd (default), gzip, xz and none.

Encoding: zstd runs in-process through the `zstandard` package (it releases
the GIL and saves a pipe hop: measured 1.0x of `mariadb-dump | zstd`); gzip and
xz run their binaries (pigz when present), fed from a pipe. The stored bytes
pass through a `HashingSink` that counts them and computes their sha256, so
the checksum is that of the file as stored, which is what L1 verification reads.

Decoding always runs the codec's own binary (`zstd -dc`, `gzip -dc`, `xz -dc`):
their exit codes catch truncation and corruption, which the zstandard
stream reader silently accepts.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, cast

from .errors import DumpError, StreamError


class Codec(StrEnum):
    """How a dump is compressed; the value is what `backup.compression` and manifests say."""

    ZSTD = "zstd"
    GZIP = "gzip"
    XZ = "xz"
    NONE = "none"

    @property
    def extension(self) -> str:
        return EXTENSIONS[self]


EXTENSIONS: dict[str, str] = {Codec.ZSTD: ".zst", Codec.GZIP: ".gz", Codec.XZ: ".xz", Codec.NONE: ""}
MAGIC = {b"\x28\xb5\x2f\xfd": Codec.ZSTD, b"\x1f\x8b": Codec.GZIP, b"\xfd7zXZ\x00": Codec.XZ}


def codec_for_path(path: Path | str) -> Codec:
    name = str(path)
    if name.endswith(".partial"):
        name = name[: -len(".partial")]
    if name.endswith(".zst"):
        return Codec.ZSTD
    if name.endswith(".gz"):
        return Codec.GZIP
    if name.endswith(".xz"):
        return Codec.XZ
    return Codec.NONE


def sniff_codec(path: Path) -> Codec | None:
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError:
        return None
    for magic, codec in MAGIC.items():
        if head.startswith(magic):
            return codec
    return Codec.NONE


class HashingSink:
    """Counts and hashes the bytes written to a file."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        self.f.write(data)
        return len(data)

    def flush(self) -> None:
        self.f.flush()


class Encoder:
    """write(raw bytes) … close(); errors raise DumpError naming the codec."""

    codec: str = Codec.NONE

    def __init__(self, sink: HashingSink):
        self.sink = sink

    def write(self, data: bytes | memoryview) -> None:
        self.sink.write(data)

    def close(self) -> None:
        self.sink.flush()

    def abort(self) -> None:
        pass

    @property
    def pids(self) -> list[int]:
        return []


class ZstdEncoder(Encoder):
    codec = Codec.ZSTD

    def __init__(self, sink: HashingSink, level: int, threads: int):
        super().__init__(sink)
        import zstandard

        # threads=1 is one worker thread: compression runs beside the thread that reads the pipe
        params = zstandard.ZstdCompressor(level=level, threads=max(1, threads), write_checksum=True)
        # the sink is duck-typed: zstandard calls its write() and flush() only
        self._writer = params.stream_writer(cast(IO[bytes], sink), closefd=False, write_size=1 << 20)

    def write(self, data: bytes | memoryview) -> None:
        self._writer.write(data)

    def close(self) -> None:
        import zstandard

        try:
            self._writer.flush(zstandard.FLUSH_FRAME)
            self._writer.close()  # type: ignore[no-untyped-call]  # unannotated in zstandard's stub
        except zstandard.ZstdError as exc:
            raise DumpError(f"zstd compression failed: {exc}") from None
        self.sink.flush()

    def abort(self) -> None:
        try:
            self._writer.close()  # type: ignore[no-untyped-call]  # unannotated in zstandard's stub
        except Exception:
            pass


class ProcessEncoder(Encoder):
    """gzip / xz binaries: raw bytes into their stdin, their stdout into the sink."""

    def __init__(self, sink: HashingSink, codec: str, argv: list[str], preexec: Callable[[], None] | None = None):
        super().__init__(sink)
        self.codec = codec
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec,  # noqa: PLW1509 -- prctl(PR_SET_PDEATHSIG) only; nothing that takes a lock
            close_fds=True,
        )
        self._error: BaseException | None = None
        self._pump = threading.Thread(target=self._drain, name=f"{codec}-drain", daemon=True)
        self._pump.start()
        self._stderr = b""
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        read = cast(io.BufferedReader, self.proc.stdout).read1  # a binary pipe is buffered
        try:
            while True:
                chunk = read(1 << 20)
                if not chunk:
                    break
                self.sink.write(chunk)
        except BaseException as exc:  # disk full surfaces here
            self._error = exc
            self.proc.kill()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr = self.proc.stderr.read()

    def write(self, data: bytes | memoryview) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError:
            self._pump.join()
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._raise(f"{self.codec} stopped reading its input")
            self._raise(exit_text(self.codec, rc) if rc else f"{self.codec} stopped reading its input")

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait()
        self._pump.join()
        self._stderr_thread.join()
        if self._error is not None or rc != 0:
            self._raise(exit_text(self.codec, rc))
        self.sink.flush()

    def _raise(self, what: str) -> None:
        if isinstance(self._error, OSError):
            raise DumpError(f"writing the dump file failed: {self._error.strerror}") from None
        err = self._stderr.decode(errors="replace").strip()
        raise DumpError(f"{what}" + (f": {err}" if err else "")) from None

    def abort(self) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._pump.join(timeout=5)

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]


def exit_text(name: str, rc: int) -> str:
    """How a child process ended, for a reason line: killed by a signal, or its exit code."""
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = str(-rc)
        return f"{name} was killed by signal {sig}"
    return f"{name} exited with code {rc}"


def make_encoder(
    codec: str, level: int, threads: int, sink: HashingSink, preexec: Callable[[], None] | None = None
) -> Encoder:
    if codec == "zstd":
        return ZstdEncoder(sink, level, threads)
    if codec == "gzip":
        pigz = shutil.which("pigz")
        if pigz and threads > 1:
            argv = [pigz, f"-{level}", "--processes", str(threads), "-c"]
        else:
            argv = [_require("gzip"), f"-{level}", "-c", "-n"]
        return ProcessEncoder(sink, "gzip", argv, preexec)
    if codec == "xz":
        return ProcessEncoder(sink, "xz", [_require("xz"), f"-{level}", f"-T{max(1, threads)}", "-c"], preexec)
    if codec == "none":
        return Encoder(sink)
    raise DumpError(f"unknown compression {codec!r}")


def _require(binary: str) -> str:
    found = shutil.which(binary)
    if not found:
        pkg = {"zstd": "zstd", "xz": "xz-utils", "gzip": "gzip"}.get(binary, binary)
        raise DumpError(f"{binary} is not installed; install it with: apt-get install -y {pkg}")
    return found


# --------------------------------------------------------------------------- decoding


class DecodedStream:
    """A readable decoded stream over a dump file; `close()` raises StreamError if it did not decode."""

    def __init__(self, path: Path, codec: str):
        self.path = Path(path)
        self.codec = codec
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr = b""
        if codec == "none":
            self._f: io.BufferedReader = open(self.path, "rb")  # noqa: SIM115 -- closed by close()
        else:
            argv = {
                "zstd": [_require("zstd"), "-dc", "-q", "--no-progress"],
                "gzip": [_require("gzip"), "-dc"],
                "xz": [_require("xz"), "-dc", "-T0"],
            }[codec] + ["--", str(self.path)]
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
            self._f = cast(io.BufferedReader, self.proc.stdout)  # a binary pipe is buffered
            self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
            self._stderr_thread.start()
        self.raw_bytes = 0

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self._stderr = self.proc.stderr.read()

    def read(self, n: int = 1 << 20) -> bytes:
        chunk = self._f.read1(n)
        self.raw_bytes += len(chunk)
        return chunk

    def fileno(self) -> int:
        return self._f.fileno()

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        while True:
            chunk = self.read(size)
            if not chunk:
                return
            yield chunk

    def close(self, check: bool = True) -> None:
        """Wait for the decoder; StreamError names what went wrong."""
        if self.proc is None:
            self._f.close()
            return
        if not check:
            self.proc.kill()
        self._f.close()
        rc = self.proc.wait()
        self._stderr_thread.join()
        if check and rc != 0:
            err = self._stderr.decode(errors="replace").replace(str(self.path), self.path.name)
            err = "; ".join(line.strip() for line in err.splitlines() if line.strip())
            raise StreamError(f"{self.codec} stream does not decode (exit {rc}): {err or 'no message'}")

    def __enter__(self) -> DecodedStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(check=exc_type is None)


def open_decoded(path: Path, codec: str | None = None) -> DecodedStream:
    return DecodedStream(Path(path), codec or codec_for_path(path))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
