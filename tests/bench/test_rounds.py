"""The throughput targets take the median of the rounds' own ratios, not a ratio of medians."""

import math

from bench.baselines import RunResult
from bench.report import (
    Results,
    ThroughputRound,
    information_rows,
    median_run,
    ratios,
    target_rows,
)


def _run(name: str, rate: float) -> RunResult:
    return RunResult(name, 1000, rate, 1.0, 1.0, [])


def _results(*rounds: tuple[float, float, float]) -> Results:
    r = Results("2026-11-25", "2026-11-25 00:00", 0.0, False, {}, "test")
    r.rounds = [
        ThroughputRound(_run("ceiling", c), _run("floor", f), _run("worker", w))
        for c, f, w in rounds
    ]
    return r


def test_median_run_is_the_middle_rate_and_the_lower_middle_of_an_even_count() -> None:
    runs = [_run("worker", rate) for rate in (30.0, 10.0, 20.0)]
    assert median_run(runs).rate == 20.0
    assert median_run(runs[:2]).rate == 10.0


def test_ratios_are_the_median_of_each_rounds_own_ratio() -> None:
    # A slow second round slows all three: its ratios match the others', where a ratio of
    # the medians (worker 100 / ceiling 200 = 50%, 100 / 5 = 20x) would not.
    r = _results((400.0, 10.0, 100.0), (200.0, 5.0, 50.0), (380.0, 9.0, 110.0))
    of_ceiling, of_floor = ratios(r)
    assert of_ceiling == 0.25
    assert of_floor == 10.0
    assert r.worker is not None
    assert r.worker.rate == 100.0
    assert r.ceiling is not None
    assert r.ceiling.rate == 380.0
    rows = {row[0]: row for row in target_rows(r)}
    # The withdrawn share-of-the-ceiling target is information now, its ratio as before.
    assert "rounds 25.0%, 25.0%, 28.9%, median 25.0%" in information_rows(r)[0]
    assert "median of 3 rounds" in rows["throughput vs floor"][2]
    assert "rounds 10.0x, 10.0x, 12.2x, median 10.0x" in rows["throughput vs floor"][3]
    assert rows["throughput vs floor"][4] == "**not met**"


def test_a_round_that_measured_nothing_leaves_the_ratio_unknown() -> None:
    r = _results((400.0, 10.0, 100.0), (400.0, 0.0, 0.0))
    assert all(math.isnan(x) for x in ratios(r))
    rows = {row[0]: row for row in target_rows(r)}
    assert rows["throughput vs floor"][4] == "not measured"


def test_a_single_round_reads_as_before() -> None:
    r = _results((400.0, 10.0, 220.0))
    assert ratios(r) == (0.55, 22.0)
    row = next(row for row in target_rows(r) if row[0] == "throughput vs floor")
    assert row[3] == "floor 10.0 records/s -> 22.0x"
    assert row[4] == "**met**"
