"""`python -m bench.replicas` end to end at its smallest, on the test session's Kafka (its own
Redis primary and replica).

Only that it runs, measures both settings, and that with `SW_REDIS_MIN_REPLICAS=1` every wait
for the replica came back `ok`: timings on a shared 2-core machine prove nothing here.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Services

TINY = [
    "--rounds", "1",
    "--commands", "300",
    "--latency-s", "2",
    "--rate", "200",
    "--partitions", "3",
]  # fmt: skip


def _tables(text: str) -> list[list[dict[str, str]]]:
    """The tables of "Each round" (max throughput, then the offered loads), each as one
    {column: cell} per row."""
    section = text.split("## Each round", 1)[1].split("\n## ", 1)[0]
    tables = []
    for block in section.split("\n\n"):
        lines = [x for x in block.splitlines() if x.startswith("|") and not x.startswith("|---")]
        if lines:
            header, *rows = ([cell.strip() for cell in x.strip("|").split("|")] for x in lines)
            tables.append([dict(zip(header, row, strict=True)) for row in rows])
    return tables


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.mark.slow
def test_a_tiny_run_measures_both_settings(services: Services, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers,
        "REDIS_URL": services.redis_url,  # found, so that open_services starts nothing
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.replicas", *TINY, "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (md,) = tmp_path.glob("*-replicas.md")
    text = md.read_text(encoding="utf-8")
    assert "THE RUN FAILED" not in text
    summary = text.split("## Off (SW_REDIS_MIN_REPLICAS=0) against on (=1)", 1)[1]
    assert "| max throughput, commands/s |" in summary

    at_max, at_load = _tables(text)
    rows = {row["setting"]: row for row in at_max}
    assert set(rows) == {"off", "on"}
    for row in rows.values():
        assert _number(row["commands/s"]) > 0, row
        assert _number(row["batches"]) > 0, row
    on, off = rows["on"], rows["off"]
    assert (on["short"], on["error"]) == ("0", "0"), on
    # A wait per committed batch (give or take the two batches in flight at a scrape).
    assert _number(on["batches"]) <= _number(on["waits ok"]) <= _number(on["batches"]) + 2, on
    assert (off["waits ok"], off["short"], off["error"]) == ("0", "0", "0"), off

    loads = {row["setting"]: row for row in at_load}
    assert set(loads) == {"off", "on"}
    for row in loads.values():
        assert row["unanswered"] == "0", row
    assert _number(loads["on"]["waits ok"]) >= 1
    assert (loads["on"]["short"], loads["on"]["error"]) == ("0", "0"), loads["on"]
    assert loads["off"]["waits ok"] == "0"
