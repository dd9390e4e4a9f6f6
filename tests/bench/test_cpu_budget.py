"""Where the cores went: CPU time of real processes, and what the report works out from it."""

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.baselines import RunResult
from bench.cpu_budget import CpuMeter, CpuUse
from bench.offered import LoadResult
from bench.profiling import PieceCost
from bench.report import (
    Results,
    ThroughputRound,
    cores_section,
    cpu_by_load_rows,
    cpu_phases,
    target_rows,
)


@pytest.fixture
def busy_and_idle() -> Iterator[tuple[int, int]]:
    """A process spinning on one core and one asleep."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield busy.pid, idle.pid
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()


def test_a_spinning_process_keeps_about_one_core_busy_and_a_sleeping_one_none(
    busy_and_idle: tuple[int, int],
) -> None:
    busy, idle = busy_and_idle
    meter = CpuMeter({"busy": busy, "idle": idle, "external": None})
    time.sleep(0.3)  # past the interpreters' start-up
    mark = meter.mark()
    time.sleep(1.0)
    use = meter.since(mark, items=1000)
    assert set(use.cpu_s) == {"busy", "idle"}, "a service without a pid is not measured"
    # One of the machine's two cores: the other runs this test and whatever else is running.
    assert 0.6 <= use.cores("busy") <= 1.05
    assert use.cores("idle") < 0.05
    assert use.us_per_item("busy") == pytest.approx(use.cpu_s["busy"] / 1000 * 1e6)
    assert math.isnan(use.cores("external"))
    assert use.total_cores == pytest.approx(use.cores("busy") + use.cores("idle"))


def test_a_process_gone_during_the_phase_is_left_out(busy_and_idle: tuple[int, int]) -> None:
    busy, _ = busy_and_idle
    doomed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    meter = CpuMeter({"busy": busy, "doomed": doomed.pid})
    mark = meter.mark()
    doomed.kill()
    doomed.wait()
    assert set(meter.since(mark, items=1).cpu_s) == {"busy"}
    assert set(meter.with_process("self", os.getpid()).since(mark, 1).cpu_s) == {"busy"}


def _run(name: str, rate: float, cpu: dict[str, float], items: int, wall_s: float) -> RunResult:
    return RunResult(name, items, rate, wall_s, wall_s, [], cpu=CpuUse(wall_s, cpu, items))


def _results() -> Results:
    r = Results("2026-12-06", "2026-12-06 00:00", 0.0, False, {}, "test")
    ceiling = _run("ceiling", 40_000.0, {"benchmark": 4.0, "broker": 1.0, "Redis": 0.0}, 200_000, 5)
    floor = _run("floor", 600.0, {"benchmark": 4.0, "broker": 4.0, "Redis": 2.0}, 12_000, 20)
    # 100 µs of the worker, 10 of the broker and 30 of Redis per command.
    worker = _run(
        "worker",
        10_000.0,
        {"worker": 20.0, "benchmark": 0.2, "broker": 2.0, "Redis": 6.0},
        200_000,
        20,
    )
    r.rounds = [ThroughputRound(ceiling, floor, worker)]
    half = LoadResult(5_000.0, 10.0, 50_000, 50_000, 0, 0, [5.0] * 98 + [80.0, 90.0])
    half.cpu = CpuUse(10.0, {"worker": 6.0, "benchmark": 3.0, "broker": 4.0, "Redis": 2.0}, 50_000)
    r.loads = [(0.5, half)]
    passing = LoadResult(5_000.0, 10.0, 50_000, 50_000, 0, 0, [2.0] * 98 + [10.0, 10.0])
    passing.cpu = CpuUse(10.0, {"worker": 0.1, "benchmark": 5.0, "broker": 4.0}, 50_000)
    r.ceiling_loads = [(0.5, passing)]
    r.pieces = [
        PieceCost("decode", 10.0),
        PieceCost("  of which msgspec", 6.0, on_create_path=False),
        PieceCost("encode", 5.5),
        PieceCost("a log line at debug", 8.0, on_create_path=False),
    ]
    return r


def test_the_report_shows_each_phase_and_works_out_what_the_unmet_targets_take() -> None:
    r = _results()
    assert [label for label, _ in cpu_phases(r)] == [
        "ceiling, max throughput (from 1st commit)",
        "floor, max throughput (start-up incl.)",
        "worker, max throughput (from 1st commit)",
        "worker, 50% of max",
        "ceiling at 50% of the worker's max",
    ]
    text = "\n".join(cores_section(r))
    cores = os.cpu_count() or 1
    row = next(line for line in text.splitlines() if line.startswith("| worker, max"))
    assert row == (
        "| worker, max throughput (from 1st commit) | 10,000 | 1.00 (100 µs) | 0.01 (1 µs) "
        "| 0.10 (10 µs) | 0.30 (30 µs) | 1.41 |"
    )
    # The pass-through spent 20 + 5 + 0 µs per record, the worker's run 100 + 1 + 10 + 30.
    assert r.rounds[0].cpu_ratio == pytest.approx(141 / 25)
    assert "At 3.0x the pass-through's 25 µs per record" in text
    assert "may cost the whole system 75 µs; the worker's run spent 141" in text
    assert "66 µs too many" in text
    assert "A create's own pieces without any I/O take 15.5 µs" in text
    assert f"kept 1.50 of the {cores} cores busy (worker 0.60, benchmark 0.30" in text
    assert "the pass-through at the same load 0.91, with p99 10.0 ms" in text
    rows = {row[0]: row for row in target_rows(r)}
    assert rows["CPU per command vs pass-through"][4] == "**not met**"
    assert "-> 5.64x" in rows["CPU per command vs pass-through"][3]
    assert rows["p99 at 50% of max vs pass-through"][3].endswith("-> 9.0x")
    assert rows["p99 at 25% of max vs pass-through"][4] == "not measured"
    by_load = cpu_by_load_rows(r)
    assert by_load[-1].startswith("| max throughput |")
    assert by_load[-1].endswith("| 141 | benchmark 20 + broker 5 + Redis 0 | 25 | 5.64x |")


def test_met_targets_need_no_working_out() -> None:
    r = _results()
    r.rounds[0].worker.cpu = CpuUse(20, {"worker": 8.0, "broker": 2.0, "Redis": 4.0}, 200_000)
    half = r.loads[0][1]
    half.latencies_ms = [5.0] * 100
    text = "\n".join(cores_section(r))
    assert "At 3.0x the pass-through" not in text
    assert "At 50% of the worker's max" not in text
    assert "| worker, 50% of max |" in text
    rows = {row[0]: row for row in target_rows(r)}
    assert rows["CPU per command vs pass-through"][4] == "**met**"
    assert rows["p99 at 50% of max vs pass-through"][4] == "**met**"
