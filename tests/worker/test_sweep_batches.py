"""A sweep sends its events as record batches and finishes its sessions in script runs of many
sessions: each expired session is still announced once, on its key's partition, and a session
that changed after its claim is left as it is. Real Kafka and Redis; sessions are written
already expired, so nothing waits for a TTL."""

import json

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from structlog.testing import capture_logs

from tests.factories import new_id
from tests.support import TopicReader
from worker.clock import now_ms
from worker.expiry import ExpirySweeper
from worker.keys import KeySpace
from worker.metrics import Metrics
from worker.partitioning import partition_of
from worker.session_record import parse_record
from worker.settings import Settings
from worker.snapshot_codec import pack_snapshot
from worker.store import SESSIONS_PER_RUN, Applied, Op, SessionOps, SessionStore
from worker.topics import partitions_of

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


async def _expired_sessions(store: SessionStore, count: int) -> list[str]:
    """Sessions whose TTL ran out a second ago and whose expiry is not announced yet."""
    sids = [new_id("s") for _ in range(count)]
    due = now_ms() - 1000
    results = await store.apply([SessionOps(sid, [_put(sid, 1, due, "cmd-1")]) for sid in sids])
    assert results == [[Applied()]] * count
    return sids


async def test_finishing_many_sessions_in_one_call_leaves_a_changed_one_alone(
    redis_client: aioredis.Redis,
) -> None:
    keys = KeySpace("sw")
    store = SessionStore(redis_client, keys, outbox_ttl_ms=60_000)
    sids = await _expired_sessions(store, SESSIONS)
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


async def test_a_sweep_announces_each_session_once_on_its_keys_partition(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    store = SessionStore(redis_client, KeySpace(settings.key_prefix), settings.outbox_ttl_ms)
    sids = await _expired_sessions(store, SESSIONS)
    metrics = Metrics()
    # Small record batches, so every partition's events need several.
    producer = AIOKafkaProducer(**{**settings.to_producer_params(), "max_batch_size": 2048})
    await producer.start()
    try:
        sweeper = ExpirySweeper(
            store, producer, settings.events_topic, interval_ms=500, batch_max=1000,
            lease_ms=30_000, tombstone_ttl_ms=DAY_MS, clock=now_ms, metrics=metrics,
        )  # fmt: skip
        with capture_logs() as logs:
            assert await sweeper.sweep() is False  # every due session fit in this sweep
            assert await sweeper.sweep() is False  # and nothing is left to announce
    finally:
        await producer.stop()
    assert sweeper.announced == SESSIONS

    reader = TopicReader(settings.kafka_bootstrap_servers, settings.events_topic)
    await reader.start()
    try:
        await reader.wait_count(SESSIONS)
        got = await reader.settle()
    finally:
        await reader.stop()
    partitions = len(await partitions_of(settings.kafka_bootstrap_servers, settings.events_topic))
    assert partitions > 1
    events = [r.json() for r in got]
    assert sorted(e["sessionId"] for e in events) == sorted(sids)  # each once
    assert {e["type"] for e in events} == {"session.expired"}
    for record, event in zip(got, events, strict=True):
        assert record.key == event["sessionId"].encode()
        assert record.partition == partition_of(record.key, partitions)
        assert event["version"] == 2
        assert event["session"] == json.loads(_snapshot(event["sessionId"]))  # the last one

    (line,) = [entry for entry in logs if entry["log_level"] != "debug"]
    assert (line["event"], line["sessions"]) == ("sessions expired", SESSIONS)
    assert 1000 <= line["delay_ms_median"] <= line["delay_ms_max"] < 60_000
    per_session = [entry for entry in logs if entry["log_level"] == "debug"]
    assert sorted(entry["session_id"] for entry in per_session) == sorted(sids)
    assert metrics.expired._value.get() == SESSIONS
