"""Offered load: commands at a fixed rate, and the end-to-end latency of each one.

Latency is from the moment a command is handed to the producer to the moment its event is read
back from the events topic by this process (both clocks are this process' monotonic clock). So
it includes the producer, the broker twice, the worker and the reading consumer: what a caller
waiting for the event would see.

The load generator shares the machine with what it measures, so it stays light: the commands of
a phase are built before it starts (up to `PREBUILT_MAX`; a longer phase builds the rest as it
goes), and each tick's commands go to the producer as one record batch per partition, the way
the worker sends its events. Built and sent one by one (aiokafka's `send`), it took ~64 us of
CPU per command at 6,000/s, a third of a core taken from the worker, the broker and Redis;
building a command, ~14 us of that, now happens before the timed window.
"""

import asyncio
import gc
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from bench.commands import CommandStream
from bench.cpu_budget import CpuMeter, CpuUse
from bench.kafkaio import EventCollector
from session_client.connection import KafkaConnection, kafka_client_params
from worker.partitioning import partition_of
from worker.sending import append_to_batches, send_batches

TICK_S = 0.005
# Commands built before a phase starts; ~1.2 KB each, so at most ~0.5 GB (a 30 s phase at
# 13,000/s is 390,000). The soak's are built as it goes.
PREBUILT_MAX = 400_000


@dataclass
class Window:
    t: float  # seconds since the load started (end of the window)
    events_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class LoadResult:
    offered_per_s: float
    seconds: float
    sent: int
    answered: int
    missing: int  # commands whose event did not arrive within the drain time
    rejected: int
    latencies_ms: list[float]
    windows: list[Window] = field(default_factory=list)
    cpu: CpuUse | None = None  # every process's CPU time while the load was offered

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def offer(
    kafka: KafkaConnection,
    commands_topic: str,
    events_topic: str,
    stream: CommandStream,
    *,
    rate_per_s: float,
    seconds: float,
    window_s: float = 5.0,
    drain_s: float = 30.0,
    warmup_s: float = 0.0,
    on_tick: Callable[[int], None] = lambda n: None,
    meter: CpuMeter | None = None,
) -> LoadResult:
    """Sends `rate_per_s` commands a second for `seconds`, then waits up to `drain_s` for the
    events of all of them. Latencies of commands sent in the first `warmup_s` are not kept.
    With `meter`, its processes' CPU time is measured while the load is offered (building the
    commands beforehand and waiting for the last events after are left out)."""
    sent_at: dict[str, float] = {}
    arrivals: list[tuple[float, float]] = []  # (arrival, latency ms)
    t0 = time.monotonic()
    keep_from = t0 + warmup_s

    def answered(command_id: str, at: float) -> None:
        started = sent_at.pop(command_id, None)
        if started is not None and started >= keep_from:
            arrivals.append((at, (at - started) * 1000))

    collector = EventCollector(kafka, events_topic, keep_arrivals=False, on_command=answered)
    producer = AIOKafkaProducer(
        **kafka_client_params(kafka), acks="all", enable_idempotence=True, linger_ms=0
    )
    await collector.start()
    await producer.start()
    sent = 0
    answered_before = collector.seen.total
    prebuilt = int(rate_per_s * seconds) + 1
    commands = itertools.chain(
        stream.take(prebuilt) if prebuilt <= PREBUILT_MAX else (), iter(stream.next, None)
    )
    # Out of the collector's full scans while the load runs: with the prebuilt commands in
    # them, a full collection of this process stopped it for 60-140 ms (11 times in 60 s at
    # 6,100/s), and every command and event of that moment was timed the later for it; 10-45
    # ms without them. Frozen objects are still freed by reference counting.
    gc.freeze()
    try:
        partitions = len(await producer.partitions_for(commands_topic))
        pending: list[asyncio.Future[Any]] = []
        mark = meter.mark() if meter is not None else None
        t0 = time.monotonic()
        keep_from = t0 + warmup_s
        end = t0 + seconds
        while (now := time.monotonic()) < end:
            due = int(rate_per_s * (now - t0)) - sent
            if due > 0:
                batches: dict[int, list[BatchBuilder]] = {}
                for command in itertools.islice(commands, due):
                    key = command.key
                    append_to_batches(
                        producer, batches, partition_of(key, partitions), key, command.value
                    )
                    sent_at[command.command_id] = time.monotonic()
                pending += await send_batches(producer, commands_topic, batches)
                sent += due
                on_tick(due)
            if len(pending) > 2000:
                await asyncio.gather(*[f for f in pending if f.done()])
                pending = [f for f in pending if not f.done()]
            await asyncio.sleep(TICK_S)
        cpu = meter.since(mark, sent) if meter is not None and mark is not None else None
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - t0
        await collector.wait(lambda seen: not sent_at, drain_s)
    finally:
        gc.unfreeze()
        await producer.stop()
        await collector.stop()
    by_type = collector.seen.by_type
    result = LoadResult(
        offered_per_s=rate_per_s,
        seconds=elapsed,
        sent=sent,
        answered=collector.seen.total - answered_before,
        missing=len(sent_at),
        rejected=by_type.get("command.rejected", 0),
        latencies_ms=[lat for _, lat in arrivals],
        cpu=cpu,
    )
    result.windows = _windows(arrivals, t0, window_s)
    return result


def _windows(arrivals: list[tuple[float, float]], t0: float, window_s: float) -> list[Window]:
    buckets: dict[int, list[float]] = {}
    for at, latency in arrivals:
        buckets.setdefault(int((at - t0) // window_s), []).append(latency)
    return [
        Window(
            t=(k + 1) * window_s,
            events_per_s=len(v) / window_s,
            p50_ms=percentile(v, 50),
            p99_ms=percentile(v, 99),
        )
        for k, v in sorted(buckets.items())
    ]
