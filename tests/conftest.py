"""Real Kafka and Redis, started once per test session; fresh topics and a clean database per
test. No mocks: see devenv.services for how the services are found or started."""

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests.support import Services, WorkerHarness, fresh_settings, services_for_tests
from worker.settings import Settings

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
    return await fresh_settings(
        services.bootstrap_servers, services.redis_url, partitions=TEST_PARTITIONS
    )


@pytest_asyncio.fixture
async def harness(settings: Settings) -> AsyncIterator[WorkerHarness]:
    async with WorkerHarness(settings) as h:
        yield h
