"""`CommandPublisher` for scripts and other synchronous code.

    with SyncCommandPublisher("localhost:9092") as publisher:
        publisher.publish(command)

Design: one event loop in one background thread, for the publisher's whole life, rather than
`asyncio.run` per call. A Kafka producer costs a connection, a metadata fetch and an idempotent
producer id before its first send; a per-call loop would pay that for every command (and a new
producer id resets the broker's duplicate detection). A private loop also works where
`asyncio.run` cannot: in code that already runs inside an event loop (a notebook, a framework's
sync hook). Commands are checked in the caller's thread, so an `InvalidCommandError` is raised
directly, without a trip through the loop.
"""

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from contracts.commands import Command
from contracts.wire import COMMANDS_TOPIC, MAX_RECORD_BYTES
from session_client.commands import CommandRecord
from session_client.connection import KafkaConnection
from session_client.publisher import CommandPublisher, Delivery

T = TypeVar("T")

TIMEOUT_S = 60.0  # aiokafka's own request timeout is 40 s; this only bounds a hung broker


class SyncCommandPublisher:
    """Blocking `publish`/`publish_many`; the same checks and delivery promise as
    `CommandPublisher`. Thread-safe: calls from several threads share one producer."""

    def __init__(
        self,
        connection: str | KafkaConnection,
        *,
        topic: str = COMMANDS_TOPIC,
        max_record_bytes: int = MAX_RECORD_BYTES,
        timeout_s: float = TIMEOUT_S,
        **producer_options: Any,
    ) -> None:
        self._publisher = CommandPublisher(
            connection,
            topic=topic,
            max_record_bytes=max_record_bytes,
            **producer_options,
        )
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def topic(self) -> str:
        return self._publisher.topic

    def start(self) -> None:
        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="sync-command-publisher", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
        try:
            self._run(self._publisher.start())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Flushes, stops the producer and the loop thread; idempotent."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._publisher.stop(), loop).result(self.timeout_s)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self.timeout_s)
            loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def encode(self, command: Command) -> CommandRecord:
        """The checked record, without sending it; raises `InvalidCommandError`."""
        return self._publisher.encode(command)

    def publish(self, command: Command) -> Delivery:
        """Checks `command`, sends it, and returns once Kafka acknowledged it."""
        (delivery,) = self.publish_many((command,))
        return delivery

    def publish_many(self, commands: Iterable[Command]) -> list[Delivery]:
        """All checked first (one invalid: none sent), then sent pipelined and acknowledged."""
        records = [self.encode(command) for command in commands]
        return self._run(self._publisher.publish_records(records))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise RuntimeError("SyncCommandPublisher is not started: use `with` or start()")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise
