"""Announces sessions whose TTL ran out: one `session.expired` per session, from any replica.

Redis expires the live record by itself, exactly at `expiresAt`; the sweeper finds such sessions
in the bucketed expiry index (not through keyspace notifications, which are lost while no one
listens), claims them with a lease, sends the event and only then turns the session into a
tombstone. A sweeper that dies between claim and finish leaves the claim to lapse; the next one
sends the identical event (same id, same bytes). Sessions that expired while no worker ran are
still in the index, with their last snapshot, when one starts.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from worker.constants import BUCKETS
from worker.errors import WorkerError
from worker.eventing import expired_event
from worker.metrics import Metrics
from worker.partitioning import partition_of
from worker.replication import ReplicaBarrier
from worker.sending import append_to_batches, send_batches
from worker.store import ExpiredSession, SessionStore

if TYPE_CHECKING:  # imported only when tracing is configured (worker.telemetry)
    from opentelemetry.trace import Span

    from worker.tracing import Tracing

log = structlog.get_logger("worker.expiry")

ALL_BUCKETS = tuple(range(BUCKETS))
YIELD_EVERY = 256  # events built between turns of the event loop during a large sweep


def buckets_of_partitions(partitions: Sequence[int], partition_count: int) -> Sequence[int]:
    """The expiry buckets a replica sweeps: those whose number modulo the commands topic's
    partition count is a partition it owns. Kafka gives every partition one owner, so the
    replicas split the buckets without overlap and, together, cover all of them (one replica
    alone owns every partition, so it sweeps every bucket, also after an outage). During a
    rebalance two sweepers may briefly share a bucket; claiming is atomic, so that costs only
    a wasted look."""
    if partition_count <= 0:
        return ALL_BUCKETS
    owned = set(partitions)
    return tuple(b for b in ALL_BUCKETS if b % partition_count in owned)


class ExpirySweeper:
    def __init__(
        self,
        store: SessionStore,
        producer: AIOKafkaProducer,
        events_topic: str,
        *,
        interval_ms: int,
        batch_max: int,
        lease_ms: int,
        tombstone_ttl_ms: int,
        clock: Callable[[], int],
        metrics: Metrics | None = None,
        buckets: Callable[[], Sequence[int]] = lambda: ALL_BUCKETS,
        barrier: ReplicaBarrier | None = None,
        tracing: "Tracing | None" = None,
    ) -> None:
        self._store = store
        self._tracing = tracing
        self._barrier = barrier if barrier is not None and barrier.enabled else None
        self._producer = producer
        self._events_topic = events_topic
        self._interval_s = interval_ms / 1000
        self._batch_max = batch_max
        self._lease_ms = lease_ms
        self._tombstone_ttl_ms = tombstone_ttl_ms
        self._clock = clock
        self._metrics = metrics if metrics is not None else Metrics()
        self._buckets = buckets
        self.announced = 0
        self.last_sweep = time.monotonic()
        self._finishing: asyncio.Future[None] | None = None  # the last full pass's tombstones

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    full = await self.sweep()
                except (WorkerError, OSError) as exc:
                    self._metrics.count_error(exc, "sweep")
                    log.warning("expiry sweep failed, will retry", error=str(exc))
                    full = False
                except Exception as exc:  # noqa: BLE001 - Kafka errors: retry, never die silently
                    self._metrics.count_error(exc, "sweep")
                    log.warning("expiry sweep failed, will retry", error=repr(exc))
                    full = False
                if not full:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
        finally:
            # Announced but not finished: the leases lapse and the next sweeper sends the
            # identical events again. Finishing now spares that.
            with contextlib.suppress(WorkerError, OSError):
                await self._finish_previous()

    async def sweep(self) -> bool:
        """One pass over every bucket; True if a bucket may have more due than one pass takes
        (`batch_max` per bucket), and the next pass should start at once.

        Passes overlap a little: after a full pass the tombstones are written while the next
        pass claims and builds its events (its sessions are not due again, their leases moved
        them ahead); a pass that leaves nothing due finishes before it returns.

        With tracing on, a pass that claimed something is a trace (one that claimed nothing
        is not: a span every interval from every replica would bury the ones that matter)."""
        now = self._clock()
        buckets = self._buckets()
        started_ns = time.time_ns()
        claimed = (
            await self._store.claim_expired(buckets, now, self._batch_max, self._lease_ms)
            if buckets
            else []
        )
        self.last_sweep = time.monotonic()
        if not claimed or self._tracing is None:
            return await self._announce(claimed, now, None)
        with self._tracing.sweep(started_ns, buckets=len(buckets), claimed=len(claimed)) as span:
            return await self._announce(claimed, now, span)

    async def _announce(
        self, claimed: Sequence[ExpiredSession], now: int, span: "Span | None"
    ) -> bool:
        if claimed:
            if self._tracing is not None and span is not None:
                with self._tracing.sending(self._events_topic, len(claimed)):
                    await asyncio.gather(*await self._send(claimed, span))
            else:
                await asyncio.gather(*await self._send(claimed, None))
        await self._finish_previous()
        if not claimed:
            return False
        finishing = self._finish(claimed, now)
        full = len(claimed) >= self._batch_max
        if full:
            self._finishing = asyncio.ensure_future(finishing)
        else:
            await finishing
        return full

    async def _finish_previous(self) -> None:
        finishing, self._finishing = self._finishing, None
        if finishing is not None:
            await finishing

    async def _finish(self, claimed: Sequence[ExpiredSession], now: int) -> None:
        """Once their events are delivered: the sessions become tombstones, counted and logged."""
        tombstone_until = self._clock() + self._tombstone_ttl_ms
        if self._tracing is None:
            await self._store.finish_expired(claimed, tombstone_until)
        else:
            with self._tracing.redis("finish_expired", len(claimed)):
                await self._store.finish_expired(claimed, tombstone_until)
        if self._barrier is not None:
            # The tombstones on the replicas too: a failover must not bring back a session
            # whose expiry was announced (its event would be sent again).
            await self._barrier.replicated(s.session_id for s in claimed)
        self.announced += len(claimed)
        done = self._clock()
        self._metrics.observe_expired([done - s.expires_ms for s in claimed])
        _log_expired(claimed, now)

    async def _send(
        self, claimed: Sequence[ExpiredSession], sweep: "Span | None"
    ) -> "list[asyncio.Future[object]]":
        """Queues the events in one record batch per partition, as the command loop queues its
        own (`send` per event was over a third of a sweep's CPU), and returns their deliveries.
        Each event goes to the partition of its session's other events (`partition_of` is
        Kafka's own partitioner). A large sweep lets the command loop run every few hundred
        events instead of holding the event loop until all are built. With tracing on, each
        event starts a trace of its own (`Tracing.expiry`) and carries its context."""
        partitions = len(await self._producer.partitions_for(self._events_topic))
        batches: dict[int, list[BatchBuilder]] = {}
        for n, session in enumerate(claimed, 1):
            key = session.session_id.encode()
            event = _event(session)
            headers = (
                None
                if self._tracing is None or sweep is None
                else self._tracing.expiry(
                    self._events_topic, session.session_id, session.trace, sweep
                )
            )
            partition = partition_of(key, partitions)
            append_to_batches(self._producer, batches, partition, key, event, headers)
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return await send_batches(self._producer, self._events_topic, batches)


def _log_expired(claimed: Sequence[ExpiredSession], now: int) -> None:
    """One info line per sweep, and at debug one per session, as the command loop logs one line
    per batch: a JSON line per session was a sixth of a sweep's CPU."""
    delays = sorted(now - s.expires_ms for s in claimed)
    if log.is_enabled_for(logging.DEBUG):
        for session in claimed:
            log.debug(
                "session expired",
                session_id=session.session_id,
                org_id=session.org_id,
                version=session.version + 1,
                delay_ms=now - session.expires_ms,
            )
    log.info(
        "sessions expired",
        sessions=len(claimed),
        delay_ms_median=delays[len(delays) // 2],
        delay_ms_max=delays[-1],
    )


def _event(session: ExpiredSession) -> bytes:
    return expired_event(
        session_id=session.session_id,
        org_id=session.org_id,
        version=session.version + 1,
        expires_ms=session.expires_ms,
        snapshot=session.snapshot,
    )
