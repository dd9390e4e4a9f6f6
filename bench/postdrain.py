"""`python -m bench.postdrain`: latency at a fixed load on fresh services, then after a large
drain, each time on a fresh worker process, with the state of Redis and the broker next to it.

Issue 27, item 2: the benchmark measures latency after its throughput drains, and a worker
measured there has shown 2-4x the p99 of one measured on a fresh setup. The steps isolate the
cause: the same topic after the drain, a fresh topic on the same broker and Redis, the same
after FLUSHALL, so that what changes between two steps is one thing.
"""

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from bench.commands import CREATE_HEAVY, CommandStream
from bench.cpu_budget import ROLES, CpuMeter
from bench.fixed_load import base_settings, offer_to_worker, serve, services_meter
from bench.kafkaio import LagWatch, make_topics, preload
from bench.procs import WorkerProc
from bench.runner import _settings
from devenv.services import Services
from worker.settings import Settings


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def _redis_state(client: aioredis.Redis) -> str:
    info = await client.info()
    keys = sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db"))
    expires = sum(v.get("expires", 0) for k, v in info.items() if k.startswith("db"))
    return (
        f"keys {keys:,}, with TTL {expires:,}, used {info['used_memory'] / 2**20:.0f} MiB, "
        f"rss {info['used_memory_rss'] / 2**20:.0f} MiB, expired_keys {info['expired_keys']:,}, "
        f"expired_stale_perc {info.get('expired_stale_perc')}, "
        f"expire_cycle_cpu_ms {info.get('expire_cycle_cpu_milliseconds')}"
    )


async def _measure(
    label: str,
    s: Settings,
    rate: float,
    seconds: float,
    seed: int,
    logs: Path,
    meter: CpuMeter,
    client: aioredis.Redis,
    services: Services,
) -> str:
    res = await offer_to_worker(
        s,
        logs / f"worker-{label}.log",
        CommandStream(seed, mix=CREATE_HEAVY, tag=label[:3]),
        rate=rate,
        seconds=seconds,
        partitions=12,
        meter=meter,
    )
    cpu = res.cpu
    cores = ""
    if cpu is not None:
        cores = ", ".join(f"{r} {cpu.us_per_item(r):.0f}" for r in ROLES if r in cpu.cpu_s)
    kafka_dir = ""
    data_dir = getattr(services.kafka, "data_dir", None)
    if data_dir is not None:
        kafka_dir = f"; broker data {_dir_bytes(Path(data_dir)) / 2**20:.0f} MiB"
    line = (
        f"{label}: p50 {res.percentile(50):.1f} p95 {res.percentile(95):.1f} "
        f"p99 {res.percentile(99):.1f} max {max(res.latencies_ms):.1f} ms, "
        f"{res.missing} unanswered; µs/command: {cores}; "
        f"Redis: {await _redis_state(client)}{kafka_dir}"
    )
    print(line, flush=True)
    return line


async def run(args: argparse.Namespace, services: Services) -> None:
    base = base_settings(services)
    client = aioredis.Redis.from_url(base.redis_url, decode_responses=False)
    logs = Path(tempfile.mkdtemp(prefix="postdrain-"))
    print(f"worker logs: {logs}", flush=True)
    meter = services_meter(services)

    async def measure(label: str, s: Settings, seed: int) -> None:
        await _measure(label, s, args.rate, args.seconds, seed, logs, meter, client, services)

    for k in range(args.repeat):
        await measure(f"fresh{k}", _settings(base, f"pd-fresh{k}", f"pf{k}"), 10 + k)
    big = _settings(base, "pd-big", "pb")
    await make_topics(big, 12)
    stream = CommandStream(args.seed, mix=CREATE_HEAVY, tag="d")
    t0 = time.monotonic()
    await preload(big.kafka, big.commands_topic, stream.take(args.drain))
    watch = LagWatch(big.kafka, big.commands_topic, big.group_id)
    await watch.start()
    try:
        async with WorkerProc(big, logs / "worker-drain.log"):
            await watch.until(args.drain, timeout_s=1800)
    finally:
        await watch.stop()
    print(f"drained {args.drain:,} in {time.monotonic() - t0:.0f} s", flush=True)
    print("after drain: " + await _redis_state(client), flush=True)
    for k in range(args.repeat):
        await measure(f"same-topic{k}", big, 20 + k)
        await measure(f"new-topic{k}", _settings(base, f"pd-new{k}", f"pn{k}"), 30 + k)
    if args.flush:
        await client.flushall()
        print("FLUSHALL: " + await _redis_state(client), flush=True)
        for k in range(args.repeat):
            await measure(f"flushed{k}", _settings(base, f"pd-flushed{k}", f"pl{k}"), 40 + k)
    await client.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.postdrain")
    p.add_argument("--rate", type=float, default=3000.0, help="commands/s offered")
    p.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    p.add_argument("--drain", type=int, default=300_000, help="commands drained in between")
    p.add_argument("--repeat", type=int, default=2, help="measurements per step")
    p.add_argument("--seed", type=int, default=20261207)
    p.add_argument("--no-flush", dest="flush", action="store_false")
    args = p.parse_args(argv)
    serve(lambda services: run(args, services))


if __name__ == "__main__":
    main()
