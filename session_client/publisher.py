"""Publishes commands to the commands topic and returns once Kafka has them (async, aiokafka).

    async with CommandPublisher("localhost:9092") as publisher:
        delivery = await publisher.publish(command)

Against a secured Kafka, give a `KafkaConnection` instead of the address; the worker's own
settings read from the environment: `CommandPublisher(kafka_connection_from_env())`
(`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_*`).

Every command is checked first (`session_client.commands.encode_command`: the worker's own
decoder and limits), so one the worker would reject raises `InvalidCommandError` and is not
sent. The producer is the worker's: idempotent, `acks=all`, so `publish` returns only when every
in-sync replica has the record, and a retry inside the client adds no duplicate and keeps order.
A failed delivery raises aiokafka's `KafkaError`; publishing the same command again (same
commandId) is then safe: the worker applies a commandId once.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer

from contracts.commands import Command
from contracts.wire import COMMANDS_TOPIC, MAX_RECORD_BYTES
from session_client.commands import CommandRecord, encode_command
from session_client.connection import KafkaConnection, kafka_client_params
from session_client.tracing import current_trace_headers

LINGER_MS = 2  # the worker's: batches a burst of publish_many without delaying a lone command
# Options that carry the kit's delivery promise, or the connection (which comes from the
# `KafkaConnection`, as for every client of the project); anything else (client id, ...) may be
# passed through to aiokafka.
_FIXED_OPTIONS = frozenset(
    {
        "acks",
        "enable_idempotence",
        "bootstrap_servers",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
    }
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where Kafka stored a command."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    command_id: str
    session_id: str


class CommandPublisher:
    """An idempotent, `acks=all` producer of checked commands. Create it inside the event loop
    that uses it (`start()` binds the producer to the running loop)."""

    def __init__(
        self,
        connection: str | KafkaConnection,
        *,
        topic: str = COMMANDS_TOPIC,
        max_record_bytes: int = MAX_RECORD_BYTES,
        **producer_options: Any,
    ) -> None:
        """`connection`: the bootstrap servers (plaintext), or a `KafkaConnection` with TLS or
        SASL settings. `max_record_bytes` must be the worker's `SW_MAX_RECORD_BYTES`.
        `producer_options` go to `AIOKafkaProducer` (e.g. `client_id`); `acks`,
        `enable_idempotence` and the connection's keywords are fixed."""
        fixed = _FIXED_OPTIONS & producer_options.keys()
        if fixed:
            raise ValueError(
                f"the kit sets {', '.join(sorted(fixed))} itself (security: pass a KafkaConnection)"
            )
        self.connection = (
            KafkaConnection(bootstrap_servers=connection)
            if isinstance(connection, str)
            else connection
        )
        self.topic = topic
        self.max_record_bytes = max_record_bytes
        self._options = {
            "enable_idempotence": True,  # broker drops retried duplicates, keeps order
            "acks": "all",
            "linger_ms": LINGER_MS,
            "max_request_size": max(max_record_bytes * 2, 1024 * 1024),
            **producer_options,
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(**kafka_client_params(self.connection), **self._options)
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        """Flushes and closes; idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def encode(self, command: Command) -> CommandRecord:
        """The checked record, without sending it; raises `InvalidCommandError`. It carries the
        caller's OpenTelemetry trace context, when there is one (`session_client.tracing`)."""
        record = encode_command(command, max_record_bytes=self.max_record_bytes)
        traced = current_trace_headers()
        return replace(record, headers=record.headers + traced) if traced else record

    async def publish(self, command: Command) -> Delivery:
        """Checks `command`, sends it, and returns once Kafka acknowledged it."""
        (delivery,) = await self.publish_many((command,))
        return delivery

    async def publish_many(self, commands: Iterable[Command]) -> list[Delivery]:
        """Checks every command first: if one is invalid, none is sent. Then sends them all,
        pipelined (one session's commands keep their order), and returns once Kafka
        acknowledged every one. On a delivery failure the first error is raised after all
        deliveries settled; some commands may have been stored: publish them all again, the
        commandIds make that safe."""
        records = [self.encode(command) for command in commands]
        return await self.publish_records(records)

    async def publish_records(self, records: Iterable[CommandRecord]) -> list[Delivery]:
        """Sends records already checked by `encode` (the sync wrapper checks in the caller's
        thread, then sends here)."""
        producer = self._started()
        pending: list[tuple[CommandRecord, asyncio.Future[Any]]] = []
        try:
            for record in records:
                future = await producer.send(
                    self.topic, record.value, key=record.key, headers=list(record.headers)
                )
                pending.append((record, future))
        finally:  # also when a send failed: the ones queued before it are awaited, not dropped
            results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        deliveries = []
        for (record, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            deliveries.append(
                Delivery(
                    topic=result.topic,
                    partition=result.partition,
                    offset=result.offset,
                    timestamp_ms=result.timestamp,
                    command_id=record.command.command_id,
                    session_id=record.command.session_id,
                )
            )
        return deliveries

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("CommandPublisher is not started: use `async with` or start()")
        return self._producer
