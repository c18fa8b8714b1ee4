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
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from typing import Protocol

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


class _Worker:
    def __init__(self, fd: int):
        to_child, self._to_child_w = os.pipe()
        self._from_child_r, from_child = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dumpdeck.backend.scanpool", str(fd)],
                stdin=to_child,
                stdout=from_child,
                pass_fds=(fd,),
                close_fds=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (one prctl call, no locks taken)
            )
        finally:
            os.close(to_child)
            os.close(from_child)
        self.send = Connection(self._to_child_w, readable=False)
        self.recv = Connection(self._from_child_r, writable=False)
        self.seq: int | None = None  # the part it is scanning
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

    def __init__(self, workers: int, part: int | None = None):
        self.part = part or PART
        self.slot = 2 * self.part
        self.collector = StatsCollector(batch=0)
        self._start_in_parent = START_IN_PARENT
        self.parts_adopted = 0
        self.parts_rescanned = 0
        nslots = 2 * workers + 2
        self._fd = os.memfd_create("dumpdeck-l3", os.MFD_CLOEXEC)
        self._workers: list[_Worker] = []
        try:
            os.ftruncate(self._fd, self.slot * nslots)
            self._mm = mmap.mmap(self._fd, self.slot * nslots)
            self._view = memoryview(self._mm)
            self._free = list(range(nslots))
            self._workers = [_Worker(self._fd) for _ in range(workers)]
        except BaseException:
            self.close()
            raise
        self._queue: deque[int] = deque()  # parts waiting for a worker
        self._parts: dict[int, tuple[int, int]] = {}  # part → (slot, length), until taken in order
        self._done: dict[int, Part | None] = {}  # part → its scan (None: scan it here)
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
            if w.ready and w.seq is None and self._queue:
                seq = self._queue.popleft()
                slot, length = self._parts[seq]
                try:
                    w.send.send((slot * self.slot, length))
                except OSError:
                    self._queue.appendleft(seq)
                    self._lose(w)
                    return self._dispatch()
                w.seq = seq

    def _lose(self, w: _Worker) -> None:
        """A worker died (or could not be reached): its part, and any other, is scanned here."""
        if w.seq is not None:
            self._done[w.seq] = None
        w.close()
        self._workers.remove(w)

    def _wait(self) -> None:
        busy = [w for w in self._workers if w.seq is not None or not w.ready]
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
                assert w.seq is not None
                self._done[w.seq] = part
                w.seq = None
            self._dispatch()
        self._take_in_order()

    def _take_in_order(self) -> None:
        while self._next in self._done:
            seq = self._next
            part = self._done.pop(seq)
            slot, length = self._parts.pop(seq)
            base = slot * self.slot
            if self.collector.take_part(lambda b=base, n=length: self._mm[b : b + n], part):  # type: ignore[misc]
                self.parts_adopted += 1
            else:
                self.parts_rescanned += 1
            self._free.append(slot)
            self._next += 1


def _serve(fd: int) -> None:
    """A worker: scan the parts the parent names (offset, length in the shared memory) until EOF."""
    size = os.fstat(fd).st_size
    mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    requests = Connection(0, writable=False)
    results = Connection(1, readable=False)
    results.send(None)  # hello: ready for parts
    while True:
        try:
            offset, length = requests.recv()
        except EOFError:
            return
        results.send(scan_part(mm[offset : offset + length]))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
