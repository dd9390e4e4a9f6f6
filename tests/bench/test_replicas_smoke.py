"""`python -m bench.replicas` end to end at its smallest, on the test session's Kafka (its own
Redis primary and replica).

Only that it runs, measures both settings, and that with `SW_REDIS_MIN_REPLICAS=1` every wait
for the replica came back `ok`: timings on a shared 2-core machine prove nothing here.
"""

from pathlib import Path

import pytest

from tests.bench.tiny_run import each_round, number, run_bench
from tests.support import Services

TINY = [
    "--rounds", "1",
    "--commands", "300",
    "--latency-s", "2",
    "--rate", "200",
    "--partitions", "3",
]  # fmt: skip


@pytest.mark.slow
def test_a_tiny_run_measures_both_settings(services: Services, tmp_path: Path) -> None:
    _, text = run_bench(
        "bench.replicas", TINY, services, tmp_path, timeout=90, report="*-replicas.md"
    )
    assert "THE RUN FAILED" not in text
    summary = text.split("## Off (SW_REDIS_MIN_REPLICAS=0) against on (=1)", 1)[1]
    assert "| max throughput, commands/s |" in summary

    at_max, at_load = each_round(text)
    rows = {row["setting"]: row for row in at_max}
    assert set(rows) == {"off", "on"}
    for row in rows.values():
        assert number(row["commands/s"]) > 0, row
        assert number(row["batches"]) > 0, row
    on, off = rows["on"], rows["off"]
    assert (on["short"], on["error"]) == ("0", "0"), on
    # A wait per committed batch (give or take the two batches in flight at a scrape).
    assert number(on["batches"]) <= number(on["waits ok"]) <= number(on["batches"]) + 2, on
    assert (off["waits ok"], off["short"], off["error"]) == ("0", "0", "0"), off

    loads = {row["setting"]: row for row in at_load}
    assert set(loads) == {"off", "on"}
    for row in loads.values():
        assert row["unanswered"] == "0", row
    assert number(loads["on"]["waits ok"]) >= 1
    assert (loads["on"]["short"], loads["on"]["error"]) == ("0", "0"), loads["on"]
    assert loads["off"]["waits ok"] == "0"
