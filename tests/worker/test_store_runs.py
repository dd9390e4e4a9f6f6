"""Sessions share script runs (up to SESSIONS_PER_RUN each): every session still gets its own
answer, in the order asked, however the runs split them."""

import pytest
import redis.asyncio as aioredis

from tests.factories import new_id
from worker import store as store_module
from worker.keys import KeySpace
from worker.snapshot_codec import pack_snapshot
from worker.store import Applied, Op, ReadRequest, SessionOps, SessionStore, Stale

pytestmark = pytest.mark.asyncio(loop_scope="function")

FAR_MS = 4_102_444_800_000  # 2100-01-01


def _create(offset: int, expected_version: int) -> Op:
    snapshot = pack_snapshot(b'{"name":"x"}')
    return Op(
        "put", f"0:{offset}", expected_version, False, b"event", snapshot, FAR_MS, 1, "org-1",
        "active", f"c-{offset}", FAR_MS,
    )  # fmt: skip


async def test_answers_map_back_to_their_sessions_across_runs(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "SESSIONS_PER_RUN", 4)
    store = SessionStore(redis_client, KeySpace("runs"), outbox_ttl_ms=60_000)
    sids = [new_id("s") for _ in range(10)]
    # Every third one is decided on a wrong version: refused, and only that one.
    groups = [SessionOps(sid, [_create(i, 0 if i % 3 else 7)]) for i, sid in enumerate(sids)]

    results = await store.apply(groups)

    assert results == [[Stale(0, False)] if i % 3 == 0 else [Applied()] for i in range(10)]
    states = await store.read(
        [ReadRequest(sid, [f"0:{i}"], [f"c-{i}"]) for i, sid in enumerate(sids)]
    )
    assert [s.version for s in states] == [0 if i % 3 == 0 else 1 for i in range(10)]
    assert [s.replays for s in states] == [[None] if i % 3 == 0 else [b"event"] for i in range(10)]
    assert [s.applied for s in states] == [
        frozenset() if i % 3 == 0 else frozenset({f"c-{i}"}) for i in range(10)
    ]


async def test_committed_outbox_entries_are_removed_in_runs_even_after_a_script_flush(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "SESSIONS_PER_RUN", 4)
    keys = KeySpace("forget")
    store = SessionStore(redis_client, keys, outbox_ttl_ms=60_000)
    sids = [new_id("s") for _ in range(10)]
    for sid in sids:
        await redis_client.hset(keys.outbox(sid), mapping={"0:1": b"e", "0:2": b"e", "0:3": b"e"})
    await store.read([ReadRequest(sids[0], ["0:1"], ["c"])])  # scripts loaded
    await redis_client.script_flush()  # as after a restart: the store does not know yet
    store.committed((sid, field) for sid in sids for field in ("0:1", "0:2"))

    await store.flush()  # NOSCRIPT: nothing removed, nothing dropped either
    assert [await redis_client.hlen(keys.outbox(sid)) for sid in sids] == [3] * 10

    await store.flush()  # scripts loaded again: every committed entry goes, in runs of 4
    for sid in sids:
        assert await redis_client.hgetall(keys.outbox(sid)) == {b"0:3": b"e"}
