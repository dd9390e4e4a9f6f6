"""The kit against real Kafka and a running worker: publish through the kit, read through the kit.

Nothing is mocked: `harness` (tests/conftest.py) gives fresh topics on the session's broker, a
clean Redis and in-process workers.
"""

import asyncio
import json
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs in dev deps

from contracts import asyncapi
from contracts.commands import Command, CreateSession, DeleteSession, UpdateSession
from contracts.decoding import Decoded, decode_record
from contracts.events import CommandRejected, SessionUpdated
from contracts.payloads import CreateSessionDTO, UpdateSessionDTO
from contracts.rejection import Rejection
from session_client import (
    CommandPublisher,
    Delivery,
    InvalidCommandError,
    SyncCommandPublisher,
    UnknownEvent,
    event_type,
    read_event,
)
from session_client.example_view import SessionView, follow
from tests.factories import new_id
from tests.support import TopicReader, WorkerHarness

pytestmark = pytest.mark.asyncio(loop_scope="function")

ORG = "org-42"


def create(session_id: str, **payload: Any) -> CreateSession:
    return CreateSession(
        command_id=new_id("c"),
        org_id=ORG,
        session_id=session_id,
        payload=CreateSessionDTO(**payload),
    )


def update(session_id: str, **payload: Any) -> UpdateSession:
    return UpdateSession(
        command_id=new_id("u"),
        org_id=ORG,
        session_id=session_id,
        payload=UpdateSessionDTO(**payload),
    )


def delete(session_id: str) -> DeleteSession:
    return DeleteSession(command_id=new_id("d"), org_id=ORG, session_id=session_id)


def publisher_for(harness: WorkerHarness, **options: Any) -> CommandPublisher:
    settings = harness.settings
    return CommandPublisher(
        settings.kafka_bootstrap_servers, topic=settings.commands_topic, **options
    )


async def read_topic(harness: WorkerHarness, topic: str, quiet_s: float) -> TopicReader:
    reader = TopicReader(harness.settings.kafka_bootstrap_servers, topic)
    await reader.start()
    try:
        await reader.settle(quiet_s)
    finally:
        await reader.stop()
    return reader


async def test_published_through_the_kit_applied_by_the_worker_read_through_the_kit(
    harness: WorkerHarness,
) -> None:
    harness.start_worker()
    session_id = new_id("s")
    commands: list[Command] = [
        create(session_id, name="Support chat", expiration_seconds=3600),
        update(session_id, name="Renamed"),
        update(session_id, status="completed"),
        delete(session_id),
    ]
    async with publisher_for(harness) as publisher:
        deliveries = await publisher.publish_many(commands)
    assert [d.command_id for d in deliveries] == [c.command_id for c in commands]
    assert len({d.partition for d in deliveries}) == 1  # one key, one partition, in order
    assert [d.offset for d in deliveries] == sorted(d.offset for d in deliveries)

    records = await harness.events.wait_count(4)
    events = [read_event(r.value) for r in records]
    assert [event_type(e) for e in events] == [
        "session.created",
        "session.updated",
        "session.completed",
        "session.deleted",
    ]
    assert [getattr(e, "version", None) for e in events] == [1, 2, 3, 4]
    assert isinstance(events[1], SessionUpdated)
    assert events[1].session.name == "Renamed"
    assert {r.key for r in records} == {session_id.encode()}

    written = await read_topic(harness, harness.settings.commands_topic, quiet_s=0.3)
    assert [r.key for r in written.records] == [session_id.encode()] * 4
    assert [r.headers for r in written.records] == [
        {"content-type": b"application/json", "command-type": kind.encode()}
        for kind in ("session.create", "session.update", "session.update", "session.delete")
    ]


async def test_refused_commands_never_reach_kafka_and_match_the_workers_answer(
    harness: WorkerHarness,
) -> None:
    limit = 65_536  # the worker's SW_MAX_RECORD_BYTES here; the kit is given the same
    harness.start_worker(max_record_bytes=limit)
    existing = new_id("s")
    invalid: list[Command] = [
        create(new_id("s"), name="x" * 41),
        create(new_id("s"), expiration_seconds=30),
        create("has space"),
        update(existing, status="archived"),
        create(new_id("s"), assistant={"a": [{"b": "x" * limit}]}),
    ]
    refused: dict[str, Rejection] = {}
    async with publisher_for(harness, max_record_bytes=limit) as publisher:
        for command in invalid:
            with pytest.raises(InvalidCommandError) as raised:
                await publisher.publish(command)
            refused[command.command_id] = raised.value.rejection
        with pytest.raises(InvalidCommandError):  # one invalid: none of them is sent
            await publisher.publish_many([create(new_id("s")), invalid[0]])
    assert (await read_topic(harness, harness.settings.commands_topic, quiet_s=0.5)).records == []

    # A producer that does not check sends the same bytes: the worker answers the same.
    for command in invalid:
        await harness.send(msgspec.json.encode(command), key=command.session_id)
    records = await harness.events.wait_count(len(invalid))
    answered: dict[str, Rejection] = {}
    for record in records:
        event = read_event(record.value)
        assert isinstance(event, CommandRejected)
        key = event.command_id if isinstance(event.command_id, str) else "too-large"
        path = event.error.path if isinstance(event.error.path, str) else None
        answered[key] = Rejection(event.error.code, event.error.message, path)
    too_large = invalid[-1].command_id
    assert answered.pop("too-large") == refused.pop(too_large)  # not parsed: no ids
    assert answered == refused

    # The dead letters' headers are what the AsyncAPI document says.
    dead = await harness.dead_letters.wait_count(len(invalid))
    doc = json.loads(asyncapi.DOCUMENT_PATH.read_text(encoding="utf-8"))
    headers_schema = Draft7Validator(doc["components"]["schemas"]["DeadLetterHeaders"])
    for record in dead:
        headers = {name: value.decode() for name, value in record.headers.items()}
        assert [e.message for e in headers_schema.iter_errors(headers)] == []


async def test_sync_publisher_from_a_script(harness: WorkerHarness) -> None:
    harness.start_worker()
    settings = harness.settings
    session_id = new_id("s")

    def script() -> list[Delivery]:
        with SyncCommandPublisher(
            settings.kafka_bootstrap_servers, topic=settings.commands_topic
        ) as publisher:
            first = publisher.publish(create(session_id, name="From a script"))
            with pytest.raises(InvalidCommandError, match=r"\$\.payload\.name"):
                publisher.publish(update(session_id, name="y" * 41))
            rest = publisher.publish_many([update(session_id, name="Again"), delete(session_id)])
        publisher.close()  # idempotent
        with pytest.raises(RuntimeError, match="not started"):
            publisher.publish(delete(session_id))
        return [first, *rest]

    deliveries = await asyncio.to_thread(script)  # blocking calls: off the worker's loop
    assert len(deliveries) == 3
    records = await harness.events.wait_count(3)
    assert [event_type(read_event(r.value)) for r in records] == [
        "session.created",
        "session.updated",
        "session.deleted",
    ]


async def test_example_view_follows_what_the_worker_emits(harness: WorkerHarness) -> None:
    harness.start_worker()
    kept, ended, done = new_id("s"), new_id("s"), new_id("s")
    async with publisher_for(harness) as publisher:
        await publisher.publish_many(
            [
                create(kept, name="Kept"),
                create(ended, name="Ended"),
                create(done, name="Done"),
                update(kept, name="Kept, renamed"),
                delete(ended),
                update(done, status="completed"),
            ]
        )
    records = await harness.events.wait_count(6)

    # What a consumer also meets: a repeat, a field and a type from a later minor, junk.
    repeat = next(r for r in records if r.key == kept.encode())
    last_of_done = [r for r in records if r.key == done.encode()][-1]  # one partition: in order
    later = json.loads(last_of_done.value or b"")
    later_minor = {**later, "version": later["version"] + 1, "eventId": "e-later", "region": "eu"}
    producer = AIOKafkaProducer(bootstrap_servers=harness.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        topic = harness.settings.events_topic
        await producer.send_and_wait(topic, repeat.value, key=repeat.key)
        await producer.send_and_wait(topic, msgspec.json.encode(later_minor), key=last_of_done.key)
        unknown = {"type": "session.transferred", "eventId": "e-x", "sessionId": kept}
        await producer.send_and_wait(topic, msgspec.json.encode(unknown), key=kept.encode())
        await producer.send_and_wait(topic, b"not json", key=kept.encode())
    finally:
        await producer.stop()

    view = SessionView()
    seen: list[tuple[str, str]] = []
    invalid: list[str] = []
    await follow(
        harness.settings.kafka,
        harness.settings.events_topic,
        view,
        stop=asyncio.Event(),
        idle_s=1.0,
        on_event=lambda outcome, event: seen.append((outcome, event_type(event))),
        on_invalid=lambda error: invalid.append(error.path),
    )
    assert set(view.sessions) == {kept, done}
    assert view.sessions[kept].session.name == "Kept, renamed"
    assert view.sessions[done].session.status == "completed"
    assert view.sessions[done].version == later_minor["version"]  # the later minor's event
    assert view.counts == {"applied": 6, "removed": 1, "duplicate": 1, "ignored": 1, "invalid": 1}
    assert ("ignored", "session.transferred") in seen
    assert invalid == ["$"]
    assert isinstance(read_event(msgspec.json.encode(unknown)), UnknownEvent)


async def test_what_the_kit_stores_is_what_the_worker_decodes(harness: WorkerHarness) -> None:
    session_id = new_id("s")
    async with publisher_for(harness) as publisher:
        record = publisher.encode(create(session_id, name="Same bytes"))
        await publisher.publish_records([record])
    written = await read_topic(harness, harness.settings.commands_topic, quiet_s=0.3)
    (stored,) = written.records
    assert (stored.key, stored.value) == (record.key, record.value)
    decoded = decode_record(stored.key, stored.value, harness.settings.max_record_bytes)
    assert isinstance(decoded, Decoded)
    assert decoded.command == record.command
