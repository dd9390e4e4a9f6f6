"""Waiting for a local Redis replica (``LocalRedis`` started with ``--replicaof``) to hold
everything its primary wrote: the replica tests and ``python -m bench.replicas`` start from
there, so that a first sync still under way is not taken for the setting under test."""

import asyncio
import time

import redis.asyncio as aioredis


def replica_in_sync(info: dict[str, object]) -> bool:
    """The replica is online (past its first sync) and has everything the primary wrote;
    `info` is the primary's ``INFO replication``."""
    replica = info.get("slave0")
    return (
        isinstance(replica, dict)
        and replica.get("state") == "online"
        and replica.get("offset") == info.get("master_repl_offset")
    )


async def until_replica_in_sync(primary: aioredis.Redis, timeout_s: float) -> None:
    """Polls the primary until `replica_in_sync`; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not replica_in_sync(await primary.info("replication")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica did not catch up within {timeout_s:g} s")
        await asyncio.sleep(0.05)
