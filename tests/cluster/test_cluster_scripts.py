"""The store's scripts on a cluster: loaded on every primary, and a node that lost its script
cache (a restart, a failover to a replica that never saw SCRIPT LOAD) is served again without
running anything twice. Store level, no Kafka."""

import hashlib
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode

from devenv.redis_cluster import LocalRedisCluster
from tests.factories import new_id
from worker.clock import now_ms
from worker.keys import KeySpace, bucket_of
from worker.redis_client import connect_redis
from worker.settings import Settings
from worker.store import SCRIPTS, ExpiredSession, ReadRequest, SessionStore, script_source

pytestmark = pytest.mark.asyncio(loop_scope="function")

PREFIX = "sw"
SESSIONS = 60  # over all three primaries


@pytest_asyncio.fixture
async def store(
    redis_cluster: LocalRedisCluster, redis_client: aioredis.RedisCluster
) -> AsyncIterator[SessionStore]:
    client = connect_redis(Settings(redis_url=redis_cluster.url, redis_cluster=True))
    yield SessionStore(client, KeySpace(PREFIX), outbox_ttl_ms=60_000)
    await client.aclose()


async def _expired_sessions(client: aioredis.RedisCluster, count: int) -> dict[str, int]:
    """Sessions whose TTL ran out and whose expiry is not announced: session id -> version.
    Kept as a 0.1 worker kept them (a meta HASH with a plain copy): that is read too."""
    keys = KeySpace(PREFIX)
    due = now_ms() - 1000
    sessions = {new_id("s"): 1 + i % 3 for i in range(count)}
    for sid, version in sessions.items():
        k = keys.session(sid)
        snapshot = json.dumps({"id": sid, "name": "gone"})
        await client.hset(
            k.meta, mapping={"v": version, "st": "active", "o": "org-1", "x": due, "a": snapshot}
        )
        await client.zadd(k.index, {sid: due})
    return sessions


async def _scripts_on(client: aioredis.RedisCluster, node: ClusterNode) -> list[bool]:
    shas = [
        hashlib.sha1(script_source(name).encode(), usedforsecurity=False).hexdigest()
        for name in SCRIPTS
    ]
    reply = await client.execute_command("SCRIPT EXISTS", *shas, target_nodes=node)
    return [bool(x) for x in reply]


def _node_of_bucket(client: aioredis.RedisCluster, bucket: int) -> ClusterNode:
    node = client.get_node_from_key(KeySpace(PREFIX).bucket_index(bucket))
    assert node is not None
    return node


async def _claim_all(store: SessionStore) -> list[ExpiredSession]:
    return await store.claim_expired(range(256), now_ms(), limit=1000, lease_ms=30_000)


async def test_scripts_are_loaded_on_every_primary(
    store: SessionStore, redis_client: aioredis.RedisCluster
) -> None:
    await store.read([ReadRequest("s-1", ["0:0"], ["c-1"])])
    for node in redis_client.get_primaries():
        assert await _scripts_on(redis_client, node) == [True] * len(SCRIPTS)


async def test_a_node_that_lost_its_scripts_runs_them_again_and_nothing_runs_twice(
    store: SessionStore, redis_client: aioredis.RedisCluster
) -> None:
    sessions = await _expired_sessions(redis_client, SESSIONS)
    await store.read([ReadRequest("s-1", ["0:0"], ["c-1"])])  # scripts loaded everywhere
    flushed = _node_of_bucket(redis_client, 0)
    await redis_client.execute_command("SCRIPT FLUSH", target_nodes=flushed)  # as after a failover

    claimed = await _claim_all(store)

    # Every due session claimed once: the runs on the other nodes were not repeated (a second
    # claim run would find them leased and return nothing for them).
    assert sorted(e.session_id for e in claimed) == sorted(sessions)
    assert {e.session_id: e.version for e in claimed} == sessions
    # Only what ran there is back in its cache (EVAL caches the script it runs).
    assert await _scripts_on(redis_client, flushed) == [n == "claim_expired" for n in SCRIPTS]
    assert await store.finish_expired(claimed, now_ms() + 60_000) == SESSIONS
    assert await _claim_all(store) == []


async def test_a_killed_and_restarted_node_is_used_again_without_its_old_scripts(
    store: SessionStore, redis_cluster: LocalRedisCluster, redis_client: aioredis.RedisCluster
) -> None:
    sessions = await _expired_sessions(redis_client, SESSIONS)
    await store.read([ReadRequest("s-1", ["0:0"], ["c-1"])])
    victim = next(
        i
        for i, port in enumerate(redis_cluster.ports)
        if port == _node_of_bucket(redis_client, 0).port
    )
    redis_cluster.kill(victim)  # its data comes back from the AOF; its script cache does not
    redis_cluster.start()

    claimed = await _claim_all(store)

    assert sorted(e.session_id for e in claimed) == sorted(sessions)
    assert await store.finish_expired(claimed, now_ms() + 60_000) == SESSIONS
    # The sessions really lived on all three primaries, the restarted one included.
    buckets = {bucket_of(sid) for sid in sessions}
    nodes = {_node_of_bucket(redis_client, b).name for b in buckets}
    assert len(nodes) == 3
