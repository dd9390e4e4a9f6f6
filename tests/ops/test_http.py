"""/metrics, /healthz and /readyz, readiness following a real Redis, and `session-worker check`
against them."""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from devenv.redis_local import LocalRedis
from tests.ops.helpers import cli, http_get
from worker.metrics import Metrics
from worker.probes import HealthState, HttpServer
from worker.sampling import run_samplers
from worker.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture
async def server() -> AsyncIterator[HttpServer]:
    http = HttpServer("127.0.0.1", 0, HealthState(stuck_after_s=30), Metrics())
    await http.start()
    yield http
    await http.stop()


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_metrics_are_served_in_the_prometheus_format(server: HttpServer) -> None:
    assert server.metrics is not None
    server.metrics.observe_batch(3, 0.01)
    status, body = await http_get(server.port, "/metrics")
    assert status == 200
    assert 'session_worker_build_info{record_format="' in body
    assert ',version="' in body
    assert "session_worker_batch_records_count 1.0" in body
    assert "# TYPE session_worker_commands_total counter" in body


async def test_healthz_fails_when_the_loop_stops_beating(server: HttpServer) -> None:
    health = server.health
    health.beat()
    status, body = await http_get(server.port, "/healthz")
    assert status == 200, body
    assert '"status": "ok"' in body
    health.last_beat = time.monotonic() - 31  # stuck longer than stuck_after_s
    status, body = await http_get(server.port, "/healthz")
    assert status == 503
    assert '"loop_beat_age_s": 31' in body


async def test_readyz_needs_partitions_and_a_recent_redis_answer(server: HttpServer) -> None:
    health = server.health
    status, body = await http_get(server.port, "/readyz")
    assert status == 503
    assert "no partitions assigned" in body
    assert "redis not checked yet" in body
    health.set_partitions(2)
    health.set_redis(True)
    assert (await http_get(server.port, "/readyz"))[0] == 200
    health.redis_checked = time.monotonic() - health.redis_stale_after_s - 1
    status, body = await http_get(server.port, "/readyz")
    assert status == 503
    assert "redis last checked" in body
    health.set_redis(True)
    health.mark_stopping()
    assert (await http_get(server.port, "/readyz"))[0] == 503


async def test_other_requests_are_answered_plainly(server: HttpServer) -> None:
    assert (await http_get(server.port, "/nope"))[0] == 404
    assert (await http_get(server.port, "/metrics", method="POST"))[0] == 405
    status, body = await http_get(server.port, "/healthz", method="HEAD")
    assert status == 200
    assert body == ""


async def test_readiness_follows_redis_stopping_hanging_and_coming_back(
    settings: Settings,
) -> None:
    health = HealthState(stuck_after_s=30, redis_stale_after_s=5)
    health.set_partitions(1)
    metrics = Metrics()
    stop = asyncio.Event()
    with LocalRedis() as redis_server:
        client = aioredis.Redis.from_url(redis_server.url, socket_connect_timeout=1)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await consumer.start()
        samplers = asyncio.create_task(
            run_samplers(
                stop,
                metrics=metrics,
                health=health,
                consumer=consumer,
                redis=client,
                key_prefix="sw",
                sample_interval_s=0.2,
                probe_interval_s=0.2,
            )
        )
        pid = redis_server.pid
        assert pid is not None
        try:
            await wait_until(lambda: health.readiness().ok, 5, "ready")
            os.kill(pid, signal.SIGSTOP)  # hangs: answers nothing, connections stay open
            try:
                await wait_until(lambda: not health.readiness().ok, 5, "not ready while hung")
                assert "no answer within" in health.readiness().detail["redis"]
            finally:
                os.kill(pid, signal.SIGCONT)
            await wait_until(lambda: health.readiness().ok, 5, "ready again")
            assert metrics.registry.get_sample_value("session_worker_live_sessions") == 0
            await asyncio.to_thread(redis_server.stop)
            await wait_until(lambda: not health.readiness().ok, 5, "not ready once stopped")
            assert "unreachable" in health.readiness().detail["redis"]
            probe_errors = metrics.registry.get_sample_value(
                "session_worker_redis_errors_total", {"where": "probe"}
            )
            assert probe_errors is not None
            assert probe_errors >= 2
        finally:
            stop.set()
            await samplers
            await consumer.stop()
            await client.aclose()


async def test_check_asks_the_worker_on_this_host(server: HttpServer, settings: Settings) -> None:
    here = settings.replace(http_port=server.port, http_host="0.0.0.0")  # noqa: S104
    server.health.beat()

    not_ready = await cli(here, "check")
    assert not_ready.returncode == 1
    assert "/readyz: FAIL 503" in not_ready.stderr
    assert "no partitions assigned" in not_ready.stderr

    server.health.set_partitions(3)
    server.health.set_redis(True)
    ready = await cli(here, "check")
    assert ready.returncode == 0, ready.stderr
    assert "/readyz: ok 200" in ready.stdout

    live = await cli(here, "check", "--live")
    assert live.returncode == 0
    assert "/healthz: ok 200" in live.stdout

    await server.stop()
    gone = await cli(here, "check", "--timeout-s", "1")
    assert gone.returncode == 1
    assert "cannot connect" in gone.stderr


async def test_deep_check_asks_kafka_and_redis_directly(settings: Settings) -> None:
    healthy = await cli(settings, "check", "--deep")
    assert healthy.returncode == 0, healthy.stderr
    assert "kafka: ok" in healthy.stdout
    assert "redis: ok" in healthy.stdout

    with LocalRedis() as redis_server:
        url = redis_server.url
    broken = settings.replace(redis_url=url, commands_topic="no.such.topic")
    failed = await cli(broken, "check", "--deep", "--timeout-s", "5")
    assert failed.returncode == 1
    assert "kafka: FAIL topics missing: no.such.topic" in failed.stderr
    assert "redis: FAIL" in failed.stderr


async def test_check_says_when_the_http_server_is_off(settings: Settings) -> None:
    off = await cli(settings.replace(http_port=0), "check")
    assert off.returncode == 1
    assert "SW_HTTP_PORT=0" in off.stderr
