"""A real worker's /metrics, /healthz and /readyz while it processes commands."""

import asyncio
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devenv.ports import free_port
from devenv.redis_local import LocalRedis
from tests.factories import create_command
from tests.ops.helpers import http_get
from tests.support import WorkerHarness

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def wait_status(port: int, path: str, status: int, timeout_s: float) -> str:
    """Polls until `path` answers `status`; returns the body."""
    deadline = time.monotonic() + timeout_s
    seen: object = None
    while time.monotonic() < deadline:
        try:
            seen, body = await http_get(port, path)
        except OSError as exc:
            seen = exc
        else:
            if seen == status:
                return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never answered {status}; last: {seen}")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: str) -> Samples:
    """The exposition text as {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def wait_metric(
    port: int, name: str, value: float, timeout_s: float, **labels: str
) -> Samples:
    """Polls /metrics until the sample `name{labels}` has `value`; returns all samples."""
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        samples = parse((await http_get(port, "/metrics"))[1])
        seen = sample(samples, name, **labels)
        if seen == value:
            return samples
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name}{labels} is {seen}, not {value}")


async def test_metrics_and_probes_move_during_an_end_to_end_run(harness: WorkerHarness) -> None:
    port = free_port()
    harness.start_worker(http_port=port, http_host="127.0.0.1", sample_interval_s=0.5)
    await wait_status(port, "/readyz", 200, timeout_s=10)

    for _ in range(3):
        await harness.send(create_command())
    await harness.send(b"{broken", key=b"k-1")
    await harness.events.wait_count(4)

    created = {"type": "session.create", "outcome": "applied"}
    await wait_metric(port, "session_worker_commands_total", 3, 10, **created)
    m = await wait_metric(port, "session_worker_live_sessions", 3, 10)
    assert sample(m, "session_worker_commands_total", type="unknown", outcome="rejected") == 1
    assert sample(m, "session_worker_dead_letters_total", code="invalid") == 1
    assert sample(m, "session_worker_end_to_end_latency_seconds_count") == 4
    assert (sample(m, "session_worker_batch_duration_seconds_count") or 0) >= 1
    assert (sample(m, "session_worker_batch_records_sum") or 0) == 4
    assert sample(m, "session_worker_assigned_partitions") == 3
    assert (sample(m, "session_worker_rebalances_total", change="assigned") or 0) >= 1
    lags = {labels: v for (name, labels), v in m.items() if name == "session_worker_consumer_lag"}
    assert len(lags) == 3
    assert set(lags.values()) == {0}
    assert sample(m, "session_worker_expiry_backlog") == 0
    assert (await http_get(port, "/healthz"))[0] == 200


async def test_readiness_follows_the_workers_redis(harness: WorkerHarness) -> None:
    port = free_port()
    with LocalRedis() as redis_server:
        harness.start_worker(http_port=port, http_host="127.0.0.1", redis_url=redis_server.url)
        await wait_status(port, "/readyz", 200, timeout_s=10)
        await asyncio.to_thread(redis_server.stop)
        body = await wait_status(port, "/readyz", 503, timeout_s=10)
        assert "redis unreachable" in body
        assert (await http_get(port, "/healthz"))[0] == 200  # alive: waiting is not stuck
        await asyncio.to_thread(redis_server.start)
        await wait_status(port, "/readyz", 200, timeout_s=10)
        await harness.stop_workers()
