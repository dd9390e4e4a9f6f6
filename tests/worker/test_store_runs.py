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
