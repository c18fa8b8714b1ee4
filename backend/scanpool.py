"""Level 3's statistics pass over several processes: one decoder, N scanners (issue 16).

The parent reads the decoded SQL straight into shared memory (a memfd that the workers map: no pipe
copy per worker), cuts it into parts of about `PART` bytes, each ending just before a likely statement
start (`\\nINSERT INTO `), and hands each part to a worker, which scans it as if it began the stream
(`sqlstats.scan_part`). The parent takes the parts in stream order (`StatsCollector.take_part`): a
worker's result is used only where the exact scan of everything before the part stands between
statements with the default delimiter; anywhere else (a cut inside a string, a comment, a DELIMITER
block, a statement longer than a part) the parent scans the part itself. So a hostile or odd dump can
cost time, never change a statistic: order-dependent state (markers and sections, USE before the first
table, a late DROP DATABASE, line numbers, the first `MAX_PROBLEMS` problems, the delimiter, a cut-off
last statement) comes out of the same ordered `apply` as in one pass.

A zstd dump as dumpdeck writes it (frames of 1 MiB that state their size, backend.codecs.FrameWriter) is
not piped through `zstd -dc`: each worker decodes a piece of about `PART` bytes of frames itself (libzstd
through python-zstandard, which checks every frame's checksum and size) straight into its slot, and scans the part
from the piece's first likely statement start to the first one after its end, decoding the next frames
as far as it needs (`decode_part`). The parent takes the pieces in stream order as above. So the decoding
is spread over the cores too, and the SQL crosses no pipe. A file that is not a clean run of such frames
(`zstd_frames`: a truncated or foreign one, trailing bytes, a skippable frame) is read by `zstd -dc` as
before; a frame that does not decode in a worker hands the rest of the stream to `zstd -dc`, whose exit
status and message are the verdict's, as they were.

Memory is bounded: `2 * workers + 2` slots of `2 * PART` bytes, whatever the dump's size. Workers die
with the thread that started them (PR_SET_PDEATHSIG, backend.lifeline) and `close()` kills them, so a
cancelled, failed or killed verification leaves no process behind. A worker that dies is replaced by
the parent's own scan of its parts.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Protocol

import zstandard

from .lifeline import die_with_parent
from .sqlstats import Part, SqlStats, StatsCollector, scan_part

PART = 8 << 20  # bytes of SQL per part
MIN_PARALLEL = 96 << 20  # smaller streams are scanned in-process (starting workers costs ~0.1 s)
READ = 4 << 20  # at most this much per read from the decoder
CANDIDATE = b"\nINSERT INTO "  # a part ends after this newline: usually a statement boundary
START_IN_PARENT = True  # while no worker is up yet, the parent scans the parts that fill the slots


class Readable(Protocol):
    def readinto(self, b: memoryview, /) -> int: ...


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers_for(size_hint: int) -> int:
    """How many scanner processes a stream of about `size_hint` bytes of SQL gets (0: scan in-process)."""
    cores = usable_cores()
    if cores < 2 or size_hint < MIN_PARALLEL or not hasattr(os, "memfd_create"):
        return 0
    return cores


# --------------------------------------------------------------------------- a dump's zstd frames

ZSTD_MAGIC = 0xFD2FB528
Frame = tuple[int, int, int]  # (offset in the file, compressed size, decoded size) of one zstd frame
# (the piece's frames, then those that may follow it in its slot; how many are the piece's own)
FrameRequest = tuple[list[Frame], int]
# (start, end, size, part): the piece decoded to `size` bytes; its part is [start, end) of the slot (start
# None: no cut in the piece), scanned (`part`) unless the parent decoded it
FrameResult = tuple[int | None, int, int, Part | None]


class Decoded(Protocol):
    """The decoded SQL as `backend.codecs.DecodedStream` gives it."""

    def read(self, n: int = ..., /) -> bytes: ...

    def close(self, check: bool = True) -> None: ...


def zstd_frames(fd: int, max_frame: int) -> list[Frame] | None:
    """The frames of a zstd file (open at `fd`) that is a sequence of at least two whole standard frames,
    each stating its decoded size (at most `max_frame`) and needing no dictionary, as the dump writes
    them (backend.codecs.FrameWriter); else None, and the file is read by `zstd -dc`, which says what is
    wrong with it (trailing bytes, a truncated frame, a skippable frame, a foreign single-frame file).
    Only headers are read (~10 block headers per MiB of SQL), with pread."""
    frames: list[Frame] = []
    pos, end = 0, os.fstat(fd).st_size
    while pos < end:
        head = os.pread(fd, 18, pos)
        if len(head) < 6 or int.from_bytes(head[:4], "little") != ZSTD_MAGIC or head[4] & 3:
            return None
        try:
            q = pos + zstandard.frame_header_size(head)
            size = zstandard.frame_content_size(head)
        except zstandard.ZstdError:
            return None
        if not 0 <= size <= max_frame:
            return None
        while True:
            header = os.pread(fd, 3, q)
            if len(header) < 3:
                return None
            block = int.from_bytes(header, "little")
            kind = (block >> 1) & 3
            if kind == 3:
                return None
            q += 3 + (1 if kind == 1 else block >> 3)  # an RLE block holds one byte
            if block & 1:
                break
        if head[4] & 4:
            q += 4  # the frame's checksum
        if q > end:
            return None
        frames.append((pos, q - pos, size))
        pos = q
    return frames if len(frames) > 1 else None


def decode_frame(dctx: zstandard.ZstdDecompressor, frame: memoryview, out: memoryview) -> None:
    """Decode one zstd frame straight into `out` (the shared memory: no copy of the SQL), which is as long as
    the frame's header says it decodes to. ZstdError when it does not decode (libzstd checks the frame's
    checksum when it reads the frame's end, which the last read here reaches), or not to that size."""
    with dctx.stream_reader(frame, read_size=len(frame), read_across_frames=False) as reader:
        n = 0
        while n < len(out):
            got = reader.readinto(out[n:])
            if not got:
                raise zstandard.ZstdError(f"a frame decodes to {n} bytes, its header says {len(out)}")
            n += got
        if reader.readinto(bytearray(1)):
            raise zstandard.ZstdError(f"a frame decodes to more than the {len(out)} bytes its header says")


def decode_part(
    dctx: zstandard.ZstdDecompressor, fd: int, mm: mmap.mmap, base: int, request: FrameRequest, scan: bool
) -> FrameResult:
    """Decode a piece of frames of the file at `fd` into `mm[base:]` and, with `scan`, scan its part: from
    the first likely statement start (the newline of CANDIDATE) in the piece to the first one at or after
    the piece's end, decoding the following frames of the request until it shows (else the part ends with
    the piece). ZstdError when a frame does not decode (libzstd checks the frame's checksum), not to its
    stated size, or the file no longer holds it. The file is read with pread, not mapped: a file cut short
    meanwhile is an error here, not a SIGBUS."""
    frames, own = request
    first = frames[0][0]
    data = memoryview(os.pread(fd, frames[own - 1][0] + frames[own - 1][1] - first, first))  # the piece's own
    fill = size = 0
    cut = -1
    with memoryview(mm) as view:
        for i, (offset, csize, dsize) in enumerate(frames):
            if i >= own and cut >= 0:
                break
            if i < own:
                frame = data[offset - first : offset - first + csize]
            else:
                frame = memoryview(os.pread(fd, csize, offset))
            if len(frame) != csize:
                raise zstandard.ZstdError(f"the file ends within the frame at byte {offset}")
            decode_frame(dctx, frame, view[base + fill : base + fill + dsize])
            fill += dsize
            if i + 1 == own:
                size = fill
            if i + 1 >= own:
                cut = mm.find(CANDIDATE, base + max(size, fill - dsize - len(CANDIDATE) + 1), base + fill)
    end = cut + 1 - base if cut >= 0 else size
    first = mm.find(CANDIDATE, base, base + fill)
    start = first + 1 - base if 0 <= first - base < size else None
    part = scan_part(mm[base + start : base + end]) if scan and start is not None and start < end else None
    return start, end, size, part


class _Worker:
    def __init__(self, fd: int, dump_fd: int = -1):
        to_child, self._to_child_w = os.pipe()
        self._from_child_r, from_child = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dumpdeck.backend.scanpool", str(fd), str(dump_fd)],
                stdin=to_child,
                stdout=from_child,
                pass_fds=(fd,) if dump_fd < 0 else (fd, dump_fd),
                close_fds=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (one prctl call, no locks taken)
            )
        finally:
            os.close(to_child)
            os.close(from_child)
        self.send = Connection(self._to_child_w, readable=False)
        self.recv = Connection(self._from_child_r, writable=False)
        self.seqs: deque[int] = deque()  # the parts sent to it, in order (one, but for `prefetch`)
        self.ready = False  # it said hello (a Python process takes a while to start)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send.close()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(OSError):
            self.recv.close()


class ScanPool:
    """`pieces(stream)` reads a decoded stream into shared memory, yielding each piece read (a view,
    valid until the next one) while workers scan; then `finish()` gives the SqlStats of the whole
    stream, exactly as `StatsCollector` would. Always `close()` (also after an error or a cancel).
    `parts_adopted` counts the parts whose worker's scan was used, `parts_rescanned` those the parent
    scanned (a part that did not start between statements, a dead worker's, or while none was up yet)."""

    def __init__(self, workers: int, part: int | None = None, dump: Path | None = None):
        self.part = part or PART
        self.slot = 2 * self.part
        self.collector = StatsCollector(batch=0)
        self._start_in_parent = START_IN_PARENT
        self.parts_adopted = 0
        self.parts_rescanned = 0
        nslots = 2 * workers + 2
        self._fd = os.memfd_create("dumpdeck-l3", os.MFD_CLOEXEC)
        self._workers: list[_Worker] = []
        self._dump_fd = -1
        self.frames: list[Frame] | None = None  # the dump's zstd frames, when the workers decode them
        self._pieces: list[tuple[int, int, int]] | None = None  # (see `_plan`)
        self._sent = 0  # pieces of frames sent so far
        try:
            os.ftruncate(self._fd, self.slot * nslots)
            self._mm = mmap.mmap(self._fd, self.slot * nslots)
            self._view = memoryview(self._mm)
            self._free = list(range(nslots))
            if dump is not None:
                self._open_dump(dump)
            self._workers = [_Worker(self._fd, self._dump_fd) for _ in range(workers)]
        except BaseException:
            self.close()
            raise
        self._queue: deque[int] = deque()  # parts waiting for a worker
        # part → (slot, length or a FrameRequest), until taken in order
        self._parts: dict[int, tuple[int, int | FrameRequest]] = {}
        self._done: dict[int, Part | FrameResult | str | None] = {}  # part → its scan (None: do it here)
        self._seq = 0  # parts cut so far
        self._next = 0  # the next part to take in order

    # ------------------------------------------------------------------ reading and cutting

    def pieces(self, stream: Readable) -> Iterator[memoryview]:
        slot, fill = self._take_slot(), 0
        while True:
            base = slot * self.slot
            n = stream.readinto(self._view[base + fill : base + min(self.slot, fill + READ)])
            if not n:
                break
            yield self._view[base + fill : base + fill + n]
            fill += n
            if fill < self.part:
                continue
            cut = self._mm.find(CANDIDATE, base + max(self.part - len(CANDIDATE), 0), base + fill)
            if cut >= 0:
                length = cut + 1 - base
            elif fill == self.slot:
                length = fill  # no candidate in a whole slot: the next part will most likely be scanned here
            else:
                continue
            self._submit(slot, length)
            carry = fill - length
            new = self._take_slot()
            if carry:
                self._mm.move(new * self.slot, base + length, carry)
            slot, fill = new, carry
        if fill:
            self._submit(slot, fill)
        else:
            self._free.append(slot)

    def finish(self) -> SqlStats:
        while self._next < self._seq:
            self._wait()
        return self.collector.finish()

    def close(self) -> None:
        for w in self._workers:
            w.close()
        self._workers = []
        if getattr(self, "_dump_fd", -1) >= 0:
            os.close(self._dump_fd)
            self._dump_fd = -1
        view = getattr(self, "_view", None)
        if view is not None:
            view.release()
        mm = getattr(self, "_mm", None)
        if mm is not None:
            with contextlib.suppress(BufferError):  # a piece still referenced: freed with it
                mm.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ScanPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ decoding the frames here

    def _open_dump(self, dump: Path) -> None:
        """Open the dump and list its frames: with them, the workers decode as well as scan."""
        self._dump_fd = os.open(dump, os.O_RDONLY | os.O_CLOEXEC)
        self.frames = zstd_frames(self._dump_fd, self.part)

    def frame_stream(self, fallback: Callable[[], Decoded]) -> FrameStream:
        """The decoded SQL of the dump's frames, decoded and scanned in the workers (`self.frames`)."""
        return FrameStream(self, fallback)

    def frame_pieces(self, stream: FrameStream) -> Iterator[memoryview]:
        """Yield the dump's decoded SQL in order, piece by piece (a view, valid until the next one), while
        the workers decode and scan pieces of about `part` bytes ahead. A piece's part is adopted only
        where the exact scan stands between statements at its start; around it, and for any piece a worker
        could not take, the exact scan reads the bytes itself. A frame that does not decode hands the rest
        to `zstd -dc` (`_fall_back`): its verdict and message are today's."""
        plan = self._plan()
        dctx = zstandard.ZstdDecompressor()
        p = 0  # the exact scan has every byte before p
        for j, (_, _, s) in enumerate(plan):
            while self._sent < len(plan) and self._free:
                self._queue.append(self._piece(self._sent))
                self._dispatch()
            while j not in self._done:
                self._wait()
            result = self._done.pop(j)
            slot, request = self._parts.pop(j)
            base = slot * self.slot
            if result is None:  # no worker took it (none up, or it died): decoded here
                assert not isinstance(request, int)
                try:
                    result = decode_part(dctx, self._dump_fd, self._mm, base, request, scan=False)
                except zstandard.ZstdError as exc:
                    result = str(exc)
            if isinstance(result, str):
                self._free.append(slot)
                yield from self._fall_back(stream, s, p)
                return
            assert isinstance(result, tuple)
            start, end, size, part = result
            stop = s + size
            if p < stop:
                k = s + start if start is not None else stop
                if p < k:
                    self.collector.feed(self._mm[base + p - s : base + k - s])
                    p = k
                if part is not None and p == k and self.collector.between_statements():
                    self.collector.adopt(part)
                    self.parts_adopted += 1
                    p = s + end
                else:
                    self.parts_rescanned += 1
                    if p < stop:
                        self.collector.feed(self._mm[base + p - s : base + size])
                        p = stop
            yield self._view[base : base + size]
            self._free.append(slot)

    def prefetch(self, per_worker: int = 3) -> None:
        """Send each worker its first pieces of frames now, before it is even up (its requests wait in its
        pipe): they decode and scan while the caller does something else (verify's level 1 hashes the file)."""
        if self.frames is None:
            return
        plan = self._plan()
        for _ in range(per_worker):
            for w in list(self._workers):
                if self._sent >= len(plan) or not self._free:
                    return
                seq = self._piece(self._sent)
                if not self._send(w, seq):
                    self._queue.append(seq)

    def _plan(self) -> list[tuple[int, int, int]]:
        """(first frame, end frame, stream offset) of each piece: frames of at least `part` bytes together."""
        if self._pieces is None:
            assert self.frames is not None
            self._pieces = []
            first, at, fill = 0, 0, 0
            for i, (_, _, dsize) in enumerate(self.frames):
                fill += dsize
                if fill >= self.part or i + 1 == len(self.frames):
                    self._pieces.append((first, i + 1, at))
                    first, at, fill = i + 1, at + fill, 0
        return self._pieces

    def _piece(self, seq: int) -> int:
        """Give piece `seq` a slot and its request (its frames, and those that may follow in the slot)."""
        assert self.frames is not None and seq == self._sent
        frames = self.frames
        first, stop, _ = self._plan()[seq]
        room = self.slot - sum(f[2] for f in frames[first:stop])
        more = stop
        while more < len(frames) and frames[more][2] <= room:
            room -= frames[more][2]
            more += 1
        self._parts[seq] = (self._free.pop(), (frames[first:more], stop - first))
        self._sent += 1
        return seq

    def _fall_back(self, stream: FrameStream, s: int, p: int) -> Iterator[memoryview]:
        """A frame did not decode here: the workers stop, `zstd -dc` reads the dump from the start, the bytes
        before `s` (already yielded) are skipped, and the exact scan reads on from `p`."""
        for w in self._workers:
            w.close()
        self._workers = []
        decoded = stream.fallback = stream.open_fallback()
        at = 0
        while at < s:
            chunk = decoded.read(min(s - at, 1 << 20))
            if not chunk:
                return  # it ended even sooner: its close() says why
            at += len(chunk)
        while chunk := decoded.read(1 << 20):
            if at + len(chunk) > p:
                self.collector.feed(chunk[max(p - at, 0) :])
            at += len(chunk)
            yield memoryview(chunk)

    # ------------------------------------------------------------------ parts in flight

    def _take_slot(self) -> int:
        while not self._free:
            if self._start_in_parent and self._queue and not self._any_ready():
                # the workers are still starting: rather than wait, the parent scans the oldest part
                self._done[self._queue.popleft()] = None
                self._take_in_order()
            else:
                self._wait()
        return self._free.pop()

    def _any_ready(self) -> bool:
        """Whether a worker is up (its hello is read here, without waiting)."""
        for w in list(self._workers):
            if not w.ready:
                try:
                    if not w.recv.poll(0):
                        continue
                    w.recv.recv()
                except (EOFError, OSError):
                    self._lose(w)
                    continue
                w.ready = True
        if any(w.ready for w in self._workers):
            self._dispatch()
            return True
        return False

    def _submit(self, slot: int, length: int) -> None:
        seq = self._seq
        self._seq += 1
        self._parts[seq] = (slot, length)
        self._queue.append(seq)
        self._dispatch()

    def _dispatch(self) -> None:
        for w in self._workers:
            if w.ready and not w.seqs and self._queue:
                seq = self._queue.popleft()
                if not self._send(w, seq):
                    self._queue.appendleft(seq)
                    return self._dispatch()

    def _send(self, w: _Worker, seq: int) -> bool:
        """Ask worker `w` for part `seq`; False if it cannot be reached (it is then lost, and the part is
        the caller's to queue again)."""
        slot, request = self._parts[seq]
        try:
            w.send.send((slot * self.slot, request))
        except OSError:
            self._lose(w)
            return False
        w.seqs.append(seq)
        return True

    def _lose(self, w: _Worker) -> None:
        """A worker died (or could not be reached): its part, and any other, is scanned here."""
        for seq in w.seqs:
            self._done[seq] = None
        w.close()
        self._workers.remove(w)

    def _wait(self) -> None:
        busy = [w for w in self._workers if w.seqs or not w.ready]
        if not busy:
            while self._queue:  # no worker left: the parent scans what is queued
                self._done[self._queue.popleft()] = None
        else:
            ready = wait([w.recv for w in busy])
            for w in busy:
                if w.recv not in ready:
                    continue
                try:
                    part: Part | None = w.recv.recv()
                except (EOFError, OSError):
                    self._lose(w)
                    continue
                if not w.ready:
                    w.ready = True  # its hello
                    continue
                self._done[w.seqs.popleft()] = part
            self._dispatch()
        self._take_in_order()

    def _take_in_order(self) -> None:
        if self.frames is not None:
            return  # the frames' parts are taken by `frame_pieces`, in order
        while self._next in self._done:
            seq = self._next
            part = self._done.pop(seq)
            slot, length = self._parts.pop(seq)
            base = slot * self.slot
            assert isinstance(length, int) and not isinstance(part, (tuple, str))
            if self.collector.take_part(lambda b=base, n=length: self._mm[b : b + n], part):  # type: ignore[misc]
                self.parts_adopted += 1
            else:
                self.parts_rescanned += 1
            self._free.append(slot)
            self._next += 1


class FrameStream:
    """The decoded stream of a dump whose frames the pool's workers decode (`ScanPool.frame_stream`),
    for verify's single pass: `chunks()`, then `close()`, which raises what `zstd -dc` raised when a frame
    did not decode here and the rest went through it."""

    age = None  # (never an encrypted dump)

    def __init__(self, pool: ScanPool, fallback: Callable[[], Decoded]):
        self.pool = pool
        self.open_fallback = fallback
        self.fallback: Decoded | None = None

    def chunks(self) -> Iterator[memoryview]:
        return self.pool.frame_pieces(self)

    def close(self, check: bool = True) -> None:
        if self.fallback is not None:
            self.fallback.close(check)


def _serve(fd: int, dump_fd: int) -> None:
    """A worker: scan the parts the parent names (offset, length in the shared memory), or decode a piece of
    the dump's frames into it and scan its part (offset, FrameRequest), until EOF."""
    size = os.fstat(fd).st_size
    mm = mmap.mmap(fd, size)
    dctx = zstandard.ZstdDecompressor()
    requests = Connection(0, writable=False)
    results = Connection(1, readable=False)
    results.send(None)  # hello: ready for parts
    while True:
        try:
            offset, request = requests.recv()
        except EOFError:
            return
        if isinstance(request, int):
            results.send(scan_part(mm[offset : offset + request]))
            continue
        try:
            results.send(decode_part(dctx, dump_fd, mm, offset, request, scan=True))
        except zstandard.ZstdError as exc:
            results.send(f"zstd: {exc}")


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
