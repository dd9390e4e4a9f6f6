"""`session-worker dlq`: list dead letters with their reasons, and replay chosen ones.

Listing shows what the headers say (code, message, path, source record, rejection event id)
and the key, never the value: a dead letter's value is the original command, as sensitive as
the commands topic. Replay sends the original key and value, byte for byte, to the commands
topic, where the worker takes them as new records (typically after the cause was fixed: a
session that now exists, a larger `SW_MAX_RECORD_BYTES`). A record that is still bad is simply
dead-lettered again.

Both read without a consumer group, up to the end offsets seen at the start.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.wire import (
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_PATH,
    HEADER_EVENT_ID,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)
from session_client.connection import kafka_client_params, partitions_of
from worker.clock import iso_ms
from worker.settings import Settings

POLL_MS = 500
FETCH_MAX_WAIT_MS = 50  # a reader of a finite range should not wait for more data to come
WINDOW = 1000  # replays awaited in groups of this many


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def describe(self) -> dict[str, Any]:
        """Everything but the value, for people and for `--json`."""
        h = self.headers
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": iso_ms(self.timestamp_ms),
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "bytes": None if self.value is None else len(self.value),
            "error": {
                "code": h.get(HEADER_ERROR_CODE),
                "message": h.get(HEADER_ERROR_MESSAGE),
                "path": h.get(HEADER_ERROR_PATH),
            },
            "eventId": h.get(HEADER_EVENT_ID),
            "source": {
                "topic": h.get(HEADER_SOURCE_TOPIC),
                "partition": _int_or_none(h.get(HEADER_SOURCE_PARTITION)),
                "offset": _int_or_none(h.get(HEADER_SOURCE_OFFSET)),
            },
        }

    def line(self) -> str:
        d = self.describe()
        error = d["error"]
        path = f" {error['path']}" if error["path"] else ""
        source = d["source"]
        return (
            f"{self.position}  {d['timestamp']}  {error['code']}{path}: {error['message']}"
            f"  key={d['key']}  from {source['topic']}/{source['partition']}:{source['offset']}"
        )


def parse_position(text: str) -> tuple[int, int]:
    """`P:O` (partition:offset) as a pair; ValueError otherwise."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not PARTITION:OFFSET, e.g. 0:42")
    return int(partition), int(offset)


async def read_dead_letters(
    settings: Settings, chosen: Collection[tuple[int, int]] | None = None
) -> AsyncIterator[DeadLetter]:
    """The dead letters present now (offset order within a partition); only the `chosen`
    (partition, offset) ones if given."""
    topic = settings.dead_letter_topic
    ids = await partitions_of(settings.kafka, topic)
    wanted = None if chosen is None else set(chosen)
    if wanted is not None:
        ids = [p for p in ids if any(w == p for w, _ in wanted)]
    tps = [TopicPartition(topic, p) for p in ids]
    consumer = AIOKafkaConsumer(
        **kafka_client_params(settings.kafka),
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        ranges = await _ranges(consumer, tps, wanted)
        if not ranges:
            return
        consumer.assign(list(ranges))
        for tp, (start, _) in ranges.items():
            consumer.seek(tp, start)
        while ranges:
            batch = await consumer.getmany(*ranges, timeout_ms=POLL_MS)
            for tp, records in batch.items():
                end = ranges[tp][1]
                for r in records:
                    if r.offset >= end:
                        break
                    if wanted is None or (tp.partition, r.offset) in wanted:
                        headers = {
                            k: bytes(v).decode("utf-8", "replace") for k, v in r.headers or ()
                        }
                        yield DeadLetter(
                            r.partition, r.offset, r.timestamp, r.key, r.value, headers
                        )
            for tp in [tp for tp, (_, end) in ranges.items() if await consumer.position(tp) >= end]:
                del ranges[tp]
                consumer.pause(tp)
    finally:
        await consumer.stop()


async def _ranges(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], wanted: set[tuple[int, int]] | None
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition, the offsets [start, end) to read: all present now, or around `wanted`."""
    if not tps:
        return {}
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    ranges = {}
    for tp in tps:
        start, stop = begin[tp], end[tp]
        if wanted is not None:
            offsets = [o for p, o in wanted if p == tp.partition and start <= o < stop]
            if not offsets:
                continue
            start, stop = min(offsets), max(offsets) + 1
        if start < stop:
            ranges[tp] = (start, stop)
    return ranges


async def count_dead_letters(settings: Settings) -> int:
    """Records in the dead-letter topic now (for a progress bar's total)."""
    topic = settings.dead_letter_topic
    tps = [TopicPartition(topic, p) for p in await partitions_of(settings.kafka, topic)]
    consumer = AIOKafkaConsumer(**kafka_client_params(settings.kafka))
    await consumer.start()
    try:
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(end[tp] - begin[tp] for tp in tps)


@dataclass(slots=True)
class ReplayReport:
    topic: str
    replayed: list[str] = field(default_factory=list)  # positions acknowledged
    missing: list[str] = field(default_factory=list)  # chosen positions not in the topic
    failed: list[tuple[str, str]] = field(default_factory=list)  # (position, error)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.failed

    def summary(self) -> str:
        text = f"{len(self.replayed)} dead letter(s) replayed to {self.topic}"
        if self.missing:
            text += f"; not found: {', '.join(self.missing)}"
        if self.failed:
            text += f"; {len(self.failed)} failed"
        return text


async def replay(
    settings: Settings,
    chosen: Collection[tuple[int, int]] | None,
    *,
    dry_run: bool = False,
    advance: Callable[[int], None] = lambda n: None,
    on_letter: Callable[[DeadLetter], None] = lambda letter: None,
) -> ReplayReport:
    """Re-publishes the chosen dead letters (all when `chosen` is None) to the commands topic
    with their original key and value, and awaits delivery."""
    report = ReplayReport(settings.commands_topic)
    producer = AIOKafkaProducer(**settings.to_producer_params())
    await producer.start()
    seen: set[tuple[int, int]] = set()
    try:
        pending: list[tuple[str, asyncio.Future[object]]] = []
        async for letter in read_dead_letters(settings, chosen):
            seen.add((letter.partition, letter.offset))
            on_letter(letter)
            advance(1)
            if dry_run:
                continue
            delivery = await producer.send(settings.commands_topic, letter.value, key=letter.key)
            pending.append((letter.position, delivery))
            if len(pending) >= WINDOW:
                await _settle(pending, report)
        await _settle(pending, report)
    finally:
        await producer.stop()
    if chosen is not None:
        report.missing = [f"{p}:{o}" for p, o in sorted(set(chosen) - seen)]
    return report


async def _settle(
    pending: list[tuple[str, "asyncio.Future[object]"]], report: ReplayReport
) -> None:
    results = await asyncio.gather(*(d for _, d in pending), return_exceptions=True)
    for (position, _), result in zip(pending, results, strict=True):
        if isinstance(result, BaseException):
            report.failed.append((position, repr(result)))
        else:
            report.replayed.append(position)
    pending.clear()


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None
