"""The session record `r:<id>` and what earlier workers kept instead (a meta HASH plus a copy in
`a:<id>`): read as they are, and replaced by one record at the session's next change. Store
level against a real Redis, no Kafka."""

import json

import pytest
import redis.asyncio as aioredis

from tests.factories import new_id
from worker.clock import now_ms
from worker.keys import KeySpace, SessionKeys, bucket_of
from worker.session_record import parse_record
from worker.snapshot_codec import pack_snapshot
from worker.store import Applied, Op, ReadRequest, SessionOps, SessionStore

pytestmark = pytest.mark.asyncio(loop_scope="function")

KEYS = KeySpace("sw")
DAY_MS = 86_400_000


def _snapshot(sid: str, name: str) -> bytes:
    return json.dumps({"id": sid, "orgId": "org-1", "name": name}).encode()


async def _as_before(client: aioredis.Redis, k: SessionKeys, version: int, expires: int) -> None:
    """A session as the worker before the record layout left it: meta HASH and `a:` copy."""
    sid = k.live.rsplit(":", 1)[1]
    await client.hset(
        k.meta,
        mapping={"v": version, "o": "org-1", "st": "active", "x": expires,
                 "c:cmd-1": 1, "c:cmd-2": 1},
    )  # fmt: skip
    await client.pexpireat(k.meta, expires + DAY_MS)
    await client.set(k.archive, pack_snapshot(_snapshot(sid, "Before")), pxat=expires + DAY_MS)
    await client.zadd(k.index, {sid: expires})


async def test_a_session_kept_in_a_meta_hash_is_read_then_moved_into_one_record(
    redis_client: aioredis.Redis,
) -> None:
    sid = new_id("s")
    k = KEYS.session(sid)
    expires = now_ms() + 600_000
    await _as_before(redis_client, k, version=2, expires=expires)
    await redis_client.set(k.live, pack_snapshot(_snapshot(sid, "Before")), pxat=expires)
    store = SessionStore(redis_client, KEYS, outbox_ttl_ms=60_000)

    (state,) = await store.read([ReadRequest(sid, ["0:10", "0:11"], ["cmd-1", "cmd-9"])])

    assert (state.version, state.org_id, state.status) == (2, "org-1", "active")
    assert state.expires_ms == expires
    assert state.snapshot == _snapshot(sid, "Before")
    assert state.expired_snapshot is None  # still live
    assert state.applied == {"cmd-1"}

    renamed = _snapshot(sid, "After")
    op = Op(
        "put", "0:11", 2, True, b"event", pack_snapshot(renamed), expires + 1000, 3, "org-1",
        "active", "cmd-9", expires + 1000 + DAY_MS,
    )  # fmt: skip
    assert await store.apply([_group(sid, op)]) == [[Applied()]]

    assert await redis_client.exists(k.meta, k.archive) == 0  # replaced, not left behind
    record = parse_record(await _get(redis_client, k.record))
    assert (record.version, record.org_id, record.status) == (3, "org-1", "active")
    assert record.expires_ms == expires + 1000
    assert set(record.command_ids) == {"cmd-1", "cmd-2", "cmd-9"}
    assert record.snapshot() == renamed
    assert await _get(redis_client, k.live) == record.copy  # compressed once, stored twice
    assert abs(await redis_client.pexpiretime(k.record) - (expires + 1000 + DAY_MS)) <= 1
    (again,) = await store.read([ReadRequest(sid, ["0:11"], ["cmd-2"])])
    assert (again.version, again.applied, again.replays) == (3, frozenset({"cmd-2"}), [b"event"])


async def test_an_expired_session_kept_in_a_meta_hash_is_announced_once_and_tombstoned(
    redis_client: aioredis.Redis,
) -> None:
    sid = new_id("s")
    k = KEYS.session(sid)
    due = now_ms() - 1000
    await _as_before(redis_client, k, version=4, expires=due)  # the live record is gone
    store = SessionStore(redis_client, KEYS, outbox_ttl_ms=60_000)

    (state,) = await store.read([ReadRequest(sid, ["0:1"], ["cmd-3"])])
    assert state.snapshot is None
    assert state.expired_snapshot == _snapshot(sid, "Before")  # a create would announce it
    (claimed,) = await store.claim_expired([bucket_of(sid)], now_ms(), 10, 30_000)
    assert (claimed.session_id, claimed.version, claimed.org_id) == (sid, 4, "org-1")
    assert (claimed.expires_ms, claimed.snapshot) == (due, _snapshot(sid, "Before"))

    assert await store.finish_expired([claimed], now_ms() + DAY_MS) == 1
    assert await store.finish_expired([claimed], now_ms() + DAY_MS) == 0  # not twice

    assert await redis_client.exists(k.meta, k.archive) == 0
    record = parse_record(await _get(redis_client, k.record))
    assert (record.version, record.status, record.expires_ms, record.copy) == (
        5, "expired", None, None,
    )  # fmt: skip
    assert set(record.command_ids) == {"cmd-1", "cmd-2"}  # still known as applied
    assert await redis_client.zscore(k.index, sid) is None
    assert await store.claim_expired([bucket_of(sid)], now_ms(), 10, 30_000) == []


def _group(sid: str, *ops: Op) -> SessionOps:
    return SessionOps(sid, list(ops))


async def _get(client: aioredis.Redis, key: str) -> bytes:
    value = await client.get(key)
    assert isinstance(value, bytes), key
    return value
