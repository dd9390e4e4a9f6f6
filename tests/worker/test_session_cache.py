"""The processor's session cache: a session this worker changed is decided on what it remembers,
without a read, and Redis refuses every guess that no longer holds."""

import json
from collections.abc import Sequence
from itertools import count
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.factories import create_command, delete_command, update_command
from tests.support import CommandRecord, command_records
from worker.clock import now_ms
from worker.keys import KeySpace
from worker.outcome import Outcome
from worker.processor import BatchProcessor, Limits
from worker.store import ReadRequest, SessionStore, StoredState

pytestmark = pytest.mark.asyncio(loop_scope="function")

KEYS = KeySpace("cache")
LIMITS = Limits(1 << 20, 7 * 86_400_000, 86_400_000)
_offsets = count()


def _records(*commands: dict[str, Any]) -> list[CommandRecord]:
    return command_records(commands, _offsets)


class _CountingStore(SessionStore):
    """The real store, counting the sessions it is asked to read."""

    reads: list[str]

    async def read(self, requests: Sequence[ReadRequest]) -> list[StoredState]:
        self.reads.extend(r.session_id for r in requests)
        return await super().read(requests)


def _store(client: aioredis.Redis) -> _CountingStore:
    store = _CountingStore(client, KEYS, outbox_ttl_ms=60_000)
    store.reads = []
    return store


def _event(outcome: Outcome) -> dict[str, Any]:
    (event,) = outcome.events
    parsed: dict[str, Any] = json.loads(event)
    return parsed


async def _version(store: SessionStore, sid: str) -> int:
    """The version Redis holds (a read of the test's own, not counted)."""
    (state,) = await SessionStore.read(store, [ReadRequest(sid, ["none"], ["none"])])
    return state.version


async def _created(
    client: aioredis.Redis, cache_size: int = 20_000
) -> tuple[_CountingStore, BatchProcessor, str]:
    """A store, a processor that has just created a session, and the session's id."""
    store = _store(client)
    processor = BatchProcessor(store, LIMITS, now_ms, cache_size=cache_size)
    create = create_command()
    await processor.process(_records(create))
    return store, processor, create["sessionId"]


async def test_a_session_changed_before_is_decided_without_a_read(
    redis_client: aioredis.Redis,
) -> None:
    store, processor, sid = await _created(redis_client)

    (renamed,) = await processor.process(_records(update_command(sid, name="Renamed")))
    (deleted,) = await processor.process(_records(delete_command(sid)))

    assert store.reads == []
    assert (processor.cache_hits, processor.cache_stale) == (2, 0)
    assert (renamed.result, _event(renamed)["type"]) == ("applied", "session.updated")
    assert _event(renamed)["session"]["name"] == "Renamed"
    assert (_event(deleted)["type"], _event(deleted)["version"]) == ("session.deleted", 3)
    assert _event(deleted)["session"]["name"] == "Renamed"  # the last snapshot, from the cache
    assert await _version(store, sid) == 3


async def test_a_session_changed_by_another_replica_is_read_and_decided_again(
    redis_client: aioredis.Redis,
) -> None:
    mine, processor, sid = await _created(redis_client)
    other = BatchProcessor(_store(redis_client), LIMITS, now_ms)  # the owner for a while
    await other.process(_records(update_command(sid, name="Elsewhere")))

    (outcome,) = await processor.process(_records(update_command(sid, status="completed")))

    assert (processor.cache_hits, processor.cache_stale) == (1, 1)
    assert mine.reads == [sid]  # the refused guess, then a read
    event = _event(outcome)
    assert (event["type"], event["version"]) == ("session.completed", 3)
    assert event["session"]["name"] == "Elsewhere"  # decided on what Redis holds
    assert await _version(mine, sid) == 3


async def test_a_command_applied_before_is_a_duplicate_though_the_cache_keeps_no_ids(
    redis_client: aioredis.Redis,
) -> None:
    store, processor, sid = await _created(redis_client)
    update = update_command(sid, name="Once")
    await processor.process(_records(update))

    # The same command again at a new offset (an upstream retry): same version, same live
    # record, so only the commandId tells; Redis checks it and the processor reads.
    (again,) = await processor.process(_records(update))

    assert again.result == "duplicate"
    assert again.events == ()
    assert (processor.cache_hits, processor.cache_stale) == (2, 1)
    assert store.reads == [sid]
    assert await _version(store, sid) == 2


async def test_the_cache_keeps_the_most_recent_sessions_up_to_its_size(
    redis_client: aioredis.Redis,
) -> None:
    store = _store(redis_client)
    processor = BatchProcessor(store, LIMITS, now_ms, cache_size=2)
    creates = [create_command() for _ in range(3)]
    await processor.process(_records(*creates))

    outcomes = await processor.process(
        _records(*(update_command(c["sessionId"], name="Later") for c in creates))
    )

    assert [o.result for o in outcomes] == ["applied"] * 3
    assert store.reads == [creates[0]["sessionId"]]  # the oldest was let go
    assert processor.cache_hits == 2


async def test_size_0_reads_every_session_as_before(redis_client: aioredis.Redis) -> None:
    store, processor, sid = await _created(redis_client, cache_size=0)
    (outcome,) = await processor.process(_records(update_command(sid, name="Read")))
    assert outcome.result == "applied"
    assert store.reads == [sid]
    assert processor.cache_hits == 0


async def test_a_deleted_session_is_created_again_without_a_refused_guess(
    redis_client: aioredis.Redis,
) -> None:
    # Without the cache a create guesses "never existed" (version 0), which a tombstone
    # refuses; the cache knows the tombstone's version.
    store, processor, sid = await _created(redis_client)
    await processor.process(_records(delete_command(sid)))

    (again,) = await processor.process(_records(create_command(sid, name="Again")))

    assert (_event(again)["type"], _event(again)["version"]) == ("session.created", 3)
    assert (processor.cache_hits, processor.cache_stale, store.reads) == (2, 0, [])
