"""Compressed streams: zstd (default), gzip, xz and none.

Encoding: zstd runs in-process through the `zstandard` package (it releases
the GIL and saves a pipe hop: measured 1.0x of `mariadb-dump | zstd`); gzip and
xz run their binaries (pigz when present), fed from a pipe. The stored bytes
pass through a `HashingSink` that counts them and computes their sha256, so
the checksum is that of the file as stored, which is what L1 verification reads.

Decoding always runs the codec's own binary (`zstd -dc`, `gzip -dc`, `xz -dc`):
their exit codes catch truncation and corruption, which the zstandard
stream reader silently accepts.

Encryption at rest (backend.encryption) is one more stage of the same chain:
raw SQL → `PlainTap` (sha256 of the SQL, head and tail for the in-stream L2) →
compressor → `age` → `HashingSink` → file, so no plaintext reaches the disk.
`open_decoded` undoes it for every reader: a file that starts with age's header
is decrypted (`age -d -i IDENTITY | zstd -dc`, both exit codes checked) with the
process's identity file; without one it raises DecryptKeyError (not checked).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import os
import shutil
import signal
import subprocess
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, cast

from . import encryption
from .errors import DecryptKeyError, DumpError, StreamError


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
    """The compression a file's name says (`.sql.zst.age`: zstd, under age encryption)."""
    name = str(path)
    if name.endswith(".partial"):
        name = name[: -len(".partial")]
    name = name.removesuffix(encryption.EXTENSION)
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
    if head == encryption.MAGIC[:6] and encryption.is_encrypted(path):
        return codec_for_path(path)  # age hides the compression: the name (or the manifest) tells it
    for magic, codec in MAGIC.items():
        if head.startswith(magic):
            return codec
    return Codec.NONE


class Sink(Protocol):
    """Where an encoder writes: a HashingSink, or the next stage of a chain (age)."""

    def write(self, data: bytes | memoryview) -> int: ...

    def flush(self) -> None: ...


WRITEBACK = 16 << 20  # bytes between two requests to start writing the file back to disk


@functools.lru_cache(maxsize=1)
def _sync_file_range() -> Callable[..., int] | None:
    import ctypes

    try:
        fn = ctypes.CDLL("libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux/glibc: the final fsync does all the work
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[..., int], fn)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range of a file to disk, without waiting for it
    (sync_file_range SYNC_FILE_RANGE_WRITE): the dump's final fsync then finds little left to do."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; a failure only leaves it to the fsync


class HashingSink:
    """Counts and hashes the bytes written to a file, and starts their writeback every WRITEBACK
    bytes (the fsync at the end of a 300 MB dump took 0.5 s of its wall time; now the disk writes
    while the dump runs)."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.sha = hashlib.sha256()
        self.bytes = 0
        self._base = f.tell() if f.seekable() else 0  # the file offset of the first byte written here
        self._synced = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        self.f.write(data)
        if self.bytes - self._synced >= WRITEBACK:
            self.f.flush()
            start_writeback(self.f.fileno(), self._base + self._synced, self.bytes - self._synced)
            self._synced = self.bytes
        return len(data)

    def flush(self) -> None:
        self.f.flush()


class Encoder:
    """write(raw bytes) … close(); errors raise DumpError naming the codec."""

    codec: str = Codec.NONE

    def __init__(self, sink: Sink):
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

    @property
    def frame_levels(self) -> dict[int, int]:
        """zstd frames written per compression level (FrameWriter); empty for the other codecs."""
        return {}


# Raw bytes per zstd frame. bench/zstd_frames (issue-shape SQL, level 3): 1 MiB frames cost 0.70-0.76x the CPU
# of `zstd -3 -T1` for 0.99x its bytes; 4 MiB frames 3-5% more CPU, 0.3-0.9% fewer bytes; 512 KiB 4% less CPU
# alone but no faster in bench/dump_throughput --alt-frame 512K (and 1.6% more bytes there).
FRAME = 1 << 20

_frame_ctx = threading.local()


def compress_frame(level: int, data: bytes | bytearray | memoryview) -> bytes:
    """`data` as one zstd frame (with its checksum); one compressor per thread and level.

    One-shot compression of a contiguous buffer costs 10-30% less CPU than the streaming
    compressor (whose wrapping window takes zstd's slower external-dictionary path), for the same
    size within 1% at level 3 (whose window, 2 MiB, is smaller than a frame)."""
    import zstandard

    cctxs: dict[int, zstandard.ZstdCompressor] | None = getattr(_frame_ctx, "cctxs", None)
    if cctxs is None:
        cctxs = _frame_ctx.cctxs = {}
    cctx = cctxs.get(level)
    if cctx is None:  # kept per level: backup.adaptive_level's probes take two levels in turn
        cctx = cctxs[level] = zstandard.ZstdCompressor(level=level, write_checksum=True)
    try:
        out: bytes = cctx.compress(data)
    except zstandard.ZstdError as exc:
        raise DumpError(f"zstd compression failed: {exc}") from None
    return out


# backup.adaptive_level: every PROBE_EVERY-th frame is compressed at both the configured level and level
# 1 and the smaller kept; the frames up to the next probe take level 1 when it was no larger. zstd's
# levels 2-15 take any match they find; in digits, hex and other high-entropy text (sysbench's rows,
# hashes, UUIDs) short chance matches cost more bits than the literals they replace, and level 3's
# output is larger than level 1's at three times the CPU (bench/zstd_frames --levels). In prose and
# markup level 3 wins and keeps every frame but the probes.
PROBE_EVERY = 16
CHEAP_LEVEL = 1


def probe_frame(level: int, data: bytes | bytearray | memoryview) -> tuple[bytes, bool]:
    """`data` at `level` and at CHEAP_LEVEL: the smaller frame, and whether CHEAP_LEVEL's was no larger."""
    full = compress_frame(level, data)
    cheap = compress_frame(CHEAP_LEVEL, data)
    return (cheap, True) if len(cheap) <= len(full) else (full, False)


class FrameWriter:
    """Raw bytes cut into FRAME-sized zstd frames, compressed one-shot by a pool of `threads`
    threads (they release the GIL) while the caller reads on, and written to the sink in order.
    zstd frames concatenate into one valid stream: `zstd -dc` reads the file as any other.
    `adaptive`: level 1 between probes that found it no larger than `level` (PROBE_EVERY)."""

    def __init__(
        self,
        sink: Sink,
        level: int,
        threads: int,
        frame: int | None = None,
        pool: ThreadPoolExecutor | None = None,
        adaptive: bool = False,
    ):
        self.sink = sink
        self.level = level
        self.adaptive = adaptive and level > CHEAP_LEVEL
        self.cheap = False  # the last probe found level 1 no larger: the frames up to the next probe take it
        self.levels: Counter[int] = Counter()  # frames written per level
        self.frame = frame or FRAME  # read now, not at import: bench/dump_throughput --alt-frame sets it
        # a pool shared with other writers (the parallel dump's segments) is its owner's to shut down
        self.own_pool = pool is None
        self.pool = pool or ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="zstd")
        self.in_flight = max(1, threads) + 1  # one frame queued behind the busy threads
        self.frames: deque[tuple[Future[Any], int | None]] = deque()  # (frame, its level; None: a probe)
        self.buf = bytearray()
        self.written = 0  # frames written
        self.submitted = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data
        if len(self.buf) >= self.frame:
            self.submit(self.buf)
            self.buf = bytearray()

    def _queue(self, data: bytes | bytearray) -> None:
        if self.adaptive and self.submitted % PROBE_EVERY == 0:
            self.frames.append((self.pool.submit(probe_frame, self.level, data), None))
        else:
            level = CHEAP_LEVEL if self.cheap else self.level
            self.frames.append((self.pool.submit(compress_frame, level, data), level))
        self.submitted += 1

    def _write_next(self) -> None:
        future, level = self.frames.popleft()
        if level is None:
            out, self.cheap = future.result()
            level = CHEAP_LEVEL if self.cheap else self.level
        else:
            out = future.result()
        self.sink.write(out)
        self.levels[level] += 1
        self.written += 1

    def submit(self, data: bytes | bytearray) -> None:
        """Compress `data` (no longer touched by the caller) as the next frame."""
        self._queue(data)
        while self.frames and (len(self.frames) > self.in_flight or self.frames[0][0].done()):
            self._write_next()

    def finish(self) -> None:
        """The last frame in, every frame written (an empty input still makes one valid frame)."""
        if self.buf or not (self.written or self.frames):
            self._queue(self.buf)
            self.buf = bytearray()
        while self.frames:
            self._write_next()
        if self.own_pool:
            self.pool.shutdown(wait=True)

    def abort(self) -> None:
        for f, _ in self.frames:
            f.cancel()
        self.frames.clear()
        if self.own_pool:
            self.pool.shutdown(wait=False, cancel_futures=True)


class ZstdEncoder(Encoder):
    """zstd in-process: FRAME-sized frames compressed one-shot by `threads` pool threads (FrameWriter)."""

    codec = Codec.ZSTD

    def __init__(self, sink: Sink, level: int, threads: int, adaptive: bool = False):
        super().__init__(sink)
        self._frames = FrameWriter(sink, level, threads, adaptive=adaptive)

    @property
    def frame_levels(self) -> dict[int, int]:
        return dict(self._frames.levels)

    def write(self, data: bytes | memoryview) -> None:
        self._frames.write(data)

    def close(self) -> None:
        self._frames.finish()
        self.sink.flush()

    def abort(self) -> None:
        self._frames.abort()


class ProcessEncoder(Encoder):
    """gzip / xz binaries: raw bytes into their stdin, their stdout into the sink."""

    def __init__(
        self,
        sink: Sink,
        codec: str,
        argv: list[str],
        preexec: Callable[[], None] | None = None,
        pass_fds: tuple[int, ...] = (),
    ):
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
            pass_fds=pass_fds,
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


class PlainTap:
    """What the raw SQL looked like on its way into the encoder, for checks made before encryption:
    its sha256, size, first and last bytes, and an optional scanner fed every chunk (L3 in-stream)."""

    HEAD = 8192
    TAIL = 1024

    def __init__(self, scanner: Callable[[bytes], None] | None = None):
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.head = bytearray()
        self.tail = b""
        self.scanner = scanner

    def feed(self, data: bytes | memoryview) -> None:
        self.sha.update(data)
        self.bytes += len(data)
        if len(self.head) < self.HEAD:
            self.head += data[: self.HEAD - len(self.head)]
        self.tail = (self.tail + bytes(data[-self.TAIL :]))[-self.TAIL :]
        if self.scanner is not None:
            self.scanner(bytes(data))


class _StageSink:
    """A compressor's sink that is the next stage's input (age's stdin)."""

    def __init__(self, stage: ProcessEncoder):
        self.stage = stage

    def write(self, data: bytes | memoryview) -> int:
        self.stage.write(data)
        return len(data)

    def flush(self) -> None:
        """The bytes are in the pipe; the stage's close() waits for the process."""


class ChainEncoder(Encoder):
    """Raw bytes through a tap, a compressor, then an encryption stage (age) into the file's sink."""

    def __init__(self, first: Encoder, stage: ProcessEncoder, tap: PlainTap | None):
        super().__init__(stage.sink)
        self.codec = first.codec
        self.first = first
        self.stage = stage
        self.tap = tap

    def write(self, data: bytes | memoryview) -> None:
        if self.tap is not None:
            self.tap.feed(data)
        self.first.write(data)

    def close(self) -> None:
        self.first.close()  # flushes the compressor's last frame into age
        self.stage.close()  # age writes its last chunk and exits 0, or DumpError

    def abort(self) -> None:
        self.first.abort()
        self.stage.abort()

    @property
    def pids(self) -> list[int]:
        return self.first.pids + self.stage.pids

    @property
    def frame_levels(self) -> dict[int, int]:
        return self.first.frame_levels


def make_encoder(
    codec: str,
    level: int,
    threads: int,
    sink: HashingSink,
    preexec: Callable[[], None] | None = None,
    *,
    recipients: encryption.Recipients | None = None,
    tap: PlainTap | None = None,
    adaptive: bool = False,
) -> Encoder:
    """The encoder chain: the compressor, then (with `recipients`) age encrypting its output; `tap`
    sees the raw bytes before either."""
    if recipients is None and tap is None:
        return _compressor(codec, level, threads, sink, preexec, adaptive)
    if recipients is None:
        raise DumpError("a plaintext tap is only used for encrypted dumps")
    argv = encryption.encrypt_argv()  # before the pipe: a missing binary leaks no descriptor
    with encryption.recipients_fd(recipients) as rfd:  # age reads it at start; closed here after the spawn
        try:
            stage = ProcessEncoder(sink, "age", [*argv, f"/dev/fd/{rfd}"], preexec, pass_fds=(rfd,))
        except OSError as exc:
            raise DumpError(f"cannot start age: {exc.strerror}") from None
    try:
        first = _compressor(codec, level, threads, _StageSink(stage), preexec, adaptive)
    except BaseException:
        stage.abort()
        raise
    return ChainEncoder(first, stage, tap)


def _compressor(
    codec: str,
    level: int,
    threads: int,
    sink: Sink,
    preexec: Callable[[], None] | None = None,
    adaptive: bool = False,
) -> Encoder:
    if codec == "zstd":
        return ZstdEncoder(sink, level, threads, adaptive)
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
    """A readable decoded stream over a dump file; `close()` raises StreamError if it did not decode.

    An age-encrypted file is decrypted first (`age -d -i IDENTITY FILE | <decoder>`) with `identity`, else
    the process's identity file (backend.encryption); without one, or with one that is not among its
    recipients, DecryptKeyError: the file cannot be read here, which proves nothing against it.

    With `raw`, the stored bytes come from a stream instead of the file (a remote copy through `rclone
    cat`: nothing lands on local disk); they are pumped into the first stage (age, or the decoder), and
    `path` only names the dump (its `.age` suffix says it is encrypted)."""

    def __init__(self, path: Path, codec: str, identity: Path | None = None, raw: RawSource | None = None):
        self.path = Path(path)
        self.codec = codec
        self.proc: subprocess.Popen[bytes] | None = None
        self.age: subprocess.Popen[bytes] | None = None
        self.identity: Path | None = None
        self._stderr = b""
        self._age_stderr = b""
        self._threads: list[threading.Thread] = []
        self._pump: threading.Thread | None = None
        if encryption.is_encrypted(self.path):
            self.identity = identity if identity is not None else encryption.require_identity(self.path)
            self.age = subprocess.Popen(
                encryption.decrypt_argv(self.identity, None if raw is not None else self.path),
                stdin=subprocess.PIPE if raw is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
            )
            self._reader(self.age, "_age_stderr")
            if raw is not None:
                self._start_pump(raw, self.age)
                raw = None  # consumed by age
        source: IO[bytes] | None = self.age.stdout if self.age is not None else None
        if codec == "none" and source is not None:
            self._f: io.BufferedReader = cast(io.BufferedReader, source)
        elif codec == "none":
            # closed by close(); a byte-stream source is read as it is
            self._f = open(self.path, "rb") if raw is None else _RawReader(raw)  # type: ignore[assignment]  # noqa: SIM115
        else:
            argv = {
                "zstd": [_require("zstd"), "-dc", "-q", "--no-progress"],
                "gzip": [_require("gzip"), "-dc"],
                "xz": [_require("xz"), "-dc", "-T0"],
            }[codec] + ([] if source is not None or raw is not None else ["--", str(self.path)])
            self.proc = subprocess.Popen(
                argv,
                stdin=source if source is not None else (subprocess.PIPE if raw is not None else subprocess.DEVNULL),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
            )
            if source is not None:
                source.close()  # age's stdout now belongs to the decoder alone
            if raw is not None:  # the stored bytes come from a stream (a remote copy): pumped into the decoder
                self._start_pump(raw, self.proc)
            self._f = cast(io.BufferedReader, self.proc.stdout)  # a binary pipe is buffered
            with contextlib.suppress(OSError, AttributeError):  # 1 MiB pipe: reads of 1 MiB, not 64 KiB (Linux)
                fcntl.fcntl(self._f.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
            self._reader(self.proc, "_stderr")
        self.raw_bytes = 0

    def _reader(self, proc: subprocess.Popen[bytes], attr: str) -> None:
        def read() -> None:
            assert proc.stderr is not None
            setattr(self, attr, proc.stderr.read())

        t = threading.Thread(target=read, daemon=True)
        t.start()
        self._threads.append(t)

    def _start_pump(self, raw: RawSource, proc: subprocess.Popen[bytes]) -> None:
        self._pump = threading.Thread(target=self._feed, args=(raw, proc), daemon=True)
        self._pump.start()

    @staticmethod
    def _feed(raw: RawSource, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        try:
            while chunk := raw.read(1 << 20):
                proc.stdin.write(chunk)
        except (BrokenPipeError, ValueError, OSError):
            pass  # the first stage stopped (closed early, or the stream is corrupt): its exit status says why
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def read(self, n: int = 1 << 20) -> bytes:
        chunk = self._f.read1(n)
        self.raw_bytes += len(chunk)
        return chunk

    def readinto(self, b: memoryview, /) -> int:
        """Read what is there (at most len(b) bytes, one read) straight into `b`; 0 at the end."""
        n = self._f.readinto1(b)
        self.raw_bytes += n
        return n

    def fileno(self) -> int:
        return self._f.fileno()

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        while True:
            chunk = self.read(size)
            if not chunk:
                return
            yield chunk

    def close(self, check: bool = True) -> None:
        """Wait for the decoder (and age); StreamError names what went wrong, DecryptKeyError a key problem."""
        procs = [p for p in (self.age, self.proc) if p is not None]
        if not check:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        self._f.close()
        rcs = [p.wait() for p in procs]
        for t in self._threads:
            t.join()
        if self._pump is not None:
            self._pump.join(timeout=30)
        if not check:
            return
        rc = rcs[-1] if self.proc is not None else 0
        broken_pipe = self.age is not None and self.age.returncode == -signal.SIGPIPE and rc != 0
        if self.age is not None and self.age.returncode != 0 and not broken_pipe:
            err = self._age_stderr.decode(errors="replace")
            why = encryption.decrypt_failure(self.path, self.identity, self.age.returncode, err)
            if isinstance(why, DecryptKeyError):
                raise why
            raise StreamError(f"age: the encrypted stream does not decode: {why}")
        if rc != 0:
            err = self._stderr.decode(errors="replace").replace(str(self.path), self.path.name)
            err = "; ".join(line.strip() for line in err.splitlines() if line.strip())
            raise StreamError(f"{self.codec} stream does not decode (exit {rc}): {err or 'no message'}")

    def __enter__(self) -> DecodedStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(check=exc_type is None)


class RawSource(Protocol):
    """Stored (compressed) bytes from somewhere other than a local file: `read(n)` returns b"" at the end."""

    def read(self, n: int = ..., /) -> bytes: ...


class _RawReader:
    """A RawSource read as the decoded stream itself (codec none)."""

    def __init__(self, raw: RawSource):
        self._raw = raw

    def read1(self, n: int = 1 << 20) -> bytes:
        return self._raw.read(n)

    def readinto1(self, b: memoryview) -> int:
        data = self._raw.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a streamed source has no file descriptor")


def open_decoded(
    path: Path, codec: str | None = None, identity: Path | None = None, raw: RawSource | None = None
) -> DecodedStream:
    """The decoded SQL of a dump (decrypted first when it is age-encrypted): the one way to read one. With
    `raw`, of the stored bytes read from it instead (a remote copy streamed through rclone cat: nothing
    lands on local disk); `path` then only names it."""
    return DecodedStream(Path(path), codec or codec_for_path(path), identity, raw)


def check_decryptable(path: Path) -> None:
    """An encrypted dump: DecryptKeyError now (before anything is loaded or changed) when the identity in
    use cannot open it, StreamError when its header is damaged. A plain dump: nothing to check."""
    if not encryption.is_encrypted(path):
        return
    stream = DecodedStream(Path(path), Codec.NONE)  # age alone: its header decides
    first = b""
    try:
        first = stream.read(1)
    finally:
        stream.close(check=not first)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
