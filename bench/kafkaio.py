"""Kafka plumbing for the benchmark: topics, fast preloading, lag watching, event collecting."""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)

from bench.commands import Encoded
from session_client.connection import KafkaConnection, kafka_client_params
from worker.ops.topics import ensure_topics
from worker.settings import Settings

# Retriable answers of a group coordinator that is being created, loaded or moved.
COORDINATOR_NOT_READY = (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)


async def make_topics(settings: Settings, partitions: int) -> None:
    await ensure_topics(settings, partitions=partitions, replication_factor=1)


async def delete_topics(kafka: KafkaConnection, names: Iterable[str]) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_params(kafka))
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(list(names))
    finally:
        await admin.close()


def bulk_producer(kafka: KafkaConnection) -> AIOKafkaProducer:
    """For preloading: large batches, few requests."""
    return AIOKafkaProducer(
        **kafka_client_params(kafka),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=120_000,
    )


async def preload(
    kafka: KafkaConnection,
    topic: str,
    commands: Iterable[Encoded],
    advance: Callable[[int], None] = lambda n: None,
) -> int:
    """Sends every command and waits for all acknowledgements; returns how many were sent."""
    producer = bulk_producer(kafka)
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for command in commands:
            pending.append(await producer.send(topic, command.value, key=command.key))
            sent += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                advance(len(pending))
                pending.clear()
        await asyncio.gather(*pending)
        advance(len(pending))
    finally:
        await producer.stop()
    return sent


async def topic_partitions(kafka: KafkaConnection, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**kafka_client_params(kafka))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])
    finally:
        await admin.close()


@dataclass
class LagSample:
    t: float  # monotonic seconds
    committed: int  # sum of the group's committed offsets on the topic


@dataclass
class LagWatch:
    """Polls a group's committed offsets on one topic; the way every contender is timed."""

    kafka: KafkaConnection
    topic: str
    group_id: str
    interval_s: float = 0.1
    samples: list[LagSample] = field(default_factory=list)
    _admin: AIOKafkaAdminClient | None = None
    _tps: list[TopicPartition] = field(default_factory=list)

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(**kafka_client_params(self.kafka))
        await self._admin.start()
        self._tps = await topic_partitions(self.kafka, self.topic)

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.close()

    async def committed(self) -> int:
        assert self._admin is not None  # noqa: S101 - started first
        try:
            offsets = await self._admin.list_consumer_group_offsets(
                self.group_id, partitions=self._tps
            )
        except COORDINATOR_NOT_READY:
            # A fresh broker creates its offsets topic for the first group that asks (and a
            # coordinator may be loading or moving): no progress seen this time.
            return self.samples[-1].committed if self.samples else 0
        return sum(max(0, o.offset) for tp, o in offsets.items() if tp.topic == self.topic)

    async def sample(self) -> LagSample:
        s = LagSample(time.monotonic(), await self.committed())
        self.samples.append(s)
        return s

    async def until(
        self,
        target: int,
        timeout_s: float,
        stop: asyncio.Event | None = None,
        on_sample: Callable[[LagSample], None] = lambda s: None,
    ) -> bool:
        """Samples until the group has committed `target` records; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            s = await self.sample()
            on_sample(s)
            if s.committed >= target:
                return True
            if stop is not None and stop.is_set():
                return False
            await asyncio.sleep(self.interval_s)
        return False


def steady_rate(samples: list[LagSample], start_count: int = 0) -> tuple[float, float]:
    """(records/s from the first commit seen to the last sample, seconds of that window).

    Start-up (process start, group join, first fetch) is left out the same way for every
    contender, so a fast contender is not penalised by a fixed join time."""
    moving = [s for s in samples if s.committed > start_count]
    if len(moving) < 2:  # all done between two samples: too short a run to tell
        return 0.0, 0.0
    first, last = moving[0], moving[-1]
    window = last.t - first.t
    if window <= 0:
        return 0.0, 0.0
    return (last.committed - first.committed) / window, window


class _Head(msgspec.Struct, rename="camel"):
    type: str
    command_id: str | None = None
    timestamp: int = 0


_head = msgspec.json.Decoder(_Head)


@dataclass
class Seen:
    """Events received from a topic, by type, and the receive time of each command's event."""

    by_type: dict[str, int] = field(default_factory=dict)
    arrivals: dict[str, float] = field(default_factory=dict)  # commandId -> monotonic time
    expired_at: list[float] = field(default_factory=list)  # wall-clock s of each expiry seen
    total: int = 0


class EventCollector:
    """Reads an events topic (no group), noting what arrives and when."""

    def __init__(
        self,
        kafka: KafkaConnection,
        topic: str,
        *,
        from_beginning: bool = False,
        keep_arrivals: bool = True,
        on_command: Callable[[str, float], None] | None = None,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            **kafka_client_params(kafka),
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self._kafka = kafka
        self._topic = topic
        self._from_beginning = from_beginning
        self._keep_arrivals = keep_arrivals
        self._on_command = on_command
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.seen = Seen()

    async def start(self) -> None:
        await self._consumer.start()
        tps = await topic_partitions(self._kafka, self._topic)
        self._consumer.assign(tps)
        if self._from_beginning:
            await self._consumer.seek_to_beginning(*tps)
        else:
            await self._consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the position now, so nothing sent after start is missed
                await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        seen = self.seen
        while not self._stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            wall = time.time()
            for records in batch.values():
                for r in records:
                    head = _head.decode(r.value)
                    seen.total += 1
                    seen.by_type[head.type] = seen.by_type.get(head.type, 0) + 1
                    if head.type == "session.expired":
                        seen.expired_at.append(wall)
                    elif head.command_id is not None:
                        if self._on_command is not None:
                            self._on_command(head.command_id, now)
                        if self._keep_arrivals:
                            seen.arrivals[head.command_id] = now

    async def wait(self, predicate: Callable[[Seen], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.seen):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True
