"""A crash between the Redis write and the event's delivery loses nothing and adds nothing:
the replayed records produce the very same events, once each."""

import asyncio

import pytest
import redis.asyncio as aioredis

from tests.factories import create_command
from tests.support import WorkerHarness, fetch_uncommitted
from worker.clock import now_ms
from worker.keys import KeySpace
from worker.processor import BatchProcessor, Limits
from worker.store import SessionStore

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_records_applied_but_never_announced_are_announced_once_with_the_same_events(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    s = harness.settings
    first = create_command()
    conflicting = create_command(first["sessionId"], name="again")
    second = create_command()
    for command in (first, conflicting, second):
        await harness.send(command)

    # A worker that dies right after its Redis round trip: the changes are stored, the events
    # were never sent and the offsets never committed.
    records = await fetch_uncommitted(s, 3)
    store = SessionStore(redis_client, KeySpace(s.key_prefix), s.outbox_ttl_ms)
    limits = Limits(s.max_record_bytes, s.expired_retention_ms, s.tombstone_ttl_ms)
    lost = await BatchProcessor(store, limits, now_ms).process(records)
    assert [o.result for o in lost].count("applied") == 2

    # The next owner replays all three records.
    await harness.run_until_idle()

    events = await harness.events.settle(1.0)
    assert sorted(e.value or b"" for e in events) == sorted(e for o in lost for e in o.events)
    (dead,) = await harness.dead_letters.wait_count(1)
    assert dead.headers["error.code"] == b"conflict"
    # Committed, so the outbox is cleaned up: nothing but the sessions stays in Redis.
    await harness.run_until_idle()
    keys = KeySpace(s.key_prefix)
    for command in (first, second):
        assert not await redis_client.exists(keys.session(command["sessionId"]).outbox)


async def test_outbox_entries_committed_during_a_round_trip_are_cleaned_by_the_next(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    # The command loop marks entries committed while the expiry sweeper's round trip is away
    # (and, batches overlapping, while the loop's own is): none may be dropped unremoved.
    s = harness.settings
    keys = KeySpace(s.key_prefix)
    store = SessionStore(redis_client, keys, s.outbox_ttl_ms)
    await store.claim_expired([0], now_ms(), 1, 1000)  # scripts loaded: the next call goes at once
    sessions = [create_command()["sessionId"] for _ in range(3)]
    for sid in sessions:
        await redis_client.hset(keys.session(sid).outbox, "0:1", b"event")
    store.committed([(sessions[0], "0:1")])

    away = asyncio.create_task(store.claim_expired(range(256), now_ms(), 10, 1000))
    await asyncio.sleep(0)  # the round trip (with sessions[0]'s clean-up) is on its way
    store.committed([(sessions[1], "0:1"), (sessions[2], "0:1")])
    await away
    assert not await redis_client.exists(keys.session(sessions[0]).outbox)

    await store.flush()
    for sid in sessions:
        assert not await redis_client.exists(keys.session(sid).outbox)
