"""Periodic samples for the gauges and the readiness probe: consumer lag, Redis reachability,
live sessions and the expiry backlog.

`run_samplers` is one task per worker; each sampler is also usable alone (tests, `check`). A
failing sample is counted and logged, never fatal: metrics must not stop the worker.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError

from worker.clock import now_ms
from worker.constants import BUCKETS, HEALTH_PROBE_INTERVAL_S
from worker.keys import KeySpace
from worker.metrics import Metrics
from worker.probes import HealthState, probe_redis
from worker.redis_client import RedisClient

log = structlog.get_logger("worker.sampling")

POSITION_TIMEOUT_S = 2.0  # a partition whose position is unknown (just assigned) is skipped


@dataclass(frozen=True, slots=True)
class SessionCounts:
    live: int  # expiry-index entries due after now
    backlog: int  # due at or before now: expired, not announced yet
    oldest_due_ms: int | None  # the smallest due time among the backlog


async def sample_lag(consumer: AIOKafkaConsumer, metrics: Metrics) -> dict[tuple[str, int], int]:
    """High watermark minus position for every assigned partition whose high watermark is known
    (it is after the first fetch); sets `session_worker_consumer_lag`."""
    lag: dict[tuple[str, int], int] = {}
    for tp in list(consumer.assignment()):
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_S)
        except (IllegalStateError, TimeoutError):
            continue  # revoked meanwhile, or its offset is still being looked up
        lag[(tp.topic, tp.partition)] = max(0, highwater - position)
    metrics.set_lag(lag)
    return lag


async def sample_sessions(
    client: RedisClient, key_prefix: str, metrics: Metrics, now: int
) -> SessionCounts:
    """Counts over the bucket expiry indexes, in one pipelined round trip; sets the session
    gauges. The counts are global (every replica sees the same)."""
    keys = KeySpace(key_prefix)
    pipe = client.pipeline(transaction=False)
    for bucket in range(BUCKETS):
        index = keys.bucket_index(bucket)
        pipe.zcount(index, f"({now}", "+inf")
        pipe.zcount(index, "-inf", now)
        pipe.zrange(index, 0, 0, withscores=True)
    replies = await pipe.execute()
    live = backlog = 0
    oldest: int | None = None
    for i in range(BUCKETS):
        live += int(replies[3 * i])
        due = int(replies[3 * i + 1])
        backlog += due
        first = replies[3 * i + 2]
        if due and first:
            score = int(first[0][1])
            oldest = score if oldest is None else min(oldest, score)
    counts = SessionCounts(live, backlog, oldest)
    metrics.set_sessions(live=live, backlog=backlog, oldest_due_ms=oldest, now_ms=now)
    return counts


async def run_samplers(
    stop: asyncio.Event,
    *,
    metrics: Metrics,
    health: HealthState,
    consumer: AIOKafkaConsumer,
    redis: RedisClient,
    key_prefix: str,
    sample_interval_s: float,
    probe_interval_s: float = HEALTH_PROBE_INTERVAL_S,
    clock: Callable[[], int] = now_ms,
) -> None:
    """Until `stop` is set: every `probe_interval_s`, Redis reachability (for /readyz) and the
    consumer lag; every `sample_interval_s`, the Redis session counts."""
    next_sessions = time.monotonic()
    while not stop.is_set():
        reachable = await probe_redis(health, redis, metrics=metrics)
        try:
            await sample_lag(consumer, metrics)
        except Exception as exc:  # noqa: BLE001 - a failed sample is counted, never fatal
            metrics.count_error(exc, "sample")
            log.warning("lag sample failed", error=repr(exc))
        if reachable and time.monotonic() >= next_sessions:
            next_sessions = time.monotonic() + sample_interval_s
            try:
                await sample_sessions(redis, key_prefix, metrics, clock())
            except Exception as exc:  # noqa: BLE001 - a failed sample is counted, never fatal
                metrics.count_error(exc, "sample")
                log.warning("session count sample failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=probe_interval_s)
