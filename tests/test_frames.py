"""The zstd frames a dump is written in (backend.codecs.FrameWriter), and backup.adaptive_level: level 1
where sampled frames show it no larger than the configured level, the configured level elsewhere.

Sizes are compared with the same data compressed at the configured level alone, and every output is
decoded by the zstd CLI, as `zstd -dc | mariadb` would."""

from __future__ import annotations

import dataclasses
import io
import random
import subprocess
import sys
from pathlib import Path

from dumpdeck.backend import codecs
from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.dump import dump_database

FRAME = 32 * 1024  # small frames: many probes in a few MB


def digits(n: int) -> bytes:
    """sysbench's rows: ten 11-digit groups and five, random digits."""
    rng = random.Random(7)
    out = io.BytesIO()
    i = 0
    while out.tell() < n:
        c = "-".join(f"{rng.randrange(10**11):011d}" for _ in range(10))
        pad = "-".join(f"{rng.randrange(10**11):011d}" for _ in range(5))
        out.write(f"({i},{rng.randrange(10**6)},'{c}','{pad}'),\n".encode())
        i += 1
    return out.getvalue()[:n]


def prose(n: int) -> bytes:
    """Python's own sources: text with words and structure, where level 3's matches pay."""
    parts, size = [], 0
    for path in sorted(Path(sys.modules["json"].__file__).parent.parent.glob("*.py")):
        data = path.read_bytes()
        parts.append(data)
        size += len(data)
        if size >= n:
            break
    return b"".join(parts)[:n]


def write(data: bytes, adaptive: bool, level: int = 3) -> tuple[bytes, dict[int, int]]:
    out = io.BytesIO()
    writer = codecs.FrameWriter(out, level=level, threads=2, frame=FRAME, adaptive=adaptive)
    for i in range(0, len(data), 20_000):  # the way a dump feeds it: pipe reads, not frame-aligned
        writer.write(data[i : i + 20_000])
    writer.finish()
    return out.getvalue(), writer.levels


def cli_decode(blob: bytes) -> bytes:
    return subprocess.run(["zstd", "-dc"], input=blob, capture_output=True, check=True).stdout


def test_digits_take_level_1_and_come_out_smaller_than_level_3_alone():
    data = digits(4_000_000)
    fixed, fixed_levels = write(data, adaptive=False)
    adaptive, levels = write(data, adaptive=True)
    assert set(fixed_levels) == {3}
    assert cli_decode(adaptive) == data
    assert sum(levels.values()) == sum(fixed_levels.values())  # the same frames, at other levels
    assert levels.get(1, 0) >= 0.9 * sum(levels.values()), levels
    assert len(adaptive) < len(fixed)  # level 1 is smaller here, not only cheaper


def test_prose_keeps_level_3_and_costs_no_bytes():
    data = prose(4_000_000)
    fixed, _ = write(data, adaptive=False)
    adaptive, levels = write(data, adaptive=True)
    assert cli_decode(adaptive) == data
    assert levels.get(3, 0) >= 0.9 * sum(levels.values()), levels
    assert len(adaptive) <= len(fixed)  # a probe keeps the smaller of its two frames


def test_a_switch_from_digits_to_prose_goes_back_to_level_3_at_the_next_probe():
    data = digits(2_000_000) + prose(4_000_000)
    blob, levels = write(data, adaptive=True)
    assert cli_decode(blob) == data
    # frames are FRAME bytes and up to one pipe read more; a probe's verdict reaches the frames queued
    # after it is written, up to threads + 1 frames later
    prose_frames = 4_000_000 // (FRAME + 20_000)
    lag = codecs.PROBE_EVERY + 3
    assert levels.get(3, 0) >= prose_frames - lag, levels
    assert levels.get(1, 0) >= 2_000_000 // (FRAME + 20_000) - lag, levels


def test_level_1_configured_has_nothing_to_probe():
    data = digits(1_000_000)
    blob, levels = write(data, adaptive=True, level=1)
    assert set(levels) == {1} and cli_decode(blob) == data


def test_the_manifest_counts_frames_per_level(mariadb, config, sample_db):
    path = dump_database(config.server("main"), config.backup, sample_db).path
    m = manifest_mod.load(path)
    assert m.frame_levels and set(m.frame_levels) <= {"1", "3"}, m.frame_levels
    fixed = dump_database(
        config.server("main"), dataclasses.replace(config.backup, adaptive_level=False), sample_db
    ).path
    assert manifest_mod.load(fixed).frame_levels == {"3": sum(m.frame_levels.values())}
