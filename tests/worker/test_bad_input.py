"""Every kind of bad input is answered (rejection event + dead letter) and the next record still
goes through: through real Kafka and Redis."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.factories import create_command
from tests.support import Record, WorkerHarness, stored_session
from worker.keys import KeySpace

pytestmark = pytest.mark.asyncio(loop_scope="function")


@dataclass(frozen=True)
class BadInput:
    """A bad record to send, and the rejection it must get."""

    build: Callable[[], tuple[bytes | None, bytes]]  # (key, value)
    code: str
    path: str | None


def _command(**changes: Any) -> dict[str, Any]:
    command = create_command()
    command.update(changes)
    return command


def _record(command: dict[str, Any], key: str | None = None) -> tuple[bytes | None, bytes]:
    return (key or command["sessionId"]).encode(), json.dumps(command).encode()


BAD_INPUTS = {
    "malformed-json": BadInput(lambda: (b"s-1", b'{"commandId": "c-1", '), "invalid", "$"),
    "wrong-type": BadInput(lambda: _record(_command(orgId=42)), "invalid", "$.orgId"),
    "schema-violation": BadInput(
        lambda: _record(create_command(name="x" * 41)), "invalid", "$.payload.name"
    ),
    "expiration-out-of-range": BadInput(
        lambda: _record(create_command(expirationSeconds=59.5)),
        "invalid",
        "$.payload.expirationSeconds",
    ),
    "unknown-type": BadInput(
        lambda: _record(_command(type="session.explode")), "unsupported", "$.type"
    ),
    "key-differs-from-session-id": BadInput(
        lambda: _record(create_command(), key="another-key"), "invalid", "$.sessionId"
    ),
    "too-large": BadInput(
        lambda: _record(create_command(name="big", assistant={"blob": "x" * 5000})),
        "too_large",
        None,
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
async def test_bad_input_is_rejected_dead_lettered_and_the_next_record_processed(
    case: str, harness: WorkerHarness
) -> None:
    bad = BAD_INPUTS[case]
    key, value = bad.build()
    good = create_command()
    await harness.send(value, key=key)
    await harness.send(good)
    harness.start_worker(max_record_bytes=4096)

    events = await harness.events.wait_count(2)
    rejected = [e.json() for e in events if e.json()["type"] == "command.rejected"]
    created = [e.json() for e in events if e.json()["type"] == "session.created"]
    assert len(rejected) == 1
    assert rejected[0]["error"]["code"] == bad.code
    assert rejected[0]["error"].get("path") == bad.path
    assert rejected[0]["error"]["message"]
    assert [c["commandId"] for c in created] == [good["commandId"]]

    (dead,) = await harness.dead_letters.wait_count(1)
    _assert_dead_letter(dead, key, value, bad.code, bad.path, harness.settings.commands_topic)
    assert dead.headers["error.event_id"] == rejected[0]["eventId"].encode()


def _assert_dead_letter(
    dead: Record, key: bytes | None, value: bytes, code: str, path: str | None, topic: str
) -> None:
    assert dead.key == key
    assert dead.value == value  # the original bytes, byte for byte
    assert dead.headers["error.code"] == code.encode()
    assert dead.headers["source.topic"] == topic.encode()
    assert int(dead.headers["source.offset"]) >= 0
    assert ("error.path" in dead.headers) == (path is not None)
    if path is not None:
        assert dead.headers["error.path"] == path.encode()


async def test_an_existing_session_id_is_a_conflict(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    first = create_command()
    again = create_command(first["sessionId"], name="Second try")
    follow_up = create_command()
    for command in (first, again, follow_up):
        await harness.send(command)
    harness.start_worker()

    events = [e.json() for e in await harness.events.wait_count(3)]
    by_command = {e.get("commandId"): e for e in events}
    assert by_command[first["commandId"]]["type"] == "session.created"
    assert by_command[again["commandId"]]["type"] == "command.rejected"
    assert by_command[again["commandId"]]["error"] == {
        "code": "conflict",
        "message": "session already exists",
        "path": "$.sessionId",
    }
    assert by_command[follow_up["commandId"]]["type"] == "session.created"
    (dead,) = await harness.dead_letters.wait_count(1)
    _assert_dead_letter(
        dead, *_record(again), "conflict", "$.sessionId", harness.settings.commands_topic
    )
    live = KeySpace(harness.settings.key_prefix).session(first["sessionId"]).live
    stored = stored_session(await redis_client.get(live))
    assert stored["name"] == "Support chat"  # the conflict changed nothing


async def test_a_repeated_command_id_is_applied_once(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    command = create_command()
    follow_up = create_command()
    await harness.send(command)
    await harness.run_until_idle()
    live = KeySpace(harness.settings.key_prefix).session(command["sessionId"]).live
    before = await redis_client.get(live)
    ttl_before = await redis_client.pttl(live)

    # The same command twice more (an upstream retry), then an unrelated one.
    await harness.send(command)
    await harness.send(command)
    await harness.send(follow_up)
    await harness.run_until_idle()

    events = [e.json() for e in await harness.events.settle(1.0)]
    assert [e["commandId"] for e in events] == [command["commandId"], follow_up["commandId"]]
    assert await redis_client.get(live) == before  # no second change
    assert await redis_client.pttl(live) <= ttl_before  # the clock did not restart
    assert await harness.dead_letters.settle(0.5) == []  # a repeat is not poison


async def test_every_bad_input_in_one_batch_leaves_the_good_ones_alone(
    harness: WorkerHarness,
) -> None:
    goods = [create_command() for _ in range(5)]
    for bad, good in zip(BAD_INPUTS.values(), goods, strict=False):
        key, value = bad.build()
        await harness.send(value, key=key)
        await harness.send(good)
    await harness.run_until_idle(max_record_bytes=4096)

    events = [e.json() for e in await harness.events.wait_count(len(goods) + 5)]
    assert {e["commandId"] for e in events if e["type"] == "session.created"} == {
        g["commandId"] for g in goods
    }
    assert len(await harness.dead_letters.wait_count(5)) == 5
