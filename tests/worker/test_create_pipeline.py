"""session.create end to end, through real Kafka and Redis."""

import json
import time

import pytest
import redis.asyncio as aioredis

from contracts import SessionCreated, event_decoder
from tests.factories import (
    CANARY_API_SECRET,
    CANARY_AUTH_TOKEN,
    CANARY_SERVER_SECRET,
    create_command,
    new_id,
)
from tests.support import WorkerHarness, stored_session
from worker.keys import KeySpace

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_create_is_stored_with_its_ttl_and_announced(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    command = create_command(expirationSeconds=120.5)
    sent_at_ms = time.time() * 1000
    await harness.send(command)
    harness.start_worker()

    (record,) = await harness.events.wait_count(1)
    event = event_decoder.decode(record.value or b"")
    assert isinstance(event, SessionCreated)
    assert record.key == command["sessionId"].encode()
    assert event.command_id == command["commandId"]
    assert event.version == 1
    assert event.org_id == "org-42"
    session = record.json()["session"]
    assert session["id"] == command["sessionId"]
    assert session["name"] == "Support chat"
    assert session["status"] == "active"
    assert session["expirationSeconds"] == 120.5
    assert session["assistantId"] == "asst-1"
    assert "assistant" not in session  # assistantId wins over assistant
    assert session["squad"] == command["payload"]["squad"]  # kept verbatim, unknown keys too
    assert session["assistantOverrides"] == command["payload"]["assistantOverrides"]
    assert session["messages"] == command["payload"]["messages"]
    assert session["customer"] == command["payload"]["customer"]
    assert session["phoneNumber"]["twilioAuthToken"] == "[redacted]"
    assert session["phoneNumber"]["server"] == {
        "url": "https://example.com/hook",
        "secret": "[redacted]",
    }
    assert session["createdAt"] == session["updatedAt"]

    live_key = KeySpace(harness.settings.key_prefix).session(command["sessionId"]).live
    stored = await redis_client.get(live_key)
    assert stored is not None
    assert stored_session(stored) == session
    ttl_ms = await redis_client.pttl(live_key)
    assert abs(ttl_ms - 120_500) < 1000
    expires_at_ms = event.timestamp + 120_500
    assert abs(expires_at_ms - sent_at_ms - 120_500) < 10_000
    assert await harness.dead_letters.settle(0.5) == []


async def test_squad_id_wins_over_squad_and_defaults_apply(harness: WorkerHarness) -> None:
    command = create_command(squadId="squad-9")
    del command["payload"]["expirationSeconds"]
    command["payload"].pop("name")
    await harness.send(command)
    harness.start_worker()

    (record,) = await harness.events.wait_count(1)
    session = record.json()["session"]
    assert session["squadId"] == "squad-9"
    assert "squad" not in session
    assert session["expirationSeconds"] == 86400  # the reference's default
    assert "name" not in session


async def test_create_with_status_completed_is_announced_as_completed(
    harness: WorkerHarness,
) -> None:
    await harness.send(create_command(status="completed"))
    harness.start_worker()
    (record,) = await harness.events.wait_count(1)
    assert record.json()["type"] == "session.completed"


async def test_a_batch_over_many_sessions_keeps_each_partitions_order(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    commands = [create_command() for _ in range(300)]
    for c in commands:
        await harness.send(c)
    await harness.run_until_idle()

    records = await harness.events.wait_count(300)
    assert sorted(r.json()["commandId"] for r in records) == sorted(
        c["commandId"] for c in commands
    )
    assert len({r.json()["eventId"] for r in records}) == 300
    live = [k async for k in redis_client.scan_iter(match=f"{harness.settings.key_prefix}:*:s:*")]
    assert len(live) == 300


async def test_secrets_never_leave_the_worker(
    harness: WorkerHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    good = create_command()
    bad = create_command(name="x" * 41)  # rejected: its record goes to the dead-letter topic
    await harness.send(good)
    await harness.send(bad)
    await harness.run_until_idle()

    events = await harness.events.wait_count(2)
    (dead,) = await harness.dead_letters.wait_count(1)
    logged = capsys.readouterr()
    for canary in (CANARY_AUTH_TOKEN, CANARY_API_SECRET, CANARY_SERVER_SECRET):
        for record in events:
            assert canary.encode() not in (record.value or b"")
        assert all(canary.encode() not in v for v in dead.headers.values())
        assert canary not in logged.out
        assert canary not in logged.err
    # The dead letter itself is the original record, byte for byte (that is the contract).
    assert dead.value == json.dumps(bad).encode()


async def test_unrelated_sessions_do_not_block_each_other(harness: WorkerHarness) -> None:
    first, second = new_id("s"), new_id("s")
    await harness.send(create_command(first))
    await harness.send(create_command(second))
    await harness.run_until_idle()
    records = await harness.events.wait_count(2)
    assert {r.key for r in records} == {first.encode(), second.encode()}
