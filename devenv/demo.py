"""`make dev` (`python -m devenv demo`): the whole pipeline on this machine, on a handful of demo
commands."""

import asyncio
import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from session_client.connection import kafka_client_params, partitions_of
from worker.app import Worker
from worker.ops.topics import ensure_topics
from worker.settings import Settings


def demo_commands(run_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(record key, command) pairs: the lifecycle of two sessions and a few bad inputs."""
    a, b = f"demo-{run_id}-a", f"demo-{run_id}-b"
    create_a = {
        "commandId": f"{run_id}-1",
        "type": "session.create",
        "orgId": "org-42",
        "sessionId": a,
        "payload": {
            "name": "Support chat",
            "expirationSeconds": 3600,
            "assistantId": "asst-1",
            "assistant": {"name": "ignored, assistantId wins"},
            "messages": [
                {"role": "system", "message": "Be brief.", "time": 1, "secondsFromStart": 0},
                {
                    "role": "user",
                    "message": "Where is my order?",
                    "time": 2,
                    "endTime": 3,
                    "secondsFromStart": 1,
                },
            ],
            "customer": {"number": "+14155550100", "name": "Ada"},
            "phoneNumber": {
                "twilioAccountSid": "AC123",
                "twilioPhoneNumber": "+14155550199",
                "twilioAuthToken": "never-shown",
            },
        },
    }
    return [
        (a, create_a),
        (
            b,
            {
                "commandId": f"{run_id}-2",
                "type": "session.create",
                "orgId": "org-42",
                "sessionId": b,
                "payload": {"name": "Sales", "squad": {"members": [{"assistantId": "asst-2"}]}},
            },
        ),
        # A name over 40 characters: rejected with its JSON path and dead-lettered.
        (
            b,
            {
                "commandId": f"{run_id}-3",
                "type": "session.create",
                "orgId": "org-42",
                "sessionId": b,
                "payload": {"name": "x" * 41},
            },
        ),
        # The same session again under a new commandId: a conflict.
        (a, {**create_a, "commandId": f"{run_id}-4"}),
        # The first command repeated: applied once, so nothing new happens.
        (a, create_a),
        (
            a,
            {
                "commandId": f"{run_id}-5",
                "type": "session.update",
                "orgId": "org-42",
                "sessionId": a,
                "payload": {"name": "Support chat (escalated)", "expirationSeconds": 7200},
            },
        ),
        (
            a,
            {
                "commandId": f"{run_id}-6",
                "type": "session.update",
                "orgId": "org-42",
                "sessionId": a,
                "payload": {"status": "completed"},
            },
        ),
        (
            b,
            {
                "commandId": f"{run_id}-7",
                "type": "session.delete",
                "orgId": "org-42",
                "sessionId": b,
            },
        ),
    ]


# created x2, rejected x2 (the repeat is silent), updated, completed, deleted
EXPECTED_EVENTS = 7


async def run_demo(settings: Settings, *, stay: bool) -> int:
    await ensure_topics(settings, partitions=3, replication_factor=1)
    worker = Worker(settings, handle_signals=stay)
    task = asyncio.create_task(worker.run())
    run_id = uuid.uuid4().hex[:8]
    producer = AIOKafkaProducer(**kafka_client_params(settings.kafka), acks="all")
    await producer.start()
    try:
        for key, command in demo_commands(run_id):
            await producer.send_and_wait(
                settings.commands_topic, json.dumps(command).encode(), key=key.encode()
            )
    finally:
        await producer.stop()
    print(f"published {len(demo_commands(run_id))} demo commands; events:")
    events = await _read_events(settings, run_id, EXPECTED_EVENTS, timeout_s=60)
    for event in events:
        print(json.dumps(event, indent=2))
    print(f"{len(events)} events for this demo run on {settings.events_topic}")
    if stay:
        print("worker still running; Ctrl-C to stop")
        await task
    else:
        worker.request_stop()
        await task
    return 0 if len(events) == EXPECTED_EVENTS else 1


async def _read_events(
    settings: Settings, run_id: str, count: int, timeout_s: float
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(**kafka_client_params(settings.kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(settings.kafka, settings.events_topic)
        tps = [TopicPartition(settings.events_topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(found) < count and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    if run_id in json.dumps(event):
                        found.append(event)
        return found
    finally:
        await consumer.stop()
