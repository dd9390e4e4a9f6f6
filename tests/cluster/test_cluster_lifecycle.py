"""Create, update, delete, tenants, repeats and replays with Redis Cluster as the store: the same
contract as tests/worker, with each session's keys on the primary that owns its bucket."""

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from tests.factories import create_command, delete_command, update_command
from tests.support import WorkerHarness, fetch_uncommitted, run_commands, stored_session
from worker.clock import now_ms
from worker.keys import KeySpace
from worker.metrics import Metrics
from worker.ops.get import describe_session
from worker.processor import BatchProcessor, Limits
from worker.sampling import sample_sessions
from worker.store import SessionStore

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_one_batch_spans_every_primary_and_each_session_stays_in_one_slot(
    harness: WorkerHarness, redis_client: aioredis.RedisCluster
) -> None:
    commands = [create_command() for _ in range(30)]
    events = await run_commands(harness, *commands)
    assert [e["type"] for e in events] == ["session.created"] * 30
    keys = KeySpace(harness.settings.key_prefix)
    for command in commands:
        k = keys.session(command["sessionId"])
        every = (k.live, k.record, k.outbox, k.index, k.meta, k.archive)
        assert len({key_slot(x.encode()) for x in every}) == 1
    per_node = [
        await redis_client.dbsize(target_nodes=node) for node in redis_client.get_primaries()
    ]
    assert len(per_node) == 3
    assert all(n > 0 for n in per_node), per_node  # the sessions really are spread


async def test_create_update_delete(
    harness: WorkerHarness, redis_client: aioredis.RedisCluster
) -> None:
    create = create_command(expirationSeconds=600)
    sid = create["sessionId"]
    keys = KeySpace(harness.settings.key_prefix).session(sid)

    (created,) = await run_commands(harness, create)
    assert created["type"] == "session.created"
    assert stored_session(await redis_client.get(keys.live)) == created["session"]
    assert abs(await redis_client.pttl(keys.live) - 600_000) < 2000

    (updated,) = await run_commands(
        harness, update_command(sid, name="Renamed", expirationSeconds=7200.25)
    )
    assert (updated["type"], updated["version"]) == ("session.updated", 2)
    assert updated["session"]["name"] == "Renamed"
    assert stored_session(await redis_client.get(keys.live)) == updated["session"]
    assert abs(await redis_client.pttl(keys.live) - 7_200_250) < 2000  # the clock restarted

    events = await run_commands(
        harness,
        update_command(sid, status="completed"),
        update_command(sid, name="too late"),
        delete_command(sid),
    )
    assert [(e["type"], e.get("version")) for e in events] == [
        ("session.completed", 3),
        ("command.rejected", None),
        ("session.deleted", 4),
    ]
    assert events[1]["error"]["code"] == "conflict"
    assert not await redis_client.exists(keys.live)
    assert await redis_client.zscore(keys.index, sid) is None
    assert 0 < await redis_client.pttl(keys.record) <= harness.settings.tombstone_ttl_ms

    (again,) = await run_commands(harness, create_command(sid, name="Second life"))
    assert (again["type"], again["version"]) == ("session.created", 5)


async def test_other_tenants_deleted_and_missing_sessions_are_not_found(
    harness: WorkerHarness, redis_client: aioredis.RedisCluster
) -> None:
    owned, gone = create_command(), create_command()
    await run_commands(harness, owned, gone, delete_command(gone["sessionId"]))
    live = KeySpace(harness.settings.key_prefix).session(owned["sessionId"]).live
    stored_before = await redis_client.get(live)

    attempts = [
        update_command(owned["sessionId"], "org-intruder", name="mine now"),
        delete_command(owned["sessionId"], "org-intruder"),
        update_command(gone["sessionId"], name="x"),
        delete_command("never-created"),
    ]
    events = await run_commands(harness, *attempts)

    assert [e["type"] for e in events] == ["command.rejected"] * 4
    by_command = {e["commandId"]: e for e in events}  # partitions interleave
    for command in attempts:
        event = by_command[command["commandId"]]
        assert event["error"]["code"] == "not_found"
        assert "session" not in event  # nothing of the owner's session
    assert await redis_client.get(live) == stored_before
    assert len(await harness.dead_letters.wait_count(4)) == 4


async def test_a_repeated_command_id_is_applied_once(harness: WorkerHarness) -> None:
    create = create_command()
    sid = create["sessionId"]
    update = update_command(sid, name="Once")
    events = await run_commands(harness, create, update, update, update)
    assert [e["type"] for e in events] == ["session.created", "session.updated"]
    more = await run_commands(harness, update, delete_command(sid), update)
    assert [e["type"] for e in more] == ["session.deleted"]
    assert await harness.dead_letters.settle(0.3) == []


async def test_records_applied_but_never_announced_are_announced_once_with_the_same_events(
    harness: WorkerHarness, redis_client: aioredis.RedisCluster
) -> None:
    s = harness.settings
    commands = [create_command() for _ in range(6)]
    conflicting = create_command(commands[0]["sessionId"], name="again")
    for command in [*commands, conflicting]:
        await harness.send(command)

    # A worker that dies right after its Redis round trip: stored, never sent, never committed.
    records = await fetch_uncommitted(s, 7)
    store = SessionStore(redis_client, KeySpace(s.key_prefix), s.outbox_ttl_ms)
    limits = Limits(s.max_record_bytes, s.expired_retention_ms, s.tombstone_ttl_ms)
    lost = await BatchProcessor(store, limits, now_ms).process(records)
    assert [o.result for o in lost].count("applied") == 6

    await harness.run_until_idle()  # the next owner replays all seven records

    events = await harness.events.settle(1.0)
    assert sorted(e.value or b"" for e in events) == sorted(e for o in lost for e in o.events)
    (dead,) = await harness.dead_letters.wait_count(1)
    assert dead.headers["error.code"] == b"conflict"
    await harness.run_until_idle()  # committed: the outbox entries are cleaned up
    keys = KeySpace(s.key_prefix)
    for command in commands:
        assert not await redis_client.exists(keys.session(command["sessionId"]).outbox)


async def test_every_key_left_expires_and_the_samplers_count_over_all_nodes(
    harness: WorkerHarness, redis_client: aioredis.RedisCluster
) -> None:
    a, b = create_command(), create_command()
    await run_commands(
        harness,
        a,
        b,
        update_command(a["sessionId"], name="x"),
        delete_command(b["sessionId"]),
        update_command("nobody", name="y"),
    )
    await harness.run_until_idle()  # lets the committed outbox entries be cleaned up
    prefix = harness.settings.key_prefix
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    assert keys
    for key in keys:
        if key.endswith(b":x"):
            assert await redis_client.zrange(key, 0, -1) == [a["sessionId"].encode()]
        else:
            assert await redis_client.pttl(key) > 0, key
    assert not [k for k in keys if b":o:" in k]

    counts = await sample_sessions(redis_client, prefix, Metrics(), now_ms())
    assert (counts.live, counts.backlog) == (1, 0)


async def test_get_reads_a_session_from_its_node(harness: WorkerHarness) -> None:
    create = create_command()
    await run_commands(harness, create)
    report = await describe_session(harness.settings, create["sessionId"])
    assert report.found, report.text
    assert "version 1, expires in" in report.text
