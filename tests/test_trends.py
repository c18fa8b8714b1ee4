"""Trend flags: much smaller / larger than the median of the last N dumps, much slower than usual."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dumpdeck.backend.config import TrendsConfig
from dumpdeck.backend.trends import MIN_HISTORY, Sample, assess, assess_entry, duration_flag, median, size_flag

CFG = TrendsConfig(window=5, size_tolerance=0.5, slow_factor=2.0)


def hist(*sizes, duration=60.0):
    return [Sample(size=s, duration=duration) for s in sizes]


def test_median_ignores_one_odd_dump():
    assert median([10, 11, 1000, 9, 10]) == 10
    assert median([]) is None


def test_small_and_large_at_the_tolerance():
    prev = [100, 100, 100, 100]
    assert size_flag(49, prev, 0.5).name == "small"
    assert size_flag(50, prev, 0.5) is None  # exactly at the edge: not flagged
    assert size_flag(150, prev, 0.5) is None
    assert size_flag(151, prev, 0.5).name == "large"
    f = size_flag(25, prev, 0.5)
    assert f.ratio == 0.25 and f.median == 100 and f.samples == 4
    assert "25% of the median" in f.text and "smaller than usual" in f.text


def test_no_flag_without_enough_history():
    assert size_flag(1, [100] * (MIN_HISTORY - 1), 0.5) is None
    assert size_flag(1, [100] * MIN_HISTORY, 0.5) is not None
    assert duration_flag(1000, [10] * (MIN_HISTORY - 1), 2.0) is None


def test_slow_runs_and_the_noise_floor():
    assert duration_flag(130, [60, 60, 60], 2.0).name == "slow"
    assert duration_flag(110, [60, 60, 60], 2.0) is None
    assert duration_flag(3, [1, 1, 1], 2.0) is None  # 1 s → 3 s is noise, not a trend
    assert "2.2× the median" in duration_flag(130, [60, 60, 60], 2.0).text


def test_window_uses_only_the_last_n_dumps():
    # newest first: the last 5 are ~100, older ones were ~1000
    history = hist(100, 100, 100, 100, 100, 1000, 1000, 1000, 1000)
    assert [f.name for f in assess(Sample(100, 60.0), history, CFG)] == []
    assert [f.name for f in assess(Sample(400, 60.0), history, CFG)] == ["large"]


def test_size_and_slow_together():
    flags = assess(Sample(10, 500.0), hist(100, 100, 100, 100), CFG)
    assert [f.name for f in flags] == ["small", "slow"]


def test_stored_sizes_are_not_compared_with_raw_sizes():
    mixed = [Sample(100, 60.0, raw=True)] * 3 + [Sample(5, None, raw=False)] * 3
    assert assess(Sample(100, 60.0, raw=True), mixed, CFG) == []


class E:
    def __init__(self, path, when, raw, duration):
        from types import SimpleNamespace

        self.path, self.server, self.database, self.when, self.size = path, "main", "shop", when, raw // 10
        self.manifest = SimpleNamespace(bytes_raw=raw, duration=duration)


def test_assess_entry_against_older_dumps_only():
    t = datetime(2026, 1, 10, tzinfo=UTC)
    entries = [E(f"d{i}", t - timedelta(days=i), 1000 if i else 100, 30.0) for i in range(6)]
    newest = entries[0]
    assert [f.name for f in assess_entry(newest, entries, CFG)] == ["small"]
    # an older dump is judged against the ones before it, not against the small newest one
    assert assess_entry(entries[1], entries, CFG) == []
