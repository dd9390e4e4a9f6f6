"""The chaos suite gets its own Kafka and Redis processes, since it kills and restarts them.
Redis runs with an fsync'd AOF (`appendfsync always`): with the default `everysec` a `kill -9`
may drop the last second of writes that the worker was already told were stored.

The failover scenarios get a Redis Cluster of three primaries each with one replica, the nodes
with the same fsync'd AOF: what they lose, they lose through asynchronous replication, not
through the local disk."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from devenv.kafka_local import LocalKafka
from devenv.redis_cluster import LocalRedisCluster
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


@pytest.fixture(scope="session")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """Six nodes: three primaries, one replica each; started by the first test that needs it."""
    with LocalRedisCluster(
        tmp_path_factory.mktemp("chaos-redis-cluster"),
        appendonly=True,
        extra_args=["--appendfsync", "always"],
        replicas_per_primary=1,
    ) as cluster:
        yield cluster


@pytest_asyncio.fixture
async def chaos_cluster_client(
    chaos_cluster: LocalRedisCluster,
) -> AsyncIterator[aioredis.RedisCluster]:
    """The cluster whole again (paused nodes resumed, killed ones restarted, every replica in
    sync; roles may have moved in an earlier failover) and flushed for this test."""
    chaos_cluster.start()
    client = aioredis.RedisCluster.from_url(chaos_cluster.url)
    await client.flushdb()  # every primary; the replicas follow
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def chaos_cluster_settings(
    chaos_services: ChaosServices,
    chaos_cluster: LocalRedisCluster,
    chaos_cluster_client: aioredis.RedisCluster,
) -> Settings:
    """Like `chaos_settings`, for workers on the replicated cluster (`SW_REDIS_CLUSTER`)."""
    return await fresh_settings(
        chaos_services.kafka.bootstrap_servers,
        chaos_cluster.url,
        partitions=CHAOS_PARTITIONS,
        shutdown_grace_s=15,
        session_timeout_ms=6000,
        redis_cluster=True,
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.write_sep("=", "chaos suite: what was sent, what arrived")
    terminalreporter.write_line(TABLE_HEADER)
    for report in REPORTS:
        terminalreporter.write_line(report.row())
