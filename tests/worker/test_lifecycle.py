"""session.update and session.delete: every transition and every rejection, end to end."""

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.factories import create_command, delete_command, update_command
from tests.support import WorkerHarness, run_commands, stored_session
from worker.keys import KeySpace
from worker.snapshot_codec import ZSTD_FORMAT, pack_snapshot_as_previous_release

pytestmark = pytest.mark.asyncio(loop_scope="function")

MESSAGE = {"role": "developer", "content": "New instructions."}


async def test_update_changes_only_the_given_fields(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    create = create_command(expirationSeconds=600)
    (created,) = await run_commands(harness, create)
    sid = create["sessionId"]
    live = KeySpace(harness.settings.key_prefix).session(sid).live
    ttl_before = await redis_client.pttl(live)

    (updated,) = await run_commands(harness, update_command(sid, name="Renamed"))

    assert updated["type"] == "session.updated"
    assert updated["version"] == 2
    before, after = created["session"], updated["session"]
    assert after["name"] == "Renamed"
    assert {k: v for k, v in after.items() if k not in {"name", "updatedAt"}} == {
        k: v for k, v in before.items() if k not in {"name", "updatedAt"}
    }
    assert after["updatedAt"] >= before["updatedAt"]
    assert after["expiresAt"] == before["expiresAt"]  # the clock did not restart
    assert stored_session(await redis_client.get(live)) == after
    assert abs(await redis_client.pttl(live) - ttl_before) < 2000


async def test_update_replaces_messages_and_restarts_the_clock(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    create = create_command(expirationSeconds=600)
    sid = create["sessionId"]
    await run_commands(harness, create)
    (updated,) = await run_commands(
        harness, update_command(sid, messages=[MESSAGE], expirationSeconds=7200.25)
    )
    assert updated["session"]["messages"] == [MESSAGE]
    assert updated["session"]["expirationSeconds"] == 7200.25
    live = KeySpace(harness.settings.key_prefix).session(sid).live
    assert abs(await redis_client.pttl(live) - 7_200_250) < 1000


async def test_completed_is_final_but_can_be_deleted(harness: WorkerHarness) -> None:
    create = create_command()
    sid = create["sessionId"]
    events = await run_commands(
        harness,
        create,
        update_command(sid, status="completed"),
        update_command(sid, name="too late"),
        update_command(sid, status="completed"),  # changes nothing: accepted, no new version
        delete_command(sid),
    )
    assert [e["type"] for e in events] == [
        "session.created",
        "session.completed",
        "command.rejected",
        "session.updated",
        "session.deleted",
    ]
    assert events[2]["error"]["code"] == "conflict"
    assert [e.get("version") for e in events] == [1, 2, None, 2, 3]
    assert events[4]["session"]["status"] == "completed"  # the last snapshot


async def test_delete_announces_the_last_snapshot_and_cleans_up(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    create = create_command()
    sid = create["sessionId"]
    events = await run_commands(
        harness, create, update_command(sid, name="Last name"), delete_command(sid)
    )
    deleted = events[-1]
    assert deleted["type"] == "session.deleted"
    assert deleted["version"] == 3
    assert deleted["session"]["name"] == "Last name"
    keys = KeySpace(harness.settings.key_prefix).session(sid)
    assert not await redis_client.exists(keys.live)
    assert await redis_client.zscore(keys.index, sid) is None
    # What is left is a tombstone that remembers the commandIds for a while, then goes.
    ttl = await redis_client.pttl(keys.record)
    assert 0 < ttl <= harness.settings.tombstone_ttl_ms


@pytest.mark.parametrize("kind", ["update", "delete"])
async def test_missing_deleted_and_other_tenants_sessions_are_not_found(
    kind: str, harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    def command(sid: str, org: str = "org-42") -> dict[str, Any]:
        if kind == "update":
            return update_command(sid, org, name="x")
        return delete_command(sid, org)

    owned, gone = create_command(), create_command()
    await run_commands(harness, owned, gone, delete_command(gone["sessionId"]))
    live = KeySpace(harness.settings.key_prefix).session(owned["sessionId"]).live
    stored_before = await redis_client.get(live)

    never = command("never-created")
    deleted = command(gone["sessionId"])
    foreign = command(owned["sessionId"], org="org-intruder")
    events = await run_commands(harness, never, deleted, foreign)

    errors = {e["commandId"]: e for e in events}
    for cmd in (never, deleted, foreign):
        rejection = errors[cmd["commandId"]]
        assert rejection["type"] == "command.rejected"
        assert rejection["error"] == {
            "code": "not_found",
            "message": "session not found",
            "path": "$.sessionId",
        }
        # Only what the command itself said: nothing of the owner's session.
        assert set(rejection) == {
            "type", "eventId", "timestamp", "error", "commandId", "orgId", "sessionId"
        }  # fmt: skip
        assert rejection["orgId"] == cmd["orgId"]
    assert await redis_client.get(live) == stored_before  # the owner's session is untouched
    assert len(await harness.dead_letters.wait_count(3)) == 3


async def test_versions_grow_by_one_per_change(harness: WorkerHarness) -> None:
    create = create_command()
    sid = create["sessionId"]
    events = await run_commands(
        harness,
        create,
        update_command(sid, name="a"),
        update_command(sid, messages=[]),
        update_command(sid, status="completed"),
        delete_command(sid),
    )
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert len({e["eventId"] for e in events}) == 5


async def test_a_command_replayed_three_times_gives_one_transition(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    create = create_command()
    sid = create["sessionId"]
    update = update_command(sid, name="Once")
    events = await run_commands(harness, create, update, update, update)
    assert [e["type"] for e in events] == ["session.created", "session.updated"]
    more = await run_commands(harness, update, delete_command(sid), update)
    assert [e["type"] for e in more] == ["session.deleted"]  # the repeats stay silent
    assert await harness.dead_letters.settle(0.3) == []


async def test_recreating_a_deleted_session_continues_its_versions(
    harness: WorkerHarness,
) -> None:
    create = create_command()
    sid = create["sessionId"]
    again = create_command(sid, name="Second life")
    events = await run_commands(harness, create, delete_command(sid), again)
    assert [(e["type"], e["version"]) for e in events] == [
        ("session.created", 1),
        ("session.deleted", 2),
        ("session.created", 3),
    ]


async def test_every_key_the_worker_leaves_expires(
    harness: WorkerHarness, redis_client: aioredis.Redis
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
    keys = [k async for k in redis_client.scan_iter(match=f"{harness.settings.key_prefix}:*")]
    assert keys
    for key in keys:
        if key.endswith(b":x"):  # an expiry index: it only holds live sessions
            members = await redis_client.zrange(key, 0, -1)
            assert members == [a["sessionId"].encode()]
            continue
        assert await redis_client.pttl(key) > 0, key
    assert not [k for k in keys if b":o:" in k]  # no outbox entry outlives its commit


@pytest.mark.parametrize(
    "stored_as",
    [
        pytest.param(lambda snapshot: snapshot, id="0.1-plain-json"),
        pytest.param(pack_snapshot_as_previous_release, id="previous-release-x02"),
    ],
)
async def test_a_live_record_written_by_an_earlier_release_is_read_and_updated(
    harness: WorkerHarness, redis_client: aioredis.Redis, stored_as: Callable[[bytes], bytes]
) -> None:
    create = create_command(expirationSeconds=600)
    (created,) = await run_commands(harness, create)
    sid = create["sessionId"]
    live = KeySpace(harness.settings.key_prefix).session(sid).live
    stored = await redis_client.get(live)
    assert stored is not None
    assert stored[:1] == ZSTD_FORMAT  # this worker stores it compressed
    # As the earlier release left it, same TTL.
    snapshot = json.dumps(created["session"], separators=(",", ":")).encode()
    await redis_client.set(live, stored_as(snapshot), keepttl=True)

    (updated,) = await run_commands(harness, update_command(sid, name="Renamed"))

    assert updated["type"] == "session.updated"
    assert {
        **created["session"],
        "name": "Renamed",
        "updatedAt": updated["session"]["updatedAt"],
    } == updated["session"]
    rewritten = await redis_client.get(live)
    assert isinstance(rewritten, bytes)
    assert rewritten[:1] == ZSTD_FORMAT
    assert stored_session(rewritten) == updated["session"]
