"""A fresh worker process at one fixed offered load, on the services of `devenv.services`: what
`bench.ab` and `bench.postdrain` share."""

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench.commands import CommandStream
from bench.cpu_budget import CpuMeter
from bench.kafkaio import make_topics
from bench.offered import LoadResult, offer
from bench.procs import WorkerProc
from bench.runner import quiet_logging
from devenv.services import Services, open_services
from worker import event_loop
from worker.settings import Settings


def base_settings(services: Services) -> Settings:
    """The workers' settings on `services`, but their topics."""
    return Settings.from_env(
        kafka_bootstrap_servers=services.bootstrap_servers,
        redis_url=services.redis_url,
        http_port=0,
        log_format="json",
        log_level="info",
    )


def services_meter(services: Services) -> CpuMeter:
    """This process, the broker and Redis (those started here: with a pid)."""
    return CpuMeter(
        {
            "benchmark": os.getpid(),
            "broker": services.kafka.pid if services.kafka else None,
            "Redis": services.redis.pid if services.redis else None,
        }
    )


async def offer_to_worker(
    s: Settings,
    log: Path,
    stream: CommandStream,
    *,
    rate: float,
    seconds: float,
    partitions: int,
    meter: CpuMeter,
    extra_env: dict[str, str] | None = None,
) -> LoadResult:
    """A worker with `s` on fresh topics of `partitions`, once it has its partitions and a
    second more, at `rate` commands/s of `stream` for `seconds` (the first two left out)."""
    await make_topics(s, partitions)
    proc = WorkerProc(s, log, extra_env=extra_env or {})
    async with proc:
        await proc.wait_for_log(b'"partitions assigned"')
        await asyncio.sleep(1.0)
        return await offer(
            s.kafka, s.commands_topic, s.events_topic, stream,
            rate_per_s=rate, seconds=seconds, warmup_s=2.0,
            meter=meter.with_process("worker", proc.pid),
        )  # fmt: skip


def serve(run: Callable[[Services], Coroutine[Any, Any, None]]) -> None:
    """`run` on the worker's event loop, with the services started (or found)."""
    quiet_logging()
    with open_services() as services:
        print(f"Kafka {services.bootstrap_servers}, Redis {services.redis_url}", flush=True)
        event_loop.run(run(services), Settings().event_loop)
