"""The command loop: getmany -> process (decide, apply in Redis) -> publish -> commit, overlapped.

Offsets are committed only after Redis holds the batch's changes and Kafka has its events, so
nothing accepted is lost; a crash in between replays the records, and the store's outbox turns
a replay into the same events again. A failed batch is rewound and retried after a back-off: the
worker pauses while Redis or Kafka is away, and never skips or dead-letters for it.

Batches overlap: while Kafka acknowledges batch N's events, batch N+1 is decoded, decided and
applied in Redis; N's commit is in flight while N+1's events are queued. N+1's events are queued
only once N's are acknowledged, so a failed delivery of N can never let N+1's events overtake
N's replayed ones (a session's events stay in command order), and commits stay in batch order.
A failure rewinds every batch not committed; the outbox makes their replay send the same events.
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from worker import faults
from worker.clock import now_ms
from worker.errors import WorkerError
from worker.metrics import Metrics
from worker.outcome import Outcome
from worker.probes import HealthState
from worker.processor import BatchProcessor
from worker.replication import ReplicaBarrier
from worker.sending import EventPublisher
from worker.store import SessionStore

if TYPE_CHECKING:  # imported only when tracing is configured (worker.telemetry)
    from worker.tracing import BatchTrace, Tracing

log = structlog.get_logger("worker.consumer")

BACKOFF_MIN_S = 0.1  # first retry soon: most failures are a blip
BACKOFF_MAX_S = 5.0  # then no more than one attempt per 5 s while a service is down
KAFKA_PROBE_AFTER_S = 5.0  # an idle loop checks Kafka is there this often


class DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets a rebalance wait until the batches in flight are committed, so no partition has two
    owners working at once and no finished work is thrown away."""

    def __init__(
        self,
        in_flight: asyncio.Lock,
        on_change: Callable[[str, int], None],
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._in_flight = in_flight
        self._on_change = on_change
        self._drain = drain

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._in_flight:
            if self._drain is not None:
                try:
                    await self._drain()
                except (WorkerError, KafkaError, OSError) as exc:
                    # Left pending: the loop rewinds it; the new owner replays what was revoked.
                    log.warning(
                        "batch in flight not committed before the rebalance", error=str(exc)
                    )
            self._on_change("revoked", len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_change("assigned", len(assigned))


@dataclass(slots=True)
class _Batch:
    """A batch whose changes Redis holds, on its way to Kafka and the commit."""

    fetched: dict[TopicPartition, list[object]]
    outcomes: list[Outcome]
    started: float  # perf_counter at fetch
    delivered: "asyncio.Future[list[object]] | None" = None  # set once its events are queued
    committing: "asyncio.Future[bool] | None" = None  # set once they are acknowledged
    trace: "BatchTrace | None" = None  # its spans, with tracing on

    @property
    def records(self) -> int:
        return sum(len(recs) for recs in self.fetched.values())


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
        barrier: ReplicaBarrier | None = None,
        tracing: "Tracing | None" = None,
    ) -> None:
        self._consumer = consumer
        self._tracing = tracing
        self._barrier = barrier if barrier is not None and barrier.enabled else None
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
        # In flight, oldest first: a batch whose commit was sent, and one whose events were
        # queued; the loop meanwhile applies the next batch in Redis.
        self._committing: _Batch | None = None
        self._delivering: _Batch | None = None
        self.batches = 0  # finished batches, for progress checks
        # Liveness: the loop turns (beat), and Kafka answered recently (records, a commit, or an
        # idle probe). Monotonic seconds.
        self.last_beat = self.kafka_seen = time.monotonic()

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Until `stop` is set; with `burst`, also returns once everything assigned is done."""
        backoff = BACKOFF_MIN_S
        try:
            while not stop.is_set():
                self.last_beat = time.monotonic()
                if self._health is not None:
                    self._health.beat()
                fetched = await self._consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._batch_limit
                )
                if not fetched:
                    if await self._retrying(stop, backoff, None, self.drain):
                        backoff = min(backoff * 2, BACKOFF_MAX_S)
                        continue
                    await self._idle()
                    if burst and await self._caught_up():
                        return
                    continue
                self.kafka_seen = time.monotonic()
                if await self._retrying(
                    stop, backoff, fetched, functools.partial(self._handle, fetched)
                ):
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                else:
                    backoff = BACKOFF_MIN_S
        finally:
            # Stopping: what is in flight is committed, or left to be replayed by the next owner.
            with contextlib.suppress(WorkerError, KafkaError, OSError):
                async with self.in_flight:
                    await self.drain()

    async def _retrying(
        self,
        stop: asyncio.Event,
        backoff: float,
        fetched: dict[TopicPartition, list[object]] | None,
        step: Callable[[], Awaitable[None]],
    ) -> bool:
        """Runs `step` under the in-flight lock; on a retriable failure, rewinds everything not
        committed, backs off, and returns True."""
        try:
            async with self.in_flight:
                await step()
        except (WorkerError, KafkaError, OSError) as exc:
            if not getattr(exc, "retriable", True) and not isinstance(exc, OSError):
                raise
            self._metrics.batch_failed(exc)
            self._rewind(fetched)
            log.warning("batch failed, will retry", error=str(exc), retry_in_s=backoff)
            await _sleep_unless(stop, backoff)
            return True
        return False

    async def _handle(self, fetched: dict[TopicPartition, list[object]]) -> None:
        batch = _Batch(fetched, [], time.perf_counter())
        records = [r for tp_records in fetched.values() for r in tp_records]
        if self._tracing is None:
            batch.outcomes = await self._processor.process(records)  # type: ignore[arg-type]
            await self._queue_events(batch, len(records))
            return
        batch.trace = self._tracing.batch(records, next(iter(fetched)).topic)
        try:
            with batch.trace.active():  # the Redis steps become the batch span's children
                batch.outcomes = await self._processor.process(
                    records,  # type: ignore[arg-type]
                    traces=batch.trace.stored(),
                )
            await self._queue_events(batch, len(records))
        except BaseException as exc:
            batch.trace.fail(exc)  # once queued, _acknowledged or _rewind ends it first
            raise

    async def _queue_events(self, batch: _Batch, records: int) -> None:
        """Queues the batch's events once the previous batch's are acknowledged (and the
        replicas hold this batch's writes)."""
        faults.crash_point("after_store")
        await faults.slow_batch(records)
        # Replicas catch up while the previous batch's delivery is awaited. Events go out only
        # once replicas hold the writes behind them: announced, then lost in a failover, the
        # command would be decided again, and its event sent again with other timestamps.
        replicated = self._replicated(batch.outcomes)
        try:
            # The previous batch's events must be in Kafka before this one's are queued.
            if self._delivering is not None:
                await self._acknowledged(self._delivering)
            if replicated is not None:
                await replicated
        except BaseException:
            _abandon(replicated)
            raise
        if batch.trace is None:
            batch.delivered = await self._publisher.enqueue(batch.outcomes)
        else:
            batch.trace.publishing(self._publisher.events_topic, len(batch.outcomes))
            batch.delivered = await self._publisher.enqueue(batch.outcomes, batch.trace.headers())
        self._delivering = batch
        # What keeps the next poll waiting: this batch's work and the previous one's delivery.
        self._adapt_batch(records, time.perf_counter() - batch.started)

    async def drain(self) -> None:
        """Finishes the batches in flight: events acknowledged, offsets committed. On a failure
        they stay in flight, to be rewound."""
        if self._delivering is not None:
            await self._acknowledged(self._delivering)
        if self._committing is not None:
            await self._committed(self._committing)

    async def _acknowledged(self, batch: _Batch) -> None:
        """Awaits the batch's deliveries, then starts its commit once the one before it is
        done (commits stay in order); the loop goes on meanwhile."""
        assert batch.delivered is not None  # noqa: S101 - queued before it is delivering
        await batch.delivered
        if batch.trace is not None:
            batch.trace.finish(batch.outcomes)
        faults.crash_point("after_publish")
        if self._committing is not None:
            await self._committed(self._committing)
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.fetched.items()}  # type: ignore[attr-defined]
        batch.committing = asyncio.ensure_future(self._commit(offsets))
        self._delivering, self._committing = None, batch

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group moved on without us: the new owner replays these records and the outbox
            # gives it the same events, so keep the outbox entries for it.
            log.warning("commit failed after a rebalance; the new owner replays")
            return False
        return True

    async def _committed(self, batch: _Batch) -> None:
        assert batch.committing is not None  # noqa: S101 - acknowledged first
        committed = await batch.committing
        self._committing = None
        if not committed:
            return
        outcomes = batch.outcomes
        self._store.committed(o.outbox for o in outcomes if o.outbox is not None)
        self.batches += 1
        self.kafka_seen = time.monotonic()
        elapsed = time.perf_counter() - batch.started
        self._metrics.observe_batch(batch.records, elapsed)
        self._metrics.observe_outcomes(outcomes, now_ms())
        _log_outcomes(outcomes, elapsed * 1000)

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

    def _replicated(self, outcomes: Sequence[Outcome]) -> "asyncio.Future[None] | None":
        """The wait for replicas of every session the batch wrote (replays too: a replay after
        a failover may rewrite what the last attempt's replicas never got)."""
        if self._barrier is None:
            return None
        sessions = {o.session_id for o in outcomes if o.session_id is not None}
        return asyncio.ensure_future(self._barrier.replicated(sessions)) if sessions else None

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

    def _rewind(self, fetched: dict[TopicPartition, list[object]] | None) -> None:
        """Fetch again from the oldest record not committed: the batches in flight and the
        failed one, since getmany already moved past them all."""
        start: dict[TopicPartition, int] = {}
        in_flight = [b for b in (self._committing, self._delivering) if b is not None]
        self._committing = self._delivering = None
        for batch in in_flight:
            # Not known to be committed: replayed instead. How its delivery or commit ends no
            # longer matters, and a failure there is not reported again when it does.
            if batch.committing is not None:
                batch.committing.cancel()
            if batch.trace is not None:
                batch.trace.fail(WorkerError("rewound"))
            for future in (batch.delivered, batch.committing):
                if future is not None:
                    future.add_done_callback(_consume_outcome)
        for records in [*(b.fetched for b in in_flight), fetched or {}]:
            for tp, recs in records.items():
                first = recs[0].offset  # type: ignore[attr-defined]
                start[tp] = min(first, start.get(tp, first))
        for tp, offset in start.items():
            # Revoked meanwhile: its new owner starts from the last commit anyway.
            with contextlib.suppress(IllegalStateError):
                self._consumer.seek(tp, offset)


def _abandon(future: "asyncio.Future[Any] | None") -> None:
    if future is not None:
        future.cancel()
        future.add_done_callback(_consume_outcome)


def _consume_outcome(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _log_outcomes(outcomes: Sequence[Outcome], batch_ms: float) -> None:
    """One info line per batch; one line per record for rejections (info) and, at debug, for
    every other outcome. A JSON line per record cost ~12 µs, the most of any single step of a
    create after Redis; the batch line names the offsets, so a record is still found by them."""
    per_record = log.is_enabled_for(logging.DEBUG)
    share_ms = round(batch_ms / max(len(outcomes), 1), 3)
    results: Counter[str] = Counter()
    offsets: dict[str, list[int]] = {}
    for o in outcomes:
        results[o.result] += 1
        span = offsets.setdefault(f"{o.record.topic}:{o.record.partition}", [o.record.offset] * 2)
        span[1] = o.record.offset
        if o.rejection is None and not per_record:
            continue
        fields = {
            "topic": o.record.topic,
            "partition": o.record.partition,
            "offset": o.record.offset,
            "command_id": o.command_id,
            "session_id": o.session_id,
            "org_id": o.org_id,
            "event_type": o.event_type,
            "duration_ms": share_ms,  # the record's share of its batch
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
            log.debug("command " + o.result, outcome=o.result, **fields)
    log.info(
        "batch committed",
        records=len(outcomes),
        outcomes=dict(results),
        offsets=offsets,
        duration_ms=round(batch_ms, 3),
    )
