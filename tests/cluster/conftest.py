"""The worker against a real three-primary Redis Cluster (local processes on loopback), with the
suite's Kafka. `settings`, `redis_client` and `harness` mirror tests/conftest.py, so tests read
the same; here they point at the cluster and set `redis_cluster=True`."""

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

import worker.app
import worker.ops.get
from devenv.redis_cluster import LocalRedisCluster
from tests.support import Services, WorkerHarness, fresh_settings
from worker.settings import Settings

CLUSTER_PARTITIONS = 3


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    # The AOF lets a killed node come back with its data (and an empty script cache).
    with LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"), appendonly=True) as cluster:
        yield cluster


@pytest_asyncio.fixture
async def redis_client(redis_cluster: LocalRedisCluster) -> AsyncIterator[aioredis.RedisCluster]:
    if not redis_cluster.running:  # a test that killed a node failed before restarting it
        redis_cluster.start()
    client = aioredis.RedisCluster.from_url(redis_cluster.url)
    await client.flushdb()  # every primary: a clean key space per test
    await client.script_flush()  # every primary: no test relies on scripts loaded before
    yield client
    await client.aclose()


def require_wiring() -> None:
    """The worker builds its client with worker.redis_client.connect_redis; before that, a
    worker would talk to one node of the cluster as if it were all of Redis (MOVED errors)."""
    missing = [m.__name__ for m in (worker.app, worker.ops.get) if not hasattr(m, "connect_redis")]
    if missing:
        pytest.fail(
            f"{', '.join(missing)}: the Redis client is not built with "
            "worker.redis_client.connect_redis yet, so the worker cannot use a cluster"
        )


@pytest_asyncio.fixture
async def settings(
    services: Services, redis_cluster: LocalRedisCluster, redis_client: aioredis.RedisCluster
) -> Settings:
    require_wiring()
    return await fresh_settings(
        services.bootstrap_servers,
        redis_cluster.url,
        partitions=CLUSTER_PARTITIONS,
        redis_cluster=True,
    )


@pytest_asyncio.fixture
async def harness(settings: Settings) -> AsyncIterator[WorkerHarness]:
    async with WorkerHarness(settings) as h:
        yield h
