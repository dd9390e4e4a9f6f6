"""The worker process: wires Kafka, Redis and the command loop, and stops cleanly.

Lifecycle as in saq/arq: signal handlers only set an event; `run()` waits for it and calls the
idempotent `stop()` in `finally`; `stop()` lets the batch in flight finish and commit within the
grace period, then cancels.
"""

import asyncio
import signal
import time
from collections.abc import Callable

import redis.asyncio as aioredis
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.clock import now_ms
from worker.consumer import CommandLoop, DrainOnRevoke
from worker.keys import KeySpace
from worker.processor import BatchProcessor, Limits
from worker.publisher import EventPublisher
from worker.settings import Settings
from worker.store import SessionStore

log = structlog.get_logger("worker")


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        handle_signals: bool = True,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self._handle_signals = handle_signals
        self._clock = clock
        self._stop = asyncio.Event()
        self._stopped = False
        self._redis: aioredis.Redis | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.loop: CommandLoop | None = None
        self.assigned = 0  # partitions currently assigned, for readiness

    async def start(self) -> None:
        s = self.settings
        self._redis = aioredis.Redis.from_url(s.redis_url, decode_responses=False)
        store = SessionStore(self._redis, KeySpace(s.key_prefix), s.outbox_ttl_ms)
        self._producer = AIOKafkaProducer(**s.to_producer_params())
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**s.to_consumer_params())
        await self._consumer.start()
        processor = BatchProcessor(
            store,
            Limits(s.max_record_bytes, s.expired_retention_ms, s.tombstone_ttl_ms),
            self._clock,
        )
        publisher = EventPublisher(self._producer, s.events_topic, s.dead_letter_topic)
        self.loop = CommandLoop(
            self._consumer,
            processor,
            publisher,
            store,
            poll_timeout_ms=s.poll_timeout_ms,
            batch_max_records=s.batch_max_records,
        )
        self._consumer.subscribe(
            [s.commands_topic], listener=DrainOnRevoke(self.loop.in_flight, self._on_rebalance)
        )
        log.info(
            "worker started",
            commands_topic=s.commands_topic,
            events_topic=s.events_topic,
            group_id=s.group_id,
        )

    def _on_rebalance(self, change: str, partitions: int) -> None:
        self.assigned = partitions if change == "assigned" else 0
        log.info("partitions " + change, partitions=partitions)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, *, burst: bool = False) -> None:
        """Processes commands until stopped (SIGTERM/SIGINT, `request_stop`) or, with `burst`,
        until everything assigned has been processed."""
        loop = asyncio.get_running_loop()
        if self._handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            assert self.loop is not None  # noqa: S101 - set by start()
            task = asyncio.create_task(self.loop.run(self._stop, burst=burst))
            stop_wait = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if task in done:
                task.result()  # surfaces a crash of the loop
            else:
                await self._drain(task)
        finally:
            await self.stop()
            if self._handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    async def _drain(self, task: "asyncio.Task[None]") -> None:
        """The loop sees the stop event after its current batch; give it the grace period."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.shutdown_grace_s)
        except TimeoutError:
            log.warning("grace period over, cancelling the batch in flight")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        log.info("drained", seconds=round(time.monotonic() - started, 3))

    async def stop(self) -> None:
        """Idempotent: leaves the group, flushes the producer, closes Redis."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group now: partitions move at once
        if self.loop is not None:
            try:
                await self.loop.store_flush()
            except Exception as exc:  # noqa: BLE001 - clean-up is best effort; TTL bounds it
                log.warning("outbox clean-up at stop failed", error=str(exc))
        if self._producer is not None:
            await self._producer.stop()
        if self._redis is not None:
            await self._redis.aclose()
        log.info("worker stopped")
