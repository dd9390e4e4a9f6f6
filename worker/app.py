"""The worker process: wires Kafka, Redis and the command loop, and stops cleanly.

Lifecycle as in saq/arq: signal handlers only set an event; `run()` waits for it and calls the
idempotent `stop()` in `finally`; `stop()` lets the batch in flight finish and commit within the
grace period, then cancels.
"""

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.access_check import verify_kafka, verify_redis
from worker.clock import now_ms
from worker.consumer import CommandLoop, DrainOnRevoke
from worker.errors import LivenessError
from worker.expiry import ExpirySweeper, buckets_of_partitions
from worker.keys import KeySpace
from worker.metrics import Metrics
from worker.probes import HttpServer, health_state, http_server
from worker.processor import BatchProcessor, Limits
from worker.redis_client import REDIS_TIMEOUT_S, RedisClient, connect_redis
from worker.replication import ReplicaBarrier
from worker.sampling import run_samplers
from worker.sending import EventPublisher
from worker.settings import Settings
from worker.store import SessionStore

if TYPE_CHECKING:  # imported only when tracing is configured (worker.telemetry)
    from worker.tracing import Tracing

log = structlog.get_logger("worker")


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        handle_signals: bool = True,
        clock: Callable[[], int] = now_ms,
        tracing: "Tracing | None" = None,
    ) -> None:
        self.settings = settings
        self._tracing = tracing  # None: off (worker.telemetry decides from OTEL_*)
        self._handle_signals = handle_signals
        self._clock = clock
        self._stop = asyncio.Event()
        self._stopped = False
        self._redis: RedisClient | None = None
        self._store_redis: RedisClient | None = None
        self._barrier: ReplicaBarrier | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.loop: CommandLoop | None = None
        self.sweeper: ExpirySweeper | None = None
        self.assigned = 0  # partitions currently assigned, for readiness
        self.metrics = Metrics()
        self.health = health_state(settings)
        self._http: HttpServer | None = None

    async def start(self) -> None:
        s = self.settings
        # Probes answer from the first moment: not ready (yet), but alive.
        self._http = http_server(s, self.health, self.metrics)
        if self._http is not None:
            await self._http.start()
        self._redis = connect_redis(s)  # one server, or a Redis Cluster (SW_REDIS_CLUSTER)
        # Refused credentials or certificates stop the start here, saying which settings to fix,
        # rather than leaving clients to retry while the replica looks alive.
        await verify_redis(self._redis, s, REDIS_TIMEOUT_S)
        # The store's own connections: it bounds each round trip itself, not each reply.
        self._store_redis = connect_redis(s, socket_timeouts=False)
        store = SessionStore(self._store_redis, KeySpace(s.key_prefix), s.outbox_ttl_ms)
        self._barrier = ReplicaBarrier(
            self._redis,
            KeySpace(s.key_prefix),
            min_replicas=s.redis_min_replicas,
            timeout_ms=s.redis_replica_timeout_ms,
            wait_aof=s.redis_wait_aof,
            metrics=self.metrics,
        )
        await self._barrier.check()
        self._producer = AIOKafkaProducer(**s.to_producer_params())
        try:
            await self._producer.start()
        except KafkaError:
            # aiokafka says only "Unable to bootstrap": ask the brokers why, once.
            await verify_kafka(s.kafka)
            raise
        self._consumer = AIOKafkaConsumer(**s.to_consumer_params())
        await self._consumer.start()
        processor = BatchProcessor(
            store,
            Limits(s.max_record_bytes, s.expired_retention_ms, s.tombstone_ttl_ms),
            self._clock,
            cache_size=s.session_cache_size,
            tracing=self._tracing,
        )
        publisher = EventPublisher(self._producer, s.events_topic, s.dead_letter_topic)
        self.loop = CommandLoop(
            self._consumer,
            processor,
            publisher,
            store,
            poll_timeout_ms=s.poll_timeout_ms,
            batch_max_records=s.batch_max_records,
            max_poll_interval_ms=s.max_poll_interval_ms,
            metrics=self.metrics,
            health=self.health,
            barrier=self._barrier,
            tracing=self._tracing,
        )
        self.sweeper = ExpirySweeper(
            store,
            self._producer,
            s.events_topic,
            interval_ms=s.sweep_interval_ms,
            batch_max=s.expiry_batch_max,
            lease_ms=s.expiry_lease_ms,
            tombstone_ttl_ms=s.tombstone_ttl_ms,
            clock=self._clock,
            metrics=self.metrics,
            buckets=self._owned_buckets,
            barrier=self._barrier,
            tracing=self._tracing,
        )
        self._consumer.subscribe(
            [s.commands_topic],
            listener=DrainOnRevoke(self.loop.in_flight, self._on_rebalance, self.loop.drain),
        )
        log.info(
            "worker started",
            commands_topic=s.commands_topic,
            events_topic=s.events_topic,
            group_id=s.group_id,
            tracing=self._tracing is not None,
        )

    def _owned_buckets(self) -> Sequence[int]:
        """The expiry buckets of the commands partitions this replica owns right now."""
        if self._consumer is None:
            return ()
        owned = [tp.partition for tp in self._consumer.assignment()]
        count = len(self._consumer.partitions_for_topic(self.settings.commands_topic) or ())
        return buckets_of_partitions(owned, count) if owned else ()

    def _on_rebalance(self, change: str, partitions: int) -> None:
        self.assigned = partitions if change == "assigned" else 0
        self.metrics.observe_rebalance(change, partitions)
        self.health.set_partitions(self.assigned)
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
            assert self.sweeper is not None  # noqa: S101
            assert self._redis is not None  # noqa: S101
            task = asyncio.create_task(self.loop.run(self._stop, burst=burst))
            sweeper = asyncio.create_task(self.sweeper.run(self._stop))
            watchdog = asyncio.create_task(self._watch(self.loop))
            samplers = asyncio.create_task(
                run_samplers(
                    self._stop,
                    metrics=self.metrics,
                    health=self.health,
                    consumer=self._consumer,
                    redis=self._redis,
                    key_prefix=self.settings.key_prefix,
                    sample_interval_s=self.settings.sample_interval_s,
                    clock=self._clock,
                )
            )
            stop_wait = asyncio.create_task(self._stop.wait())
            await asyncio.wait(
                {task, sweeper, watchdog, samplers, stop_wait},
                return_when=asyncio.FIRST_COMPLETED,
            )
            self._stop.set()  # a loop that ended (burst, a crash, liveness) stops the others too
            stop_wait.cancel()
            errors = await self._drain(task, sweeper, watchdog, samplers)
            if errors:
                raise errors[0]  # a crashed loop fails the run, after the others stopped
        finally:
            await self.stop()
            if self._handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    async def _watch(self, loop: CommandLoop) -> None:
        """Fails the run when the worker would otherwise be alive but idle: the loop stopped
        turning, or Kafka has not answered for the liveness timeout. The process then exits
        non-zero and its supervisor starts a fresh one."""
        limit = self.settings.liveness_timeout_s
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
            now = time.monotonic()
            if now - loop.last_beat > limit:
                raise LivenessError(f"the command loop has not turned for {limit:.0f} s")
            if now - loop.kafka_seen > limit:
                raise LivenessError(f"Kafka has not answered for {limit:.0f} s")

    async def _drain(self, *tasks: "asyncio.Task[None]") -> list[BaseException]:
        """The loops see the stop event after their current batch; give them the grace period."""
        started = time.monotonic()
        _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
        if pending:
            log.warning("grace period over, cancelling the work in flight")
            for task in pending:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [
            r
            for r in results
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        log.info("drained", seconds=round(time.monotonic() - started, 3))
        return errors

    async def stop(self) -> None:
        """Idempotent: leaves the group, flushes the producer, closes Redis."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self.health.mark_stopping()
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group now: partitions move at once
        if self.loop is not None:
            try:
                await self.loop.store_flush()
            except Exception as exc:  # noqa: BLE001 - clean-up is best effort; TTL bounds it
                log.warning("outbox clean-up at stop failed", error=str(exc))
        if self._producer is not None:
            await self._producer.stop()
        if self._barrier is not None:
            await self._barrier.aclose()
        for client in (self._store_redis, self._redis):
            if client is not None:
                await client.aclose()
        if self._http is not None:
            await self._http.stop()
        if self._tracing is not None:
            # The spans still buffered go out now; bounded by the exporter's timeout.
            await asyncio.to_thread(self._tracing.shutdown)
        log.info("worker stopped")
