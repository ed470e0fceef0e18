"""Interleaved timing: medians, spreads and the rotated order, on a fake clock."""

import pytest

from coldflow.metrics import timing


def test_interleaved_rounds_give_median_spread_and_rotate_the_order(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls: list[str] = []
    b_costs = iter([9.0, 1.0, 5.0, 2.0])  # the first call is the untimed warm-up

    def a() -> int:
        calls.append("a")
        clock[0] += 3.0
        return 1

    def b() -> int:
        calls.append("b")
        clock[0] += next(b_costs)
        return 2

    out = timing.interleaved_seconds({"a": a, "b": b}, repeats=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotated rounds
    assert out["a"] == {"seconds": 3.0, "low": 3.0, "high": 3.0, "rounds": [3.0] * 3}
    assert out["b"]["rounds"] == [0.5, 2.5, 1.0]  # per unit: 2 units a call
    assert (out["b"]["seconds"], out["b"]["low"], out["b"]["high"]) == (1.0, 0.5, 2.5)


def test_interleaved_timing_refuses_bad_jobs_and_counts():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timing.interleaved_seconds({"a": lambda: 1}, repeats=0)
    with pytest.raises(ValueError, match="'a' must return a positive unit count"):
        timing.interleaved_seconds({"a": lambda: None}, repeats=1)
    with pytest.raises(ValueError, match="no rounds"):
        timing.timing_entry([])
