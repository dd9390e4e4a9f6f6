"""Sends a batch's events and dead letters, and returns only once Kafka has them all.

A command's W3C trace context (`traceparent`, `tracestate`) goes with every record written
because of it; a malformed `traceparent` is dropped, not passed on, and never fails a record.
With tracing on, the command loop gives the headers instead: the worker's own span in the
command's trace (`worker.tracing`).
"""

import asyncio
import re

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from contracts.rejection import Rejection
from contracts.wire import (
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_PATH,
    HEADER_EVENT_ID,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    HEADER_TRACEPARENT,
    HEADER_TRACESTATE,
)
from worker.outcome import Outcome
from worker.partitioning import partition_of

# version-traceid-parentid-flags, lower-case hex; an all-zero trace or parent id is invalid.
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
TRACESTATE_MAX_BYTES = 512  # the W3C limit
Headers = list[tuple[str, bytes]]


def trace_headers(record: object) -> Headers:
    """The record's trace context, fit to pass on: a valid `traceparent` and, with it, a
    `tracestate` within the W3C size limit; nothing when there is no valid `traceparent`."""
    headers = getattr(record, "headers", None)
    if not headers:
        return []
    found = dict(headers)
    parent = found.get(HEADER_TRACEPARENT)
    if not isinstance(parent, bytes) or not _TRACEPARENT.fullmatch(parent):
        return []
    carried: Headers = [(HEADER_TRACEPARENT, parent)]
    state = found.get(HEADER_TRACESTATE)
    if isinstance(state, bytes) and 0 < len(state) <= TRACESTATE_MAX_BYTES:
        carried.append((HEADER_TRACESTATE, state))
    return carried


def dead_letter_headers(
    outcome: Outcome, rejection: Rejection, traced: Headers | None = None
) -> Headers:
    """Why the record is here and where it came from. Never a payload value: no secrets.
    `traced`: the trace headers to carry, when not the record's own."""
    record = outcome.record
    headers = [
        (HEADER_ERROR_CODE, rejection.code.encode()),
        (HEADER_ERROR_MESSAGE, rejection.message.encode()),
        (HEADER_SOURCE_TOPIC, record.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(record.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(record.offset).encode()),
    ]
    if rejection.path is not None:
        headers.append((HEADER_ERROR_PATH, rejection.path.encode()))
    if outcome.event_id is not None:
        headers.append((HEADER_EVENT_ID, outcome.event_id.encode()))
    return headers + (trace_headers(record) if traced is None else traced)


class EventPublisher:
    def __init__(self, producer: AIOKafkaProducer, events_topic: str, dead_letter_topic: str):
        self._producer = producer
        self.events_topic = events_topic
        self._dead_letter_topic = dead_letter_topic

    async def publish(self, outcomes: list[Outcome]) -> None:
        """Queues everything first (the producer batches per partition), then awaits delivery.

        Records of one partition are queued in order and the producer is idempotent, so events
        of one session arrive in the order of its commands.
        """
        await (await self.enqueue(outcomes))

    async def enqueue(
        self, outcomes: list[Outcome], traces: list[Headers] | None = None
    ) -> "asyncio.Future[list[object]]":
        """Queues everything and returns one future for all the deliveries, without waiting
        for them: the command loop can fetch and apply the next batch while Kafka acknowledges
        this one (commit this batch only once the future is done). Batches queued one after
        the other keep their order per partition, as within one batch.

        Events are put into one record batch per partition here and handed to the producer
        whole (`send_batch`), where `send` per event cost ~10 us of the worker's ~90 per
        command (a coroutine, a delivery future and a pure-Python murmur2 each). Partitions are
        chosen as Kafka's default partitioner does (`worker.partitioning`). `traces`, one per
        outcome, are the trace headers to carry instead of each command record's own.
        """
        partitions = len(await self._producer.partitions_for(self.events_topic))
        batches: dict[int, list[BatchBuilder]] = {}
        deliveries = []
        for n, outcome in enumerate(outcomes):
            if not outcome.events and outcome.rejection is None:
                continue  # a duplicate: nothing to write, no trace to look up
            traced = trace_headers(outcome.record) if traces is None else traces[n]
            if outcome.events:
                partition = partition_of(outcome.event_key, partitions)
                for event in outcome.events:
                    append_to_batches(
                        self._producer, batches, partition, outcome.event_key, event, traced
                    )
            if outcome.rejection is not None:
                deliveries.append(
                    await self._producer.send(
                        self._dead_letter_topic,
                        outcome.record.value,
                        key=outcome.record.key,
                        headers=dead_letter_headers(outcome, outcome.rejection, traced),
                    )
                )
        deliveries += await send_batches(self._producer, self.events_topic, batches)
        return asyncio.gather(*deliveries)


def append_to_batches(
    producer: AIOKafkaProducer,
    batches: dict[int, list[BatchBuilder]],
    partition: int,
    key: bytes | None,
    value: bytes,
    headers: Headers | None = None,
) -> None:
    """Adds a record to the last of `partition`'s record batches, starting one when there is
    none or it is full; each batch then goes to the producer whole (`send_batch`)."""
    builders = batches.get(partition)
    if builders is None:
        builders = batches[partition] = [producer.create_batch()]
    extra = headers or []
    if builders[-1].append(timestamp=None, key=key, value=value, headers=extra) is None:
        # Full (a batch always takes its first record, however large): start the next one.
        builders.append(producer.create_batch())
        builders[-1].append(timestamp=None, key=key, value=value, headers=extra)


async def send_batches(
    producer: AIOKafkaProducer, topic: str, batches: dict[int, list[BatchBuilder]]
) -> "list[asyncio.Future[object]]":
    """Hands every batch of `append_to_batches` to the producer, in order per partition;
    returns their deliveries."""
    return [
        await producer.send_batch(builder, topic, partition=partition)
        for partition, builders in batches.items()
        for builder in builders
    ]
