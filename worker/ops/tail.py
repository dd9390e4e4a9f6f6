"""`session-worker tail`: follows the events topic and prints each event as one JSON line.

It reads every partition without joining a consumer group (it commits nothing and takes no
partitions from anyone), from the end unless asked for the beginning. Filters: event types and
one sessionId.
"""

import asyncio
from collections.abc import Callable, Collection
from typing import TextIO

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from session_client.connection import kafka_client_params, partitions_of
from worker.settings import Settings

POLL_MS = 500  # how often the stop event is looked at while the topic is quiet


class _Head(msgspec.Struct):
    type: str | None = None
    sessionId: str | None = None  # noqa: N815 - the wire name


_head_decoder = msgspec.json.Decoder(_Head)


def _head(value: bytes | None) -> _Head:
    try:
        return _head_decoder.decode(value or b"")
    except msgspec.DecodeError:
        return _Head()


async def tail_events(
    settings: Settings,
    out: TextIO,
    stop: asyncio.Event,
    *,
    types: Collection[str] = (),
    session_id: str | None = None,
    from_beginning: bool = False,
    limit: int | None = None,
    on_ready: Callable[[str], None] = lambda text: None,
) -> int:
    """Prints matching events until `stop` is set or `limit` events were printed; returns how
    many were printed. `on_ready` is told once the starting positions are fixed."""
    topic = settings.events_topic
    ids = await partitions_of(settings.kafka, topic)
    partitions = [TopicPartition(topic, p) for p in ids]
    consumer = AIOKafkaConsumer(
        **kafka_client_params(settings.kafka),
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    printed = 0
    try:
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve now: events sent after on_ready are all seen
            await consumer.position(tp)
        where = "the beginning" if from_beginning else "the end"
        on_ready(f"following {topic} ({len(partitions)} partitions) from {where}")
        wanted = set(types)
        while not stop.is_set() and (limit is None or printed < limit):
            batch = await consumer.getmany(timeout_ms=POLL_MS)
            for record in (r for records in batch.values() for r in records):
                head = _head(record.value)
                if wanted and head.type not in wanted:
                    continue
                if session_id is not None and head.sessionId != session_id:
                    continue
                out.write((record.value or b"").decode("utf-8", "replace") + "\n")
                printed += 1
                if limit is not None and printed >= limit:
                    break
            out.flush()
    finally:
        await consumer.stop()
    return printed
