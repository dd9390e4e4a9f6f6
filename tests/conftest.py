"""Real Kafka and Redis, started once per test session; fresh topics and a clean database per
test. No mocks: see worker.devenv.services for how the services are found or started."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests.support import Services, WorkerHarness, services_for_tests
from worker.settings import Settings
from worker.topics import ensure_topics

TEST_PARTITIONS = 3  # more than one, so per-partition order and batching across them are real


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with services_for_tests() as running:
        yield running


@pytest_asyncio.fixture
async def redis_client(services: Services) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(services.redis_url)
    await client.flushdb()  # a clean database per test
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def settings(services: Services, redis_client: aioredis.Redis) -> Settings:
    """Settings with a fresh topic set and consumer group for this test."""
    run = uuid.uuid4().hex[:10]
    s = Settings(
        kafka_bootstrap_servers=services.bootstrap_servers,
        redis_url=services.redis_url,
        commands_topic=f"t{run}.commands",
        events_topic=f"t{run}.events",
        dead_letter_topic=f"t{run}.commands.dlq",
        group_id=f"t{run}",
        poll_timeout_ms=100,
        http_port=0,  # several workers share this machine; tests that probe pick a port
        shutdown_grace_s=10,
        log_format="json",
    )
    await ensure_topics(s, partitions=TEST_PARTITIONS, replication_factor=1)
    return s


@pytest_asyncio.fixture
async def harness(settings: Settings) -> AsyncIterator[WorkerHarness]:
    async with WorkerHarness(settings) as h:
        yield h
