"""The two yardsticks the worker is measured between, on the same broker and Redis.

- ceiling: consume, produce the bytes unchanged, commit per batch. No decoding, no Redis: what
  this broker and aiokafka allow a single Python process at most.
- floor: the worker's own pieces (decode, decide, snapshot, events, the guarded Lua step) with a
  batch of one: every record awaits its Redis write, its delivery and its commit before the next.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.cpu_budget import CpuUse
from bench.kafkaio import LagSample, LagWatch, steady_rate
from worker.clock import now_ms
from worker.keys import KeySpace
from worker.processor import BatchProcessor, Limits
from worker.redis_client import connect_redis
from worker.sending import EventPublisher
from worker.settings import Settings
from worker.store import SessionStore


@dataclass
class RunResult:
    name: str
    records: int  # processed (committed) in the timed window
    rate: float  # records/s over the steady window
    window_s: float
    wall_s: float  # start of the contender to the end, start-up included
    samples: list[LagSample]
    batches: float = float("nan")  # from the worker's own metrics, over the run
    batch_seconds: float = float("nan")  # their total fetch-to-commit time
    cpu: CpuUse | None = None  # every process's CPU time over the run (cpu_budget)


async def pass_through(settings: Settings, out_topic: str, stop: asyncio.Event) -> None:
    """Consume the commands topic, produce each record's bytes unchanged, commit per batch."""
    consumer = AIOKafkaConsumer(**settings.to_consumer_params())
    producer = AIOKafkaProducer(**settings.to_producer_params())
    await producer.start()
    await consumer.start()
    consumer.subscribe([settings.commands_topic])
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(
                timeout_ms=settings.poll_timeout_ms, max_records=settings.batch_max_records
            )
            if not fetched:
                continue
            deliveries = [
                await producer.send(out_topic, r.value, key=r.key)
                for recs in fetched.values()
                for r in recs
            ]
            await asyncio.gather(*deliveries)
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in fetched.items()})
    finally:
        await consumer.stop()
        await producer.stop()


async def ceiling(
    settings: Settings,
    out_topic: str,
    target: int,
    timeout_s: float,
    on_sample: Callable[[LagSample], None] | None = None,
) -> RunResult:
    """Raw pass-through of the commands topic until `target` records are committed;
    `on_sample` sees each lag sample (the runner marks CPU time at the first commit)."""
    watch = LagWatch(settings.kafka, settings.commands_topic, settings.group_id)
    started = time.monotonic()
    await watch.start()
    stop = asyncio.Event()
    task = asyncio.create_task(pass_through(settings, out_topic, stop))
    try:
        await watch.until(target, timeout_s, on_sample=on_sample or (lambda s: None))
    finally:
        stop.set()
        await task
        wall = time.monotonic() - started
        await watch.stop()
    rate, window = steady_rate(watch.samples)
    done = watch.samples[-1].committed if watch.samples else 0
    return RunResult("ceiling", done, rate, window, wall, watch.samples)


async def floor(settings: Settings, seconds: float) -> RunResult:
    """The worker's pieces one record at a time, for `seconds` (it is slow: a sample is enough)."""
    s = settings.replace(batch_max_records=1)
    client = connect_redis(s, socket_timeouts=False)  # the worker's own client
    store = SessionStore(client, KeySpace(s.key_prefix), s.outbox_ttl_ms)
    processor = BatchProcessor(
        store, Limits(s.max_record_bytes, s.expired_retention_ms, s.tombstone_ttl_ms), now_ms
    )
    consumer = AIOKafkaConsumer(**s.to_consumer_params())
    producer = AIOKafkaProducer(**s.to_producer_params())
    publisher = EventPublisher(producer, s.events_topic, s.dead_letter_topic)
    watch = LagWatch(s.kafka, s.commands_topic, s.group_id)
    started = time.monotonic()
    await producer.start()
    await consumer.start()
    await watch.start()
    consumer.subscribe([s.commands_topic])
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=s.poll_timeout_ms, max_records=1)
            for tp, recs in fetched.items():
                for r in recs:
                    outcomes = await processor.process([r])
                    await publisher.publish(outcomes)
                    await consumer.commit({tp: r.offset + 1})
                    store.committed(o.outbox for o in outcomes if o.outbox is not None)

    async def sample() -> None:
        while not stop.is_set():
            await watch.sample()
            await asyncio.sleep(watch.interval_s)

    task = asyncio.create_task(loop())
    sampler = asyncio.create_task(sample())
    try:
        # Timed from the first commit, like every contender.
        while not watch.samples or watch.samples[-1].committed == 0:
            await asyncio.sleep(0.05)
            if time.monotonic() - started > 60:
                break
        await asyncio.sleep(seconds)
    finally:
        stop.set()
        await task
        await sampler
        await watch.sample()
        wall = time.monotonic() - started
        await consumer.stop()
        await producer.stop()
        await watch.stop()
        await client.aclose()
    rate, window = steady_rate(watch.samples)
    return RunResult("floor", watch.samples[-1].committed, rate, window, wall, watch.samples)
