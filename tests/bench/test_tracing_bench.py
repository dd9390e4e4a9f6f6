"""`python -m bench.tracing`: its OTLP sink counts what the real exporter sends, and the
benchmark end to end at its smallest, on the test session's Kafka (its own Redis).

Only that it runs, measures the three variants, and that exactly the on-worker exported spans (a
command span per command): timings on a shared 2-core machine prove nothing here.
"""

import subprocess
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.tracing import REPO, SinkProc, order
from tests.bench.tiny_run import each_round, number, run_bench
from tests.support import Services

COMMANDS = 300
TINY = [
    "--rounds", "1",
    "--commands", str(COMMANDS),
    "--latency-s", "2",
    "--partitions", "3",
]  # fmt: skip


def test_the_sink_counts_what_the_exporter_sends_by_kind(tmp_path: Path) -> None:
    with SinkProc(tmp_path / "sink.log") as sink:
        provider = TracerProvider()
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.url}/v1/traces"))
        )
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("process t.commands"):  # a batch: a root
            for name in ("process t.commands", "process t.commands", "redis apply", "send t"):
                with tracer.start_as_current_span(name):
                    pass
        provider.shutdown()
        stats = sink.stats_now()
    assert (stats.requests, stats.spans, stats.errors) == (5, 5, 0)
    assert stats.kinds == {"batch": 1, "command": 2, "redis": 1, "send": 1}
    assert stats.body_bytes > 0


def test_rounds_alternate_and_keep_off_next_to_both() -> None:
    assert order(1) == ("before", "off", "on")
    assert order(2) == ("on", "off", "before")
    assert order(3) == order(1)


@pytest.mark.slow
def test_a_tiny_run_measures_the_three_variants(services: Services, tmp_path: Path) -> None:
    known = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", "d4aeec3^{commit}"],
        capture_output=True,
        check=False,
    )
    if known.returncode != 0:
        pytest.skip("the before-commit is not in this clone's history")
    _, text = run_bench(
        "bench.tracing", TINY, services, tmp_path, timeout=180, report="*-tracing.md"
    )
    assert "THE RUN FAILED" not in text
    assert "| max throughput, commands/s |" in text.split("## Before, off and on", 1)[1]
    rows = {row["variant"]: row for row in each_round(text)[0]}
    assert set(rows) == {"before", "off", "on"}
    for row in rows.values():
        assert number(row["commands/s"]) > 0, row
    assert rows["before"]["spans"] == rows["off"]["spans"] == "0"
    assert number(rows["on"]["command"]) == COMMANDS, rows["on"]
    assert number(rows["on"]["batch"]) >= 1, rows["on"]
    # The worktree of the before-commit is gone.
    listed = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True, check=True
    )
    assert "worker-before-" not in listed.stdout
