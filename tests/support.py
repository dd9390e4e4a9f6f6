"""Test helpers over real services: publish commands, run workers, read what came out."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from devenv.services import Services, open_services
from session_client.connection import KafkaConnection, kafka_client_params, partitions_of
from worker.app import Worker
from worker.clock import now_ms
from worker.ops.topics import ensure_topics
from worker.settings import Settings
from worker.snapshot_codec import unpack_snapshot

if TYPE_CHECKING:
    from worker.tracing import Tracing

__all__ = [
    "CommandRecord",
    "Record",
    "Services",
    "TopicReader",
    "WorkerHarness",
    "WorkerProcess",
    "fresh_settings",
    "services_for_tests",
    "settings_env",
]


async def fresh_settings(
    bootstrap_servers: str, redis_url: str, *, partitions: int, **overrides: Any
) -> Settings:
    """Settings with a topic set and consumer group of their own, the topics created."""
    run = uuid.uuid4().hex[:10]
    settings = Settings(
        kafka_bootstrap_servers=bootstrap_servers,
        redis_url=redis_url,
        commands_topic=f"t{run}.commands",
        events_topic=f"t{run}.events",
        dead_letter_topic=f"t{run}.commands.dlq",
        group_id=f"t{run}",
        poll_timeout_ms=100,
        http_port=0,  # several workers share this machine; tests that probe pick a port
        shutdown_grace_s=10,
        log_format="json",
    ).replace(**overrides)
    await ensure_topics(settings, partitions=partitions, replication_factor=1)
    return settings


@contextlib.contextmanager
def services_for_tests() -> Iterator[Services]:
    with open_services(appendonly=True) as services:
        yield services


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int  # when the record reached Kafka (producer time)

    def json(self) -> Any:
        return json.loads(self.value or b"null")


@dataclass(frozen=True)
class CommandRecord:
    """A commands-topic record as the processor takes it from the consumer (the fields of
    aiokafka's ConsumerRecord it reads), for tests that call the processor directly."""

    key: bytes | None
    value: bytes | None
    offset: int
    topic: str = "sessions.commands"
    partition: int = 0
    timestamp: int = 0


def command_records(
    commands: Iterable[dict[str, Any]], offsets: Iterator[int]
) -> list[CommandRecord]:
    """Command payloads as records keyed by their sessionId, at the next `offsets`."""
    return [
        CommandRecord(c["sessionId"].encode(), json.dumps(c).encode(), next(offsets))
        for c in commands
    ]


class TopicReader:
    """Reads a whole topic from the beginning, keeping everything seen so far."""

    def __init__(self, connection: str | KafkaConnection, topic: str) -> None:
        if isinstance(connection, str):
            connection = KafkaConnection(bootstrap_servers=connection)
        self._consumer = AIOKafkaConsumer(
            **kafka_client_params(connection), enable_auto_commit=False
        )
        self._topic = topic
        self._connection = connection
        self.records: list[Record] = []

    async def start(self) -> None:
        await self._consumer.start()
        partitions = await partitions_of(self._connection, self._topic)
        tps = [TopicPartition(self._topic, p) for p in partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> None:
        batch = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            for r in records:
                headers = {k: bytes(v) for k, v in (r.headers or ())}
                self.records.append(
                    Record(r.partition, r.offset, r.key, r.value, headers, r.timestamp)
                )

    async def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout_s: float = 30.0
    ) -> list[Record]:
        """Polls until `predicate(records)` holds; fails with what was seen otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate(self.records):
            if loop.time() > deadline:
                last = [r.value[:120] if r.value else None for r in self.records[-3:]]
                raise AssertionError(
                    f"timed out on {self._topic}; saw {len(self.records)}, the last: {last}"
                )
            await self.poll()
        return self.records

    async def wait_count(self, count: int, timeout_s: float = 30.0) -> list[Record]:
        return await self.wait_for(lambda rs: len(rs) >= count, timeout_s)

    async def settle(self, quiet_s: float = 1.0) -> list[Record]:
        """Everything that arrives until nothing new has come for `quiet_s` seconds."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        seen = len(self.records)
        while loop.time() - last < quiet_s:
            await self.poll(100)
            if len(self.records) != seen:
                seen, last = len(self.records), loop.time()
        return self.records


class WorkerHarness:
    """A producer of commands, readers of events and dead letters, and in-process workers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(**kafka_client_params(settings.kafka), acks="all")
        self.events = TopicReader(settings.kafka, settings.events_topic)
        self.dead_letters = TopicReader(settings.kafka, settings.dead_letter_topic)
        self._workers: list[tuple[Worker, asyncio.Task[None]]] = []

    async def __aenter__(self) -> Self:
        await self._producer.start()
        try:
            await self.events.start()
            await self.dead_letters.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_workers()
        await self._producer.stop()
        await self.events.stop()
        await self.dead_letters.stop()

    async def send(
        self,
        command: dict[str, Any] | bytes,
        key: str | bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Publishes one command; the key defaults to the command's sessionId, as upstream does."""
        value = command if isinstance(command, bytes) else json.dumps(command).encode()
        if key is None and isinstance(command, dict):
            key = command.get("sessionId")
        raw_key = key.encode() if isinstance(key, str) else key
        await self._producer.send_and_wait(
            self.settings.commands_topic, value, key=raw_key, headers=headers
        )

    def start_worker(
        self,
        *,
        tracing: "Tracing | None" = None,
        clock: Callable[[], int] = now_ms,
        **overrides: Any,
    ) -> Worker:
        worker = Worker(
            self.settings.replace(**overrides), handle_signals=False, tracing=tracing, clock=clock
        )
        self._workers.append((worker, asyncio.create_task(worker.run())))
        return worker

    async def run_until_idle(self, **overrides: Any) -> None:
        """Runs a worker until everything sent so far is processed and committed."""
        worker = Worker(self.settings.replace(**overrides), handle_signals=False)
        await asyncio.wait_for(worker.run(burst=True), timeout=60)

    async def stop_workers(self) -> None:
        for worker, _ in self._workers:
            worker.request_stop()
        for _, task in self._workers:
            await asyncio.wait_for(task, timeout=30)
        self._workers.clear()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a worker process exactly these settings."""
    return {**os.environ, **settings.to_env()}


class WorkerProcess:
    """`session-worker run` as a real OS process, for tests that kill and restart workers."""

    def __init__(
        self, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self._settings = settings
        self._log_path = log_path
        self._extra_env = extra_env or {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env={**settings_env(self._settings), **self._extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then waits: the exit code of a clean stop is 0."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        return self._proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(timeout=10)

    def ensure_stopped(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)


def stored_session(raw: bytes | str | None) -> Any:
    """The session JSON of a live record (or its archived copy) as read from Redis."""
    assert isinstance(raw, bytes), f"no stored snapshot: {raw!r}"
    return json.loads(unpack_snapshot(raw))


async def fetch_uncommitted(settings: Settings, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` records of the commands topic, fetched by a consumer that commits
    nothing: what a worker that dies before its commit had in hand."""
    consumer = AIOKafkaConsumer(**kafka_client_params(settings.kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(settings.commands_topic, p)
            for p in await partitions_of(settings.kafka, settings.commands_topic)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def run_commands(harness: WorkerHarness, *commands: dict[str, Any]) -> list[dict[str, Any]]:
    """Sends the commands, processes them, returns the events they caused, in order."""
    before = len(harness.events.records)
    for command in commands:
        await harness.send(command)
    await harness.run_until_idle()
    records = await harness.events.settle(0.5)
    return [r.json() for r in records[before:]]
