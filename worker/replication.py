"""Replica-acknowledged state: Kafka's `acks=all` for the worker's Redis writes.

Redis replicates asynchronously: a primary answers a write before any replica has it, and a
replica promoted after the primary died may lack writes the worker was told were stored. With
`SW_REDIS_MIN_REPLICAS=N` the worker commits a batch's offsets (and the sweeper moves on from
its tombstones) only once N replicas of every primary it wrote to have those writes.

`WAIT` counts the writes of the connection it is sent on, and the worker's writes go over many
connections (a pool; on a cluster, one per node). So on each primary concerned the barrier is
one more write, followed by `WAIT` on the same connection: a primary replicates in order, so a
replica that has the barrier has everything that primary acknowledged before it. One round
trip per primary and batch, overlapped with the previous batch's event delivery; a batch's own
events are sent only after it (sent first, an event could announce a write that a failover then
takes back, and the replayed command would be announced again with other timestamps). Fewer
replicas than asked within `SW_REDIS_REPLICA_TIMEOUT_MS` fails the batch as Redis being down
does: nothing sent or committed, retried after a back-off, never dead-lettered.
"""

import asyncio
import contextlib
import time
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from worker.errors import StoreUnavailableError
from worker.keys import KeySpace, bucket_of
from worker.metrics import Metrics
from worker.redis_client import RedisClient

BARRIER_TTL_MS = 60_000  # the barrier keys are only written to, one per bucket used
# Beyond the WAIT deadline, how long the round trip itself may take before it counts as a
# Redis that does not answer.
ROUND_TRIP_SLACK_S = 5.0


class ReplicaBarrier:
    def __init__(
        self,
        client: RedisClient,
        keys: KeySpace,
        *,
        min_replicas: int,
        timeout_ms: int,
        wait_aof: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self.min_replicas = min_replicas
        self._timeout_ms = timeout_ms
        self._wait_aof = wait_aof
        self._metrics = metrics
        # On a cluster: a client of its own per primary, so that the barrier and its WAIT share
        # a connection (the cluster client routes a keyless WAIT to nodes of its choosing).
        self._nodes: dict[str, aioredis.Redis] = {}

    @property
    def enabled(self) -> bool:
        return self.min_replicas > 0

    async def check(self) -> None:
        """At start: WAITAOF, when asked for, exists on this Redis (7.2 and later)."""
        if not (self.enabled and self._wait_aof):
            return
        try:
            await self._client.execute_command("WAITAOF", 0, 0, 0)  # answers at once
        except ResponseError as exc:
            if "unknown command" in str(exc).lower():
                raise StoreUnavailableError(
                    "SW_REDIS_WAIT_AOF=true, but this Redis has no WAITAOF (Redis 7.2 or later)"
                ) from None
            raise StoreUnavailableError(f"Redis: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"Redis: {exc}") from exc

    async def replicated(self, session_ids: Iterable[str]) -> None:
        """Returns once `min_replicas` replicas of each primary holding these sessions have
        every write that primary acknowledged so far; raises `StoreUnavailableError` if they
        do not within the deadline."""
        if not self.enabled:
            return
        buckets = {bucket_of(session_id) for session_id in session_ids}
        if not buckets:
            return
        if not isinstance(self._client, aioredis.RedisCluster):
            await self._barrier(self._client, self._barrier_key(min(buckets)), "")
            return
        per_node: dict[str, str] = {}
        for bucket in sorted(buckets):
            key = self._barrier_key(bucket)
            node = self._client.get_node_from_key(key)
            if node is None:
                raise StoreUnavailableError("Redis Cluster: no primary for a written slot")
            per_node.setdefault(node.name, key)
        await asyncio.gather(
            *(self._barrier(self._node_client(name), key, name) for name, key in per_node.items())
        )

    def _barrier_key(self, bucket: int) -> str:
        return self._keys.bucket_base(bucket) + "w"  # the bucket's hash tag: its primary

    def _node_client(self, name: str) -> aioredis.Redis:
        client = self._nodes.get(name)
        if client is None:
            assert isinstance(self._client, aioredis.RedisCluster)  # noqa: S101 - cluster only
            node = self._client.get_node(node_name=name)
            if node is None:
                raise StoreUnavailableError(f"Redis Cluster: {name} is no longer a node")
            pool = aioredis.ConnectionPool(
                connection_class=node.connection_class, **node.connection_kwargs
            )
            client = self._nodes[name] = aioredis.Redis(connection_pool=pool)
        return client

    async def _barrier(self, client: aioredis.Redis, key: str, node: str) -> None:
        """`node`: the primary's name on a cluster, "" for a single server."""
        where = f"Redis {node}" if node else "Redis"
        started = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        pipe.set(key, b"1", px=BARRIER_TTL_MS)
        if self._wait_aof:
            # Each replica also fsynced it to its AOF: survives a replica's machine crash too.
            pipe.execute_command("WAITAOF", 0, self.min_replicas, self._timeout_ms)
        else:
            pipe.wait(self.min_replicas, self._timeout_ms)
        try:
            async with asyncio.timeout(self._timeout_ms / 1000 + ROUND_TRIP_SLACK_S):
                _, reply = await pipe.execute()
        except TimeoutError as exc:
            self._count("error")
            raise StoreUnavailableError(f"{where}: no answer to WAIT") from exc
        except (RedisError, OSError) as exc:
            self._count("error")
            if node:
                await self._forget(node, moved=str(exc).startswith("MOVED"))
            raise StoreUnavailableError(f"{where}: {exc}") from exc
        acknowledged = int(reply[1] if isinstance(reply, list) else reply)
        if acknowledged < self.min_replicas:
            self._count("short")
            raise StoreUnavailableError(
                f"{where}: {acknowledged} of {self.min_replicas} replica(s) acknowledged "
                f"the writes within {self._timeout_ms} ms (SW_REDIS_MIN_REPLICAS)"
            )
        self._count("ok", time.perf_counter() - started)

    async def _forget(self, node: str, *, moved: bool) -> None:
        """After a failover or restart: the node's connection is made anew next time, and on
        MOVED the cluster client reads the slot map again (it would otherwise keep sending the
        barrier to the old primary until its own commands met a MOVED)."""
        stale = self._nodes.pop(node, None)
        if stale is not None:
            await stale.aclose()
        if moved and isinstance(self._client, aioredis.RedisCluster):
            with contextlib.suppress(RedisError, OSError):
                await self._client.nodes_manager.initialize()

    def _count(self, result: str, seconds: float | None = None) -> None:
        if self._metrics is not None:
            self._metrics.observe_replica_wait(result, seconds)

    async def aclose(self) -> None:
        for client in self._nodes.values():
            await client.aclose()
        self._nodes.clear()
