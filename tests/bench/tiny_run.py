"""What the benchmarks' end-to-end tests share: a benchmark run as a process on the test
session's services, and the tables of its report."""

import os
import subprocess
import sys
from pathlib import Path

from tests.support import Services


def run_bench(
    module: str, args: list[str], services: Services, out: Path, *, timeout: float, report: str
) -> tuple[Path, str]:
    """`python -m <module> <args> --out <out>` on the test session's Kafka and Redis (found
    through the environment, so that `open_services` starts nothing); the report matching the
    glob `report` in `out`, and its text."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers,
        "REDIS_URL": services.redis_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", module, *args, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (md,) = out.glob(report)
    return md, md.read_text(encoding="utf-8")


def each_round(text: str) -> list[list[dict[str, str]]]:
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


def number(cell: str) -> float:
    return float(cell.replace(",", ""))
