"""Level 3 over several processes (backend.scanpool): the same statistics as one pass, through the real
verify path, and no scanner process outlives its verification (finished, failed, cancelled or killed)."""

from __future__ import annotations

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

import pytest

from dumpdeck.backend import scanpool, sqlstats
from dumpdeck.backend.errors import VerifyError
from dumpdeck.backend.verify import verify_file

from . import sqlstats_reference as ref
from .test_scan_differential import a_dump

ROOT = Path(__file__).resolve().parent.parent


def scanners(parent: int) -> list[int]:
    """Live (not zombie) scanner workers whose parent is `parent`, from the process table."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if b"dumpdeck.backend.scanpool" in cmd and int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(d.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


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
