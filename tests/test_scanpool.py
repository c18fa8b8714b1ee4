"""Level 3 over several processes (backend.scanpool): the same statistics as one pass, through the real
verify path, and no scanner process outlives its verification (finished, failed, cancelled or killed)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from dumpdeck.backend import codecs, scanpool, sqlstats
from dumpdeck.backend.errors import StreamError, VerifyError
from dumpdeck.backend.verify import VerifyReport, verify_file

from . import sqlstats_reference as ref
from .test_scan_differential import a_dump

ROOT = Path(__file__).resolve().parent.parent


def scanners(parent: int) -> list[int]:
    """Live (not zombie) scanner workers whose parent is `parent`, from the process table."""
    try:
        kids = psutil.Process(parent).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for kid in kids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if kid.status() != psutil.STATUS_ZOMBIE and "dumpdeck.backend.scanpool" in kid.cmdline():
                found.append(kid.pid)
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def a_big_dump(rng: random.Random, parts: int = 40) -> bytes:
    """A plain dump (header and footer of mariadb-dump) of many tables, several hostile ones."""
    bodies = []
    while len(bodies) < parts:
        d = a_dump(rng, tables=2, inserts=6, hostile=0.0 if len(bodies) % 4 else 0.3)
        start, end = d.find(b"\n--\n-- Table structure"), d.rfind(b"\n-- Dump completed")
        if 0 < start < end and reference(d[start:end])["unterminated"] is None:  # a whole one
            bodies.append(d[start:end])
    body = b"".join(bodies)
    head = b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n--\n"
    return head + body + b"\n-- Dump completed on 2026-11-30  1:00:00\n"


def reference(data: bytes) -> dict:
    col = ref.StatsCollector()
    col.feed(data)
    return dataclasses.asdict(col.finish())


@pytest.fixture
def forced_pool(monkeypatch):
    """The pool for any size, with small parts: many cuts, many processes' worth of work."""
    monkeypatch.setattr(scanpool, "MIN_PARALLEL", 0)
    monkeypatch.setattr(scanpool, "PART", 1024)
    monkeypatch.setattr(scanpool, "usable_cores", lambda: 2)
    monkeypatch.setattr(scanpool, "START_IN_PARENT", False)  # the workers scan (else the parent may, all of it)


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_verify_over_the_pool_gives_the_stats_of_one_pass(tmp_path, forced_pool, monkeypatch, codec):
    data = a_big_dump(random.Random(f"verify-{codec}"))
    path = tmp_path / "db_20261130_010000.sql"
    path.write_bytes(data)
    if codec == "zstd":
        subprocess.run(["zstd", "-q", "--rm", str(path)], check=True)
        path = path.with_suffix(".sql.zst")
    used: list[scanpool.ScanPool] = []
    real_finish = scanpool.ScanPool.finish

    def finish(self: scanpool.ScanPool) -> sqlstats.SqlStats:
        used.append(self)
        return real_finish(self)

    monkeypatch.setattr(scanpool.ScanPool, "finish", finish)
    pooled = verify_file(path, level=3, record=False)
    assert used and used[0].parts_adopted > 10, "the pool scanned it"
    monkeypatch.setattr(scanpool, "MIN_PARALLEL", 1 << 60)
    alone = verify_file(path, level=3, record=False)
    assert len(used) == 1
    assert dataclasses.asdict(pooled.stats) == dataclasses.asdict(alone.stats) == reference(data)
    assert [(c.name, c.outcome, c.evidence) for c in pooled.checks] == [
        (c.name, c.outcome, c.evidence) for c in alone.checks
    ]
    assert scanners(os.getpid()) == []


class SlowReader(io.BytesIO):
    """A decoder that takes its time (a slow disk): the workers come up while it is being read."""

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def,override]
        time.sleep(0.01)
        return super().readinto(b)


def test_the_parent_scans_while_the_workers_start_then_they_take_over(monkeypatch):
    data = a_big_dump(random.Random("start"), parts=80)
    monkeypatch.setattr(scanpool, "START_IN_PARENT", True)
    monkeypatch.setattr(scanpool, "READ", 512)
    with scanpool.ScanPool(2, part=1024) as pool:
        for _ in pool.pieces(SlowReader(data)):
            pass
        got = dataclasses.asdict(pool.finish())
    assert got == reference(data)
    assert pool.parts_rescanned > 0 and pool.parts_adopted > 20, (pool.parts_rescanned, pool.parts_adopted)


def test_workers_end_with_the_pool_and_a_dead_worker_costs_time_not_the_result(monkeypatch):
    monkeypatch.setattr(scanpool, "START_IN_PARENT", False)
    data = a_big_dump(random.Random("dead-worker"))
    pool = scanpool.ScanPool(2, part=2048)
    try:
        pids = scanners(os.getpid())
        assert len(pids) == 2
        pieces = pool.pieces(io.BytesIO(data))
        next(pieces)
        os.kill(pids[0], signal.SIGKILL)  # a worker dies mid-way: its parts are scanned by the parent
        for _ in pieces:
            pass
        got = dataclasses.asdict(pool.finish())
    finally:
        pool.close()
    assert got == reference(data)
    assert pool.parts_rescanned > 0 and pool.parts_adopted > 0
    assert not any(alive(p) for p in pids) and scanners(os.getpid()) == []


def test_a_cancelled_verify_leaves_no_scanner(tmp_path, forced_pool, monkeypatch):
    path = tmp_path / "db_20261130_010000.sql"
    path.write_bytes(a_big_dump(random.Random("cancel")))
    cancel = threading.Event()
    seen: list[int] = []
    real = scanpool.ScanPool._submit

    def submit(self: scanpool.ScanPool, slot: int, length: int) -> None:
        real(self, slot, length)
        seen.extend(scanners(os.getpid()))
        cancel.set()  # cancelled once the first part went out

    monkeypatch.setattr(scanpool.ScanPool, "_submit", submit)
    monkeypatch.setattr(scanpool, "READ", 1024)
    with pytest.raises(VerifyError, match="cancelled"):
        verify_file(path, level=3, record=False, cancel=cancel)
    assert len(set(seen)) == 2
    assert not any(alive(p) for p in seen) and scanners(os.getpid()) == []


def test_a_killed_verify_leaves_no_scanner(tmp_path):
    """SIGKILL on the verifying process: the kernel ends its scanners (PR_SET_PDEATHSIG)."""
    path = tmp_path / "db_20261130_010000.sql"
    path.write_bytes(a_big_dump(random.Random("killed"), parts=60))
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from dumpdeck.backend import codecs, scanpool
        from dumpdeck.backend.verify import verify_file
        scanpool.MIN_PARALLEL, scanpool.PART, scanpool.READ = 0, 1024, 512
        scanpool.usable_cores = lambda: 2
        real = codecs.DecodedStream.readinto
        def slow(self, b):
            time.sleep(0.01)  # a slow disk: the verification is still running when it is killed
            return real(self, b)
        codecs.DecodedStream.readinto = slow
        verify_file(Path({str(path)!r}), level=3, record=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while len(pids) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            pids = scanners(proc.pid)
        assert len(pids) == 2, "the verification started its scanners"
        assert proc.poll() is None
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()


def a_framed_dump(path: Path, data: bytes, frame: int = 700) -> Path:
    """`data` as the dump writes it: many zstd frames (backend.codecs.FrameWriter), here of `frame` bytes."""
    with open(path, "wb") as f:
        writer = codecs.FrameWriter(f, level=3, threads=1, frame=frame)
        for i in range(0, len(data), frame):
            writer.write(data[i : i + frame])
        writer.finish()
    return path


def verify_both_ways(path: Path, monkeypatch) -> tuple[VerifyReport, VerifyReport, list[scanpool.ScanPool]]:
    """The verification with the workers decoding the frames, and the one-process one (`zstd -dc`)."""
    used: list[scanpool.ScanPool] = []
    real_exit = scanpool.ScanPool.__exit__

    def exit(self: scanpool.ScanPool, *exc: object) -> None:
        used.append(self)
        real_exit(self, *exc)

    monkeypatch.setattr(scanpool.ScanPool, "__exit__", exit)
    pooled = verify_file(path, level=3, record=False)
    monkeypatch.setattr(scanpool, "MIN_PARALLEL", 1 << 60)
    alone = verify_file(path, level=3, record=False)
    monkeypatch.setattr(scanpool, "MIN_PARALLEL", 0)
    assert len(used) == 1 and scanners(os.getpid()) == []
    return pooled, alone, used


def checks(report: VerifyReport) -> list[tuple[str, str, str]]:
    return [(c.name, c.outcome.value, c.evidence) for c in report.checks]


def test_the_workers_decode_the_frames_with_the_stats_of_one_pass(tmp_path, forced_pool, monkeypatch):
    data = a_big_dump(random.Random("frames"))
    path = a_framed_dump(tmp_path / "db_20261130_010000.sql.zst", data)
    pooled, alone, used = verify_both_ways(path, monkeypatch)
    assert used and used[0].frames is not None and len(used[0].frames) > 40, "the workers decoded the frames"
    assert used[0].parts_adopted > 10
    assert pooled.level_reached >= 2 and pooled.outcome is alone.outcome  # (hostile parts fail the scope check)
    assert dataclasses.asdict(pooled.stats) == dataclasses.asdict(alone.stats) == reference(data)
    assert checks(pooled) == checks(alone)


def framed_for_damage(tmp_path, seed: str):
    """(the SQL, a framed dump of it, its bytes to damage, its frames)."""
    data = a_big_dump(random.Random(seed))
    path = a_framed_dump(tmp_path / "db_20261130_010000.sql.zst", data)
    with open(path, "rb") as f:
        frames = scanpool.zstd_frames(f.fileno(), 1 << 20)
    assert frames is not None and len(frames) > 40
    return data, path, bytearray(path.read_bytes()), frames


@pytest.mark.parametrize("damage", ["block", "checksum", "truncated", "trailing", "skippable"])
def test_a_damaged_framed_dump_fails_as_zstd_says(tmp_path, forced_pool, monkeypatch, damage):
    """A frame that does not decode in a worker hands the dump to `zstd -dc`; a file that is not a clean run
    of frames never leaves it: the same checks, evidence and byte counts as the one-process verification."""
    data, path, z, frames = framed_for_damage(tmp_path, f"damaged-{damage}")
    offset, csize, _ = frames[len(frames) // 2]
    if damage == "block":
        z[offset + csize // 2] ^= 0x55
    elif damage == "checksum":
        z[offset + csize - 1] ^= 0x01
    elif damage == "truncated":
        del z[offset + csize // 2 :]
    elif damage == "trailing":
        z += b"garbage\n"
    else:
        z[offset:offset] = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    path.write_bytes(bytes(z))
    pooled, alone, used = verify_both_ways(path, monkeypatch)
    if damage == "skippable":  # zstd skips it: a whole dump, read by zstd -dc
        assert pooled.level_reached >= 2 and pooled.outcome is alone.outcome
        assert dataclasses.asdict(pooled.stats) == dataclasses.asdict(alone.stats) == reference(data)
    else:
        assert pooled.failed and alone.failed
        bad = pooled.failed_checks[0]
        assert bad.name == "stream decodes" and "truncated or corrupt" in bad.evidence
    assert checks(pooled) == checks(alone)
    if damage in ("block", "checksum"):
        assert used and used[0].frames is not None, "the workers met the bad frame"
    else:
        assert used and used[0].frames is None, "not a clean run of frames: zstd -dc read it"


@pytest.mark.parametrize("lie", [-1, 1])
def test_a_frame_whose_header_lies_about_its_size_fails_as_zstd_says(tmp_path, forced_pool, monkeypatch, lie):
    """The workers decode each frame straight into the shared memory, as long as its header says: a frame
    that decodes to one byte more or less than that hands the dump to `zstd -dc`, as any bad frame does."""
    _, path, z, frames = framed_for_damage(tmp_path, f"lying-size-{lie}")
    offset, _, dsize = frames[len(frames) // 2]
    fhd = z[offset + 4]
    assert fhd & 3 == 0, "no dictionary id"
    at = offset + 5 + (0 if fhd & 0x20 else 1)  # the content size follows the window descriptor, if any
    width = {0: 1 if fhd & 0x20 else 0, 1: 2, 2: 4, 3: 8}[fhd >> 6]
    bias = 256 if width == 2 else 0
    assert width and int.from_bytes(z[at : at + width], "little") + bias == dsize
    z[at : at + width] = (dsize + lie - bias).to_bytes(width, "little")
    path.write_bytes(bytes(z))
    pooled, alone, used = verify_both_ways(path, monkeypatch)
    assert used and used[0].frames is not None and used[0].frames[len(frames) // 2][2] == dsize + lie
    assert pooled.failed and alone.failed
    bad = pooled.failed_checks[0]
    assert bad.name == "stream decodes" and "truncated or corrupt" in bad.evidence
    assert checks(pooled) == checks(alone)


def test_a_dead_worker_costs_time_not_the_result_when_the_workers_decode(tmp_path, monkeypatch):
    data = a_big_dump(random.Random("dead-frames"), parts=60)
    path = a_framed_dump(tmp_path / "db_20261130_010000.sql.zst", data, frame=1024)
    pool = scanpool.ScanPool(2, part=2048, dump=path)
    try:
        assert pool.frames is not None
        pids = scanners(os.getpid())
        assert len(pids) == 2
        pieces = pool.frame_stream(lambda: codecs.open_decoded(path)).chunks()
        got_bytes = bytes(next(pieces))
        os.kill(pids[0], signal.SIGKILL)  # a worker dies mid-way: the parent decodes and scans its pieces
        for piece in pieces:
            got_bytes += bytes(piece)
        got = dataclasses.asdict(pool.finish())
    finally:
        pool.close()
    assert got_bytes == data
    assert got == reference(data)
    assert pool.parts_rescanned > 0 and pool.parts_adopted > 0
    assert not any(alive(p) for p in pids) and scanners(os.getpid()) == []


def test_a_cancelled_verify_leaves_no_scanner_when_the_workers_decode(tmp_path, forced_pool, monkeypatch):
    path = a_framed_dump(tmp_path / "db_20261130_010000.sql.zst", a_big_dump(random.Random("cancel-frames")))
    cancel = threading.Event()
    seen: list[int] = []
    real = scanpool.ScanPool._piece

    def piece(self: scanpool.ScanPool, seq: int) -> int:
        seen.extend(scanners(os.getpid()))
        cancel.set()  # cancelled once the first piece is on its way
        return real(self, seq)

    monkeypatch.setattr(scanpool.ScanPool, "_piece", piece)
    with pytest.raises(VerifyError, match="cancelled"):
        verify_file(path, level=3, record=False, cancel=cancel)
    assert len(set(seen)) == 2
    assert not any(alive(p) for p in seen) and scanners(os.getpid()) == []


def test_a_dump_cut_short_under_the_workers_fails_as_zstd_says(tmp_path):
    """The file shrinks after its frames were listed: the workers read it (pread, no mapping: no SIGBUS), a
    frame is missing, and `zstd -dc` reads the rest and says why the stream does not decode."""
    data = a_big_dump(random.Random("cut-short"), parts=60)
    path = a_framed_dump(tmp_path / "db_20261130_010000.sql.zst", data, frame=1024)
    pool = scanpool.ScanPool(2, part=2048, dump=path)
    try:
        assert pool.frames is not None
        os.truncate(path, path.stat().st_size // 2)
        stream = pool.frame_stream(lambda: codecs.open_decoded(path))
        got = b"".join(bytes(piece) for piece in stream.chunks())
        with pytest.raises(StreamError, match="zstd stream does not decode"):
            stream.close()
    finally:
        pool.close()
    assert 0 < len(got) < len(data) and data.startswith(got)
    assert scanners(os.getpid()) == []


def test_a_level_1_failure_ends_the_scanners_started_before_it(tmp_path, forced_pool, monkeypatch):
    """The scanners start (and take their first pieces) before level 1 hashes the file; when level 1
    fails, the ladder stops there and they end with it."""
    from dumpdeck.backend import verify

    path = a_framed_dump(tmp_path / "db_20261130_010000.sql.zst", a_big_dump(random.Random("l1-fails")))
    seen: list[int] = []
    real = verify._level1

    def level1(p: Path, ladder: verify._Ladder) -> tuple[None, str | None]:
        seen.extend(scanners(os.getpid()))
        real(p, ladder)
        ladder.add("sha256", False, "mismatch (as if the manifest said otherwise)", 1)
        return None, None

    monkeypatch.setattr(verify, "_level1", level1)
    report = verify_file(path, level=3, record=False)
    assert report.failed and report.level_reached == 0
    assert [c.level for c in report.checks if c.level > 1] == []
    assert len(set(seen)) == 2
    assert not any(alive(p) for p in seen) and scanners(os.getpid()) == []
