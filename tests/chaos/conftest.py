"""The chaos suite gets its own Kafka and Redis processes, since it kills and restarts them.
Redis runs with an fsync'd AOF (`appendfsync always`): with the default `everysec` a `kill -9`
may drop the last second of writes that the worker was already told were stored."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from devenv.kafka_local import LocalKafka
from devenv.redis_local import LocalRedis
from tests.chaos.verify import TABLE_HEADER, Report
from tests.support import fresh_settings
from worker.settings import Settings

REPORTS: list[Report] = []
CHAOS_PARTITIONS = 6  # room for three replicas with two partitions each


@dataclass(frozen=True)
class ChaosServices:
    kafka: LocalKafka
    redis: LocalRedis


@pytest.fixture(scope="session")
def chaos_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosServices]:
    kafka = LocalKafka()
    redis = LocalRedis(
        appendonly=True,
        data_dir=tmp_path_factory.mktemp("chaos-redis"),
        extra_args=["--appendfsync", "always"],
    )
    with kafka, redis:
        yield ChaosServices(kafka, redis)


@pytest_asyncio.fixture
async def chaos_redis(chaos_services: ChaosServices) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(chaos_services.redis.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def chaos_settings(chaos_services: ChaosServices, chaos_redis: aioredis.Redis) -> Settings:
    return await fresh_settings(
        chaos_services.kafka.bootstrap_servers,
        chaos_services.redis.url,
        partitions=CHAOS_PARTITIONS,
        shutdown_grace_s=15,
        session_timeout_ms=6000,  # the broker's minimum: a killed replica's partitions move soon
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.write_sep("=", "chaos suite: what was sent, what arrived")
    terminalreporter.write_line(TABLE_HEADER)
    for report in REPORTS:
        terminalreporter.write_line(report.row())
