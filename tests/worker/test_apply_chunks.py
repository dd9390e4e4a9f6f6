"""A batch is sent to Redis in chunks of sessions while the rest is still being decided: every
session's outcome still comes from its own chunk, and a chunk that fails fails the batch."""

import asyncio
from collections.abc import Sequence
from itertools import count
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.factories import create_command, update_command
from tests.support import CommandRecord, command_records
from worker import processor as processor_module
from worker.clock import now_ms
from worker.errors import StoreUnavailableError
from worker.keys import KeySpace
from worker.processor import BatchProcessor, Limits
from worker.store import OpResult, ReadRequest, SessionOps, SessionStore

pytestmark = pytest.mark.asyncio(loop_scope="function")

LIMITS = Limits(1 << 20, 7 * 86_400_000, 86_400_000)
CHUNK = 4
_offsets = count()


def _records(commands: Sequence[dict[str, Any]]) -> list[CommandRecord]:
    return command_records(commands, _offsets)


class _ChunkStore(SessionStore):
    """The real store; notes each apply call's sessions and can fail the call numbered
    `fail_call` after Redis has run it (as a lost reply would)."""

    calls: list[list[str]]
    fail_call: int | None = None

    async def apply(self, groups: Sequence[SessionOps]) -> list[list[OpResult]]:
        number = len(self.calls)
        self.calls.append([g.session_id for g in groups])
        results = await super().apply(groups)
        if number == self.fail_call:
            raise StoreUnavailableError("Redis: reply lost (injected)")
        return results


def _store(client: aioredis.Redis, prefix: str) -> _ChunkStore:
    store = _ChunkStore(client, KeySpace(prefix), outbox_ttl_ms=60_000)
    store.calls = []
    return store


async def test_every_session_gets_its_own_outcome_across_chunks(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor_module, "APPLY_CHUNK_SESSIONS", CHUNK)
    store = _store(redis_client, "chunks")
    processor = BatchProcessor(store, LIMITS, now_ms, cache_size=0)
    creates = [create_command() for _ in range(3 * CHUNK + 2)]
    sids = [c["sessionId"] for c in creates]
    # A session's update in the same batch is decided on its create; one update is invalid.
    updates = [update_command(sid, name=f"name {i}") for i, sid in enumerate(sids[::3])]
    updates[1]["name"] = 7

    outcomes = await processor.process(_records([*creates, *updates]))

    assert [len(c) for c in store.calls] == [CHUNK, CHUNK, CHUNK, 2]
    assert sorted(s for c in store.calls for s in c) == sorted(sids)
    assert [o.session_id for o in outcomes] == [*sids, *sids[::3]]
    assert [o.event_type for o in outcomes] == [
        *["session.created"] * len(creates),
        "session.updated",
        "command.rejected",
        *["session.updated"] * (len(updates) - 2),
    ]
    states = await store.read([ReadRequest(sid, ["none"], ["none"]) for sid in sids])
    updated = {sids[i * 3] for i in range(len(updates)) if i != 1}
    assert [s.version for s in states] == [2 if sid in updated else 1 for sid in sids]


async def test_a_failed_chunk_fails_the_batch_and_a_retry_settles_it(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor_module, "APPLY_CHUNK_SESSIONS", CHUNK)
    store = _store(redis_client, "chunkfail")
    store.fail_call = 1
    creates = [create_command() for _ in range(3 * CHUNK)]
    records = _records(creates)

    with pytest.raises(StoreUnavailableError, match="injected"):
        await BatchProcessor(store, LIMITS, now_ms).process(records)
    # Every chunk ran to its end before the failure was raised: none is left running.
    assert len(store.calls) == 3
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    # The same records again (the loop rewinds them): what Redis holds is replayed, once.
    store.fail_call = None
    outcomes = await BatchProcessor(store, LIMITS, now_ms).process(records)
    assert [o.result for o in outcomes] == ["replayed"] * len(creates)
    assert len({o.event_id for o in outcomes}) == len(creates)
