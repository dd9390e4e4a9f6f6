"""The command loop: getmany -> process (one Redis round trip) -> publish -> commit.

Offsets are committed only after Redis holds the batch's changes and Kafka has its events, so
nothing accepted is lost; a crash in between replays the records, and the store's outbox turns
a replay into the same events again. A failed batch is rewound and retried after a back-off: the
worker pauses while Redis or Kafka is away, and never skips or dead-letters for it.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from worker import faults
from worker.clock import now_ms
from worker.errors import WorkerError
from worker.http import HealthState
from worker.metrics import Metrics
from worker.processor import BatchProcessor, Outcome
from worker.publisher import EventPublisher
from worker.store import SessionStore

log = structlog.get_logger("worker.consumer")

BACKOFF_MIN_S = 0.1  # first retry soon: most failures are a blip
BACKOFF_MAX_S = 5.0  # then no more than one attempt per 5 s while a service is down
KAFKA_PROBE_AFTER_S = 5.0  # an idle loop checks Kafka is there this often


class DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets a rebalance wait until the batch in flight is committed, so no partition has two
    owners working at once and no finished work is thrown away."""

    def __init__(self, in_flight: asyncio.Lock, on_change: Callable[[str, int], None]) -> None:
        self._in_flight = in_flight
        self._on_change = on_change

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._in_flight:
            self._on_change("revoked", len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_change("assigned", len(assigned))


class CommandLoop:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        processor: BatchProcessor,
        publisher: EventPublisher,
        store: SessionStore,
        *,
        poll_timeout_ms: int,
        batch_max_records: int,
        max_poll_interval_ms: int,
        metrics: Metrics | None = None,
        health: HealthState | None = None,
    ) -> None:
        self._consumer = consumer
        self._processor = processor
        self._publisher = publisher
        self._store = store
        self._poll_timeout_ms = poll_timeout_ms
        self._batch_max_records = batch_max_records
        self._batch_limit = batch_max_records  # lowered after a batch took too long
        self._max_poll_interval_s = max_poll_interval_ms / 1000
        self._metrics = metrics if metrics is not None else Metrics()
        self._health = health
        self.in_flight = asyncio.Lock()
        self.batches = 0  # finished batches, for progress checks
        # Liveness: the loop turns (beat), and Kafka answered recently (records, a commit, or an
        # idle probe). Monotonic seconds.
        self.last_beat = self.kafka_seen = time.monotonic()

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Until `stop` is set; with `burst`, also returns once everything assigned is done."""
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            self.last_beat = time.monotonic()
            if self._health is not None:
                self._health.beat()
            fetched = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._batch_limit
            )
            if not fetched:
                await self._idle()
                if burst and await self._caught_up():
                    return
                continue
            self.kafka_seen = time.monotonic()
            try:
                async with self.in_flight:
                    await self._handle(fetched)
                backoff = BACKOFF_MIN_S
            except (WorkerError, KafkaError, OSError) as exc:
                if not getattr(exc, "retriable", True) and not isinstance(exc, OSError):
                    raise
                self._metrics.batch_failed(exc)
                self._rewind(fetched)
                log.warning("batch failed, will retry", error=str(exc), retry_in_s=backoff)
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _handle(self, fetched: dict[TopicPartition, list[object]]) -> None:
        started = time.perf_counter()
        records = [r for tp_records in fetched.values() for r in tp_records]
        outcomes = await self._processor.process(records)  # type: ignore[arg-type]
        faults.crash_point("after_store")
        await self._publisher.publish(outcomes)
        faults.crash_point("after_publish")
        await faults.slow_batch(len(records))
        offsets = {tp: recs[-1].offset + 1 for tp, recs in fetched.items()}  # type: ignore[attr-defined]
        self._adapt_batch(len(records), time.perf_counter() - started)
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group moved on without us: the new owner replays these records and the outbox
            # gives it the same events, so keep the outbox entries for it.
            log.warning("commit failed after a rebalance; the new owner replays")
            return
        self._store.committed(o.outbox for o in outcomes if o.outbox is not None)
        self.batches += 1
        self.kafka_seen = time.monotonic()
        self._metrics.observe_batch(len(records), time.perf_counter() - started)
        self._metrics.observe_outcomes(outcomes, now_ms())
        _log_outcomes(outcomes, (time.perf_counter() - started) * 1000 / max(len(records), 1))

    def _adapt_batch(self, records: int, elapsed_s: float) -> None:
        """Keeps a batch well inside max.poll.interval.ms. A batch that outlasts it makes the
        group rebalance (once); shrinking the next batches to a quarter of the interval at the
        rate just seen keeps that from repeating, where a fixed size would rejoin every batch."""
        budget_s = self._max_poll_interval_s / 4
        if elapsed_s > budget_s:
            fitting = max(1, int(records * budget_s / elapsed_s))
            if fitting < self._batch_limit * 0.8:  # not for a slight overshoot
                self._batch_limit = fitting
                log.warning(
                    "batch too slow for max.poll.interval.ms; smaller batches from now on",
                    batch_seconds=round(elapsed_s, 3),
                    batch_max_records=fitting,
                )
        elif records >= self._batch_limit and elapsed_s * 2 < budget_s:
            self._batch_limit = min(self._batch_max_records, self._batch_limit * 2)

    async def store_flush(self) -> None:
        await self._store.flush()

    async def _idle(self) -> None:
        try:
            await self._store.flush()
        except WorkerError as exc:
            log.warning("outbox clean-up postponed", error=str(exc))
        if time.monotonic() - self.kafka_seen > KAFKA_PROBE_AFTER_S:
            await self._probe_kafka()

    async def _probe_kafka(self) -> None:
        """An empty poll looks the same whether the topic is quiet or the broker is gone; a
        cheap request tells them apart, for the liveness check."""
        assignment = list(self._consumer.assignment())
        try:
            if assignment:
                await asyncio.wait_for(self._consumer.end_offsets(assignment), KAFKA_PROBE_AFTER_S)
            else:
                await asyncio.wait_for(self._consumer.topics(), KAFKA_PROBE_AFTER_S)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("Kafka does not answer", error=repr(exc))
            return
        self.kafka_seen = time.monotonic()

    async def _caught_up(self) -> bool:
        assignment = self._consumer.assignment()
        if not assignment:
            return False
        for tp in assignment:
            highwater = self._consumer.highwater(tp)
            if highwater is None or await self._consumer.position(tp) < highwater:
                return False
        return True

    def _rewind(self, fetched: dict[TopicPartition, list[object]]) -> None:
        """Fetch the failed batch again: getmany already moved past it."""
        for tp, recs in fetched.items():
            # Revoked meanwhile: its new owner starts from the last commit anyway.
            with contextlib.suppress(IllegalStateError):
                self._consumer.seek(tp, recs[0].offset)  # type: ignore[attr-defined]


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _log_outcomes(outcomes: Iterable[Outcome], duration_ms: float) -> None:
    for o in outcomes:
        fields = {
            "topic": o.record.topic,
            "partition": o.record.partition,
            "offset": o.record.offset,
            "command_id": o.command_id,
            "session_id": o.session_id,
            "org_id": o.org_id,
            "event_type": o.event_type,
            "duration_ms": round(duration_ms, 3),
        }
        if o.rejection is not None:
            log.info(
                "command " + o.result,
                outcome=o.result,
                error_code=o.rejection.code,
                error_path=o.rejection.path,
                error=o.rejection.message,
                **fields,
            )
        else:
            log.info("command " + o.result, outcome=o.result, **fields)
