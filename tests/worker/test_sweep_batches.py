"""A sweep sends its events as record batches and finishes its sessions in script runs of many
sessions: each expired session is still announced once, on its key's partition, and a session
that changed after its claim is left as it is. Real Kafka and Redis; sessions are written
already expired, so nothing waits for a TTL."""

import asyncio
import json
from collections import Counter

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from structlog.testing import capture_logs

from session_client.connection import partitions_of
from tests.factories import new_id
from tests.support import TopicReader
from worker.clock import now_ms
from worker.expiry import ExpirySweeper
from worker.keys import KeySpace, bucket_of
from worker.metrics import Metrics
from worker.partitioning import partition_of
from worker.session_record import parse_record
from worker.settings import Settings
from worker.snapshot_codec import pack_snapshot
from worker.store import SESSIONS_PER_RUN, Applied, Op, SessionOps, SessionStore

pytestmark = pytest.mark.asyncio(loop_scope="function")

DAY_MS = 86_400_000
# More than one script run's worth, and spread over many buckets.
SESSIONS = 2 * SESSIONS_PER_RUN + 22


def _snapshot(sid: str) -> bytes:
    return json.dumps({"id": sid, "orgId": "org-1", "status": "active"}).encode()


def _put(sid: str, version: int, expires_ms: int, command_id: str) -> Op:
    return Op(
        "put", f"0:{version}", version - 1, False, b"event", pack_snapshot(_snapshot(sid)),
        expires_ms, version, "org-1", "active", command_id, expires_ms + DAY_MS,
    )  # fmt: skip


def _ids(count: int, buckets: range = range(256)) -> list[str]:
    sids: list[str] = []
    while len(sids) < count:
        sid = new_id("s")
        if bucket_of(sid) in buckets:
            sids.append(sid)
    return sids


async def _expired_sessions(store: SessionStore, sids: list[str]) -> list[str]:
    """Sessions whose TTL ran out a second ago and whose expiry is not announced yet."""
    count = len(sids)
    due = now_ms() - 1000
    results = await store.apply([SessionOps(sid, [_put(sid, 1, due, "cmd-1")]) for sid in sids])
    assert results == [[Applied()]] * count
    return sids


async def test_finishing_many_sessions_in_one_call_leaves_a_changed_one_alone(
    redis_client: aioredis.Redis,
) -> None:
    keys = KeySpace("sw")
    store = SessionStore(redis_client, keys, outbox_ttl_ms=60_000)
    sids = await _expired_sessions(store, _ids(SESSIONS))
    claimed = await store.claim_expired(range(256), now_ms(), 1000, 30_000)
    assert sorted(c.session_id for c in claimed) == sorted(sids)

    # Re-created after the claim (a create of the same id would announce the expiry itself).
    recreated = sids[SESSIONS // 2]
    later = now_ms() + 600_000
    assert await store.apply([SessionOps(recreated, [_put(recreated, 2, later, "cmd-2")])]) == [
        [Applied()]
    ]

    assert await store.finish_expired(claimed, now_ms() + DAY_MS) == SESSIONS - 1
    assert await store.finish_expired(claimed, now_ms() + DAY_MS) == 0  # not twice

    for sid in sids:
        k = keys.session(sid)
        raw = await redis_client.get(k.record)
        assert isinstance(raw, bytes)
        record = parse_record(raw)
        if sid == recreated:
            assert (record.version, record.status, record.expires_ms) == (2, "active", later)
            assert await redis_client.zscore(k.index, sid) == later
        else:
            assert (record.version, record.status, record.copy) == (2, "expired", None), sid
            assert await redis_client.zscore(k.index, sid) is None
    assert await store.claim_expired(range(256), now_ms(), 1000, 30_000) == []


@pytest.mark.parametrize("batch_max", [1000, 3])
async def test_a_sweep_announces_each_session_once_on_its_keys_partition(
    settings: Settings, redis_client: aioredis.Redis, batch_max: int
) -> None:
    """With 1000 per bucket, one pass takes them all; with 3, the sweeper makes passes (each
    pass's tombstones written while the next one claims) until nothing is due. The sessions
    share two buckets, so passes of 3 per bucket take as many passes as the fuller one needs."""
    keys = KeySpace(settings.key_prefix)
    store = SessionStore(redis_client, keys, settings.outbox_ttl_ms)
    sids = await _expired_sessions(store, _ids(SESSIONS, range(2)))
    metrics = Metrics()
    # Small record batches, so every partition's events need several.
    producer = AIOKafkaProducer(**{**settings.to_producer_params(), "max_batch_size": 2048})
    await producer.start()
    try:
        sweeper = ExpirySweeper(
            store, producer, settings.events_topic, interval_ms=500, batch_max=batch_max,
            lease_ms=30_000, tombstone_ttl_ms=DAY_MS, clock=now_ms, metrics=metrics,
        )  # fmt: skip
        with capture_logs() as logs:
            passes = 1
            while await sweeper.sweep():
                passes += 1
            assert await sweeper.sweep() is False  # nothing is left to announce
    finally:
        await producer.stop()
    assert sweeper.announced == SESSIONS
    fullest = max(Counter(bucket_of(sid) for sid in sids).values())
    # A pass that took exactly what was left was full too; the one after it finds nothing.
    needed = 1 if batch_max == 1000 else -(-fullest // batch_max)
    assert passes in (needed, needed + 1)
    for sid in sids:  # every tombstone written once the last pass returned
        k = keys.session(sid)
        raw = await redis_client.get(k.record)
        assert isinstance(raw, bytes)
        assert parse_record(raw).status == "expired"
        assert await redis_client.zscore(k.index, sid) is None

    reader = TopicReader(settings.kafka_bootstrap_servers, settings.events_topic)
    await reader.start()
    try:
        await reader.wait_count(SESSIONS)
        got = await reader.settle()
    finally:
        await reader.stop()
    partitions = len(await partitions_of(settings.kafka, settings.events_topic))
    assert partitions > 1
    events = [r.json() for r in got]
    assert sorted(e["sessionId"] for e in events) == sorted(sids)  # each once
    assert {e["type"] for e in events} == {"session.expired"}
    for record, event in zip(got, events, strict=True):
        assert record.key == event["sessionId"].encode()
        assert record.partition == partition_of(record.key, partitions)
        assert event["version"] == 2
        assert event["session"] == json.loads(_snapshot(event["sessionId"]))  # the last one

    lines = [entry for entry in logs if entry["log_level"] != "debug"]
    assert {entry["event"] for entry in lines} == {"sessions expired"}
    assert sum(entry["sessions"] for entry in lines) == SESSIONS
    assert all(1000 <= e["delay_ms_median"] <= e["delay_ms_max"] < 60_000 for e in lines)
    per_session = [entry for entry in logs if entry["log_level"] == "debug"]
    assert sorted(entry["session_id"] for entry in per_session) == sorted(sids)
    assert metrics.expired._value.get() == SESSIONS


async def test_a_sweeper_stopping_finishes_the_pass_in_flight(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """A full pass leaves its tombstones to be written while the next pass runs; stopping
    writes them, rather than leaving the leases to lapse and the events to be sent again."""
    keys = KeySpace(settings.key_prefix)
    store = SessionStore(redis_client, keys, settings.outbox_ttl_ms)
    sids = await _expired_sessions(store, _ids(60, range(1)))
    producer = AIOKafkaProducer(**settings.to_producer_params())
    await producer.start()
    try:
        sweeper = ExpirySweeper(
            store, producer, settings.events_topic, interval_ms=500, batch_max=5,
            lease_ms=30_000, tombstone_ttl_ms=DAY_MS, clock=now_ms,
        )  # fmt: skip
        stop = asyncio.Event()
        running = asyncio.create_task(sweeper.run(stop))
        for _ in range(10_000):  # at most ~10 s
            if sweeper.announced >= 10:
                break
            await asyncio.sleep(0.001)
        stop.set()
        await running
        announced = sweeper.announced  # as run() returned
    finally:
        await producer.stop()
    assert 10 <= announced < len(sids)  # stopped part-way
    statuses = []
    for sid in sids:
        raw = await redis_client.get(keys.session(sid).record)
        assert isinstance(raw, bytes)
        statuses.append(parse_record(raw).status)
    # Every session claimed is finished: none is left leased (claimed, not a tombstone).
    assert statuses.count("expired") == announced == sweeper.announced
    due = await redis_client.zrangebyscore(keys.bucket_index(0), "-inf", now_ms())
    assert len(due) == len(sids) - announced
