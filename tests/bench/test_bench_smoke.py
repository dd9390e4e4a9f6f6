"""`python -m bench` end to end at a tiny size, on the test session's Kafka and Redis.

Only that it runs and writes every row: timings on a shared 2-core machine prove nothing here.
"""

import importlib.util
from pathlib import Path

import pytest

from bench.report import TARGET_ROWS
from tests.bench.tiny_run import run_bench
from tests.support import Services

TINY = [
    "--commands", "400",
    "--throughput-commands", "300",
    "--rounds", "2",
    "--latency-s", "2",
    "--floor-s", "1",
    "--soak-s", "2",
    "--expiring", "200",
    "--memory-sessions", "200",
    "--reference-sessions", "100",
    "--layout-sessions", "200",
    "--partitions", "3",
]  # fmt: skip


@pytest.mark.slow
def test_a_tiny_run_writes_every_row(services: Services, tmp_path: Path) -> None:
    md, text = run_bench("bench", TINY, services, tmp_path, timeout=100, report="*.md")
    table = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    for row in TARGET_ROWS:
        line = next((x for x in table.splitlines() if x.startswith(f"| {row} |")), None)
        assert line is not None, f"row {row!r} missing"
        assert "met" in line or "not measured" in line
    sections = (
        "## Throughput",
        "## End-to-end latency",
        "## Where the machine's cores went",
        "## Redis memory",
        "## Expiry",
    )
    for section in sections:
        assert section in text, f"section {section!r} missing"
    # Services found through the environment have no pid here: only the two Python processes.
    cores = text.split("## Where the machine's cores went", 1)[1].split("\n## ", 1)[0]
    worker_row = next(x for x in cores.splitlines() if x.startswith("| worker, 50% of max |"))
    assert worker_row.count("n/a") == 2, worker_row
    rounds = [x for x in text.splitlines() if x.startswith(("| 1 |", "| 2 |"))]
    assert len(rounds) == 2, "one row per throughput round"
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / md.name.replace(".md", ".png")).stat().st_size > 0
