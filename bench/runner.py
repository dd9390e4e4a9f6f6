"""`python -m bench`: the worker against its ceiling and floor, and its targets.

Phases, all on the same Kafka and Redis (devenv.services.open_services: started here, or
KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set), each on topics, groups and key prefixes of its
own:

1. Redis memory per live session through the real worker, then candidate layouts.
2. Preload the create-heavy mix; then `--rounds` times: ceiling (raw pass-through), floor
   (batch of one), and the worker as a subprocess from start to lag 0, its maximum throughput.
   Measured one after the other and more than once, so that a slow minute of a shared machine
   weighs on all three and does not decide a ratio; the targets take the median ratio.
3. The last round's worker process at 25% and 50% of the median maximum: end-to-end latency,
   each load followed by the pass-through (ceiling) at the same offered load.
4. The same worker process soaked at a steady load until it has handled `--commands` in all (or
   `--soak-s` ends): RSS after that many commands and its flatness over the soak.
5. An expiry burst: `--expiring` sessions whose TTL runs out in the same millisecond.
6. With --profile: py-spy on a fresh worker over the create-heavy mix.

Writes <out>/<YYYY-MM-DD>.md and .png (and -profile.txt with --profile).
"""

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bench import baselines, memory
from bench.clocked import FREEZE_ENV
from bench.commands import CREATE_HEAVY, CREATES_ONLY, CommandStream
from bench.cpu_budget import CpuMeter, Mark
from bench.kafkaio import (
    EventCollector,
    LagSample,
    LagWatch,
    make_topics,
    preload,
    steady_rate,
)
from bench.offered import LoadResult, offer
from bench.procs import WorkerProc, scrape
from bench.profiling import Recorder, micro_costs, py_spy, summarise
from bench.report import (
    ExpiryResult,
    Results,
    ThroughputRound,
    markdown,
    plot,
)
from bench.sizes import Size, add_size_flags, check_positive, chosen
from devenv.ports import free_port
from devenv.services import Services, open_services
from session_client.connection import kafka_client_params
from worker import event_loop
from worker.clock import now_ms
from worker.redis_client import redis_auth_params
from worker.settings import Settings

RESULTS_DIR = Path("bench/results")


@dataclass(frozen=True)
class Config:
    commands: int = 1_000_000  # the worker handles this many in all before RSS is judged
    throughput_commands: int = 200_000  # preloaded for ceiling / worker max throughput
    rounds: int = 3  # of ceiling, floor and worker; the targets take the median ratio
    floor_s: float = 20.0
    latency_s: float = 30.0  # per offered load
    loads: tuple[float, ...] = (0.25, 0.5)
    soak_s: float = 600.0
    soak_max_share: float = 0.8  # the soak never offers more than this share of the max
    soak_ttl_s: float = 300.0  # soak sessions expire, so the sweeper works during the soak
    expiring: int = 100_000
    expiry_ttl_s: float = 60.0  # the contract's minimum expirationSeconds
    expiry_wait_s: float = 0.0  # worker start to expiresAt; 0: as long as the burst needs
    memory_sessions: int = 50_000  # > 128 per bucket: the bucket ZSETs are skiplists, as at scale
    reference_sessions: int = 10_000
    layout_sessions: int = 40_000
    partitions: int = 12
    seed: int = 20261124
    profile: bool = False
    profile_commands: int = 30_000
    quick: bool = False
    out: Path = RESULTS_DIR

    @classmethod
    def quick_sizes(cls) -> dict[str, object]:
        return {
            "commands": 40_000,
            "throughput_commands": 15_000,
            "rounds": 1,
            "floor_s": 5.0,
            "latency_s": 10.0,
            "soak_s": 20.0,
            "soak_ttl_s": 60.0,
            "expiring": 5_000,
            "memory_sessions": 3_000,
            "reference_sessions": 1_000,
            "layout_sessions": 3_000,
            "profile_commands": 10_000,
        }


def parse_args(argv: Sequence[str] | None) -> Config:
    d = Config()
    quick = Config.quick_sizes()
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the worker against a raw pass-through (ceiling) and a "
        "one-record-at-a-time build of its own pieces (floor); writes <out>/<date>.md and .png.",
    )
    sizes: tuple[Size, ...] = (
        ("commands", int, "commands the worker handles in all; RSS is judged after them"),
        ("throughput_commands", int, "preloaded for the max-throughput runs"),
        ("rounds", int, "of ceiling, floor and worker; the targets take the median ratio"),
        ("soak_s", float, "soak length, seconds"),
        ("latency_s", float, "seconds per offered load"),
        ("floor_s", float, "floor sample length, seconds"),
        ("expiring", int, "sessions expiring in the same second"),
        ("expiry_ttl_s", float, "their expirationSeconds (>= 60, the contract's minimum)"),
        ("expiry_wait_s", float, "worker start to their expiresAt (0: what the burst needs)"),
        ("memory_sessions", int, "sessions for the Redis memory measure"),
        ("reference_sessions", int, "the same with the tests/factories payload"),
        ("layout_sessions", int, "sessions per candidate Redis layout"),
        ("partitions", int, "of every topic"),
        ("seed", int, "of the command streams"),
        ("profile_commands", int, "commands the profiled worker handles"),
    )
    add_size_flags(p, sizes, d, quick)
    p.add_argument("--profile", action="store_true", help="also profile a fresh worker with py-spy")
    p.add_argument("--out", type=Path, help=f"results folder (default {RESULTS_DIR})")
    args = p.parse_args(argv)
    cfg = Config(**chosen(args, Config, quick))
    check_positive(p, sizes, cfg, except_=("seed", "expiry_wait_s"))
    if cfg.expiry_ttl_s < 60:
        p.error("--expiry-ttl-s must be at least 60 (the contract's minimum expirationSeconds)")
    return cfg


class Display:
    """One progress bar per phase on a terminal; plain lines otherwise."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._progress: Progress | None = None

    def __enter__(self) -> "Display":
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description:<44}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextlib.contextmanager
    def phase(self, description: str, total: float | None) -> Iterator[Callable[[float], None]]:
        started = time.monotonic()
        if self._progress is None:
            self.console.print(f"{description} ...", highlight=False)
            yield lambda n: None
        else:
            task = self._progress.add_task(description, total=total)
            yield lambda n: self._progress.advance(task, n) if self._progress else None
            self._progress.update(task, completed=total)
        if self._progress is None:
            self.console.print(f"  done in {time.monotonic() - started:.1f} s", highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)


def quiet_logging() -> None:
    """The in-process workers (memory phase) must not write a line per command here."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
    # Retried by the clients themselves (a new topic's leader not known yet): noise here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _settings(base: Settings, name: str, prefix: str) -> Settings:
    return base.replace(
        commands_topic=f"{name}.commands",
        events_topic=f"{name}.events",
        dead_letter_topic=f"{name}.dlq",
        group_id=f"{name}-group",
        key_prefix=prefix,
    )


async def _watch_progress(watch: LagWatch, advance: Callable[[float], None]) -> None:
    last = 0
    while True:
        if watch.samples:
            now = watch.samples[-1].committed
            if now > last:
                advance(now - last)
                last = now
        await asyncio.sleep(0.25)


def new_results(cfg: Config) -> Results:
    stamp = datetime.now(UTC)
    return Results(
        date=f"{stamp:%Y-%m-%d}",
        started_utc=f"{stamp:%Y-%m-%d %H:%M}",
        wall_s=0.0,
        quick=cfg.quick,
        config={
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()
        },
        services="not started",
    )


async def run(cfg: Config, services: Services, ui: Display, results: Results) -> Results:
    """Fills `results` phase by phase, so that a failed run keeps what it measured."""
    started = time.monotonic()
    run_id = f"bench{datetime.now(UTC):%H%M%S}"
    results.services = (
        f"{services.source} (Kafka {services.bootstrap_servers}, Redis {services.redis_url})"
    )
    base = Settings.from_env(  # the environment's security settings, if any
        kafka_bootstrap_servers=services.bootstrap_servers,
        redis_url=services.redis_url,
        http_port=0,
        log_format="json",
        log_level="info",
    )
    # The benchmark measures one Redis server (memory per session, keys): not a cluster.
    client = aioredis.Redis.from_url(
        base.redis_url, decode_responses=False, **redis_auth_params(base)
    )
    logs = Path(tempfile.mkdtemp(prefix="worker-bench-"))
    meter = CpuMeter(
        {
            "benchmark": os.getpid(),
            "broker": services.kafka.pid if services.kafka else None,
            "Redis": services.redis.pid if services.redis else None,
        }
    )
    try:
        await _memory_phase(cfg, base, client, run_id, results, ui)
        await _main_phases(cfg, base, client, run_id, results, ui, logs, meter)
        await _expiry_phase(cfg, base, run_id, results, ui, logs)
        if cfg.profile:
            await _profile_phase(cfg, base, run_id, results, ui, logs)
        with ui.phase("per-record CPU of the worker's pieces", None):
            results.pieces = micro_costs()
        if services.source == "external":
            with ui.phase("removing the benchmark's keys", None):
                # (Each round's floor and earlier workers removed theirs already.)
                for prefix in ("bm", "br", "bw", "be", "bp"):
                    await memory.delete_under(client, f"{prefix}{run_id[5:]}")
    finally:
        await client.aclose()
        results.wall_s = time.monotonic() - started
    results.notes.append(f"worker logs of this run: {logs}")
    return results


async def _memory_phase(
    cfg: Config,
    base: Settings,
    client: aioredis.Redis,
    run_id: str,
    results: Results,
    ui: Display,
) -> None:
    tag = run_id[5:]
    for reference, count, prefix in (
        (False, cfg.memory_sessions, f"bm{tag}"),
        (True, cfg.reference_sessions, f"br{tag}"),
    ):
        label = "reference" if reference else "realistic"
        with ui.phase(f"Redis memory: {count:,} {label} sessions", None):
            s = _settings(base, f"{run_id}-mem-{label}", prefix)
            m = await memory.through_worker(s, client, count, reference=reference, seed=cfg.seed)
            results.memory.append(m)
            await memory.delete_under(client, prefix)
        ui.say(f"  {m.label}: {m.bytes_per_session:,.0f} B/session, {m.keys_per_session:.2f} keys")
    with ui.phase(f"Redis layouts: {cfg.layout_sessions:,} sessions each", None):
        results.layouts = await memory.layouts(client, f"bl{tag}", cfg.layout_sessions, cfg.seed)


async def _main_phases(
    cfg: Config,
    base: Settings,
    client: aioredis.Redis,
    run_id: str,
    results: Results,
    ui: Display,
    logs: Path,
    meter: CpuMeter,
) -> None:
    tag = run_id[5:]
    main = _settings(base, f"{run_id}-main", f"bw{tag}")
    await make_topics(main, cfg.partitions)
    stream = CommandStream(cfg.seed, mix=CREATE_HEAVY, tag="t")
    n = cfg.throughput_commands
    with ui.phase(f"preloading {n:,} commands (create-heavy)", n) as advance:
        await preload(main.kafka, main.commands_topic, stream.take(n), advance)

    # Every round but the last runs a worker of its own; the last one's goes on to the latency
    # and soak phases, so that its RSS is judged after all the commands it handled.
    for k in range(1, cfg.rounds):
        ceiling, floor = await _baselines(cfg, main, client, run_id, k, ui, meter)
        worker = await _round_worker(cfg, main, client, run_id, k, ui, logs, meter)
        results.rounds.append(ThroughputRound(ceiling, floor, worker))
    ceiling, floor = await _baselines(cfg, main, client, run_id, cfg.rounds, ui, meter)

    watch = LagWatch(main.kafka, main.commands_topic, main.group_id)
    await watch.start()
    port = free_port()
    proc = WorkerProc(main.replace(http_host="127.0.0.1", http_port=port), logs / "worker.log")
    try:
        async with proc:
            results.worker_started = proc.started_at
            with_worker = meter.with_process("worker", proc.pid)
            label = _round_label(cfg, cfg.rounds)
            worker = await worker_max(proc, watch, port, n, label, ui, with_worker)
            results.rounds.append(ThroughputRound(ceiling, floor, worker))
            assert results.worker is not None  # noqa: S101 - a round was just added
            rate = results.worker.rate
            if cfg.rounds > 1:
                ui.say(f"  median of {cfg.rounds} rounds: worker {rate:,.0f} commands/s")

            live = CommandStream(cfg.seed + 1, mix=CREATE_HEAVY, tag="l")
            for share in cfg.loads:
                offered = max(1.0, share * rate)
                total = int(offered * cfg.latency_s)
                with ui.phase(f"latency at {share:.0%} of max ({offered:,.0f}/s)", total) as adv:
                    res = await offer(
                        main.kafka, main.commands_topic, main.events_topic,
                        live, rate_per_s=offered, seconds=cfg.latency_s, warmup_s=1.0,
                        on_tick=adv, meter=with_worker,
                    )  # fmt: skip
                proc.check()
                results.loads.append((share, res))
                ui.say(
                    f"  p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms, "
                    f"{res.missing} unanswered"
                )
                # Right after the worker at the same load, so both see the same minute of the
                # machine. The worker, idle meanwhile, is still measured: "all" is the whole
                # machine.
                results.ceiling_loads.append(
                    (
                        share,
                        await _ceiling_latency(cfg, base, run_id, share, offered, ui, with_worker),
                    )
                )

            handled = await watch.committed()
            # 1% past the target: the offered load rounds down, and a run 2 commands short
            # of the target would not count.
            remaining = max(0, int(cfg.commands * 1.01) - handled)
            soak_rate = min(max(remaining / cfg.soak_s, 0.25 * rate), cfg.soak_max_share * rate)
            soak_stream = CommandStream(
                cfg.seed + 2, mix=CREATE_HEAVY, expiration_s=cfg.soak_ttl_s, tag="k"
            )
            total = int(soak_rate * cfg.soak_s)
            with ui.phase(f"soak {cfg.soak_s:g} s at {soak_rate:,.0f}/s", total) as adv:
                soak_start = time.monotonic()
                results.soak = await offer(
                    main.kafka, main.commands_topic, main.events_topic,
                    soak_stream, rate_per_s=soak_rate, seconds=cfg.soak_s, window_s=10.0,
                    warmup_s=1.0, on_tick=adv, meter=with_worker,
                )  # fmt: skip
                results.soak_window = (soak_start, time.monotonic())
            proc.check()
            await watch.until(await _end_offsets_total(main), timeout_s=60)
            results.commands_total = await watch.committed()
            results.rss_end = proc.rss[-1].rss if proc.rss else 0
            if results.commands_total < cfg.commands:
                results.notes.append(
                    f"the soak was capped at {cfg.soak_max_share:.0%} of the max throughput, so "
                    f"the worker handled {results.commands_total:,} commands, not "
                    f"{cfg.commands:,}"
                )
    finally:
        results.rss = list(proc.rss)
        await watch.stop()


def _round_label(cfg: Config, k: int) -> str:
    return f"round {k}/{cfg.rounds}: " if cfg.rounds > 1 else ""


async def _baselines(
    cfg: Config,
    main: Settings,
    client: aioredis.Redis,
    run_id: str,
    k: int,
    ui: Display,
    meter: CpuMeter,
) -> tuple[baselines.RunResult, baselines.RunResult]:
    """Round `k`'s ceiling and floor over the preloaded commands of `main`; the floor's keys
    are removed after it."""
    tag, label, n = run_id[5:], _round_label(cfg, k), cfg.throughput_commands
    out = main.replace(events_topic=f"{run_id}-ceiling{k}.out", dead_letter_topic=f"{run_id}-c.dlq")
    floor_s = main.replace(
        events_topic=f"{run_id}-floor{k}.events",
        dead_letter_topic=f"{run_id}-floor.dlq",
        group_id=f"{run_id}-floor{k}",
        key_prefix=f"bf{tag}r{k}",
    )
    await make_topics(out, cfg.partitions)
    await make_topics(floor_s, cfg.partitions)
    with ui.phase(f"{label}ceiling: raw pass-through", n):
        # From its first commit, as the worker's: the CPU ratio compares the two per record
        # handled, not their start-up (a group join, a first fetch) spread over the records.
        first: list[tuple[Mark, int]] = []

        def mark_first_commit(sample: LagSample) -> None:
            if not first and sample.committed > 0:
                first.append((meter.mark(), sample.committed))

        ceiling = await baselines.ceiling(
            main.replace(group_id=f"{run_id}-ceiling{k}"), out.events_topic, n, 600,
            on_sample=mark_first_commit,
        )  # fmt: skip
        if first:
            ceiling.cpu = meter.since(first[0][0], ceiling.records - first[0][1])
    ui.say(f"  ceiling {ceiling.rate:,.0f} records/s")
    with ui.phase(f"{label}floor: one record at a time, {cfg.floor_s:g} s", None):
        mark = meter.mark()
        floor = await baselines.floor(floor_s, cfg.floor_s)
        floor.cpu = meter.since(mark, floor.records)
    ui.say(f"  floor {floor.rate:,.1f} records/s")
    await memory.delete_under(client, floor_s.key_prefix)
    return ceiling, floor


async def _round_worker(
    cfg: Config,
    main: Settings,
    client: aioredis.Redis,
    run_id: str,
    k: int,
    ui: Display,
    logs: Path,
    meter: CpuMeter,
) -> baselines.RunResult:
    """A worker of its own (group, key prefix, events topic) from start to lag 0 over the
    preloaded commands; stopped, and its keys removed, after."""
    s = main.replace(
        events_topic=f"{run_id}-worker{k}.events",
        group_id=f"{run_id}-worker{k}",
        key_prefix=f"bw{run_id[5:]}r{k}",
    )
    await make_topics(s, cfg.partitions)
    watch = LagWatch(s.kafka, s.commands_topic, s.group_id)
    await watch.start()
    port = free_port()
    try:
        async with WorkerProc(
            s.replace(http_host="127.0.0.1", http_port=port), logs / f"worker-round{k}.log"
        ) as proc:
            run = await worker_max(
                proc, watch, port, cfg.throughput_commands, _round_label(cfg, k), ui,
                meter.with_process("worker", proc.pid),
            )  # fmt: skip
    finally:
        await watch.stop()
    await memory.delete_under(client, s.key_prefix)
    return run


async def worker_max(
    proc: WorkerProc,
    watch: LagWatch,
    port: int,
    n: int,
    label: str,
    ui: Display,
    meter: CpuMeter,
) -> baselines.RunResult:
    """The started worker `proc` from start to lag 0 over `n` preloaded commands. `meter`
    includes the worker's process; its CPU counts from the first commit, like the steady rate,
    so that the interpreter's start-up is not spread over the commands."""
    metrics_before = await scrape_metrics(port)
    with ui.phase(f"{label}worker: preloaded commands to lag 0", n) as advance:
        shown = asyncio.create_task(_watch_progress(watch, advance))
        first: list[tuple[Mark, int]] = []  # (mark, committed) at the first commit seen

        def mark_first_commit(sample: LagSample) -> None:
            if not first and sample.committed > 0:
                first.append((meter.mark(), sample.committed))

        try:
            done = await watch.until(n, timeout_s=1800, on_sample=mark_first_commit)
        finally:
            shown.cancel()
    proc.check()
    if not done:
        raise RuntimeError("the worker did not reach lag 0 within 30 min")
    rate, window = steady_rate(watch.samples)
    wall = watch.samples[-1].t - proc.started_at
    metrics_after = await scrape_metrics(port)

    def delta(name: str) -> float:
        return metrics_after.get(name, math.nan) - metrics_before.get(name, 0.0)

    ui.say(f"  worker {rate:,.0f} commands/s (lag 0 after {wall:.1f} s from start)")
    return baselines.RunResult(
        "worker", n, rate, window, wall, list(watch.samples),
        batches=delta("session_worker_batch_records_count"),
        batch_seconds=delta("session_worker_batch_duration_seconds_sum"),
        cpu=meter.since(first[0][0], n - first[0][1]),
    )  # fmt: skip


async def _ceiling_latency(
    cfg: Config,
    base: Settings,
    run_id: str,
    share: float,
    offered: float,
    ui: Display,
    meter: CpuMeter,
) -> LoadResult:
    """The raw pass-through (run in this process) at the same offered load: the latency that
    the broker, the clients and this machine add whatever the worker does."""
    s = _settings(base, f"{run_id}-latc{round(share * 100)}", "unused")
    await make_topics(s, cfg.partitions)
    stop = asyncio.Event()
    task = asyncio.create_task(baselines.pass_through(s, s.events_topic, stop))
    total = int(offered * cfg.latency_s)
    stream = CommandStream(cfg.seed + 5, mix=CREATE_HEAVY, tag="c")
    try:
        with ui.phase(f"latency of the ceiling at {offered:,.0f}/s", total) as adv:
            res = await offer(
                s.kafka, s.commands_topic, s.events_topic, stream,
                rate_per_s=offered, seconds=cfg.latency_s, warmup_s=2.0, on_tick=adv,
                meter=meter,
            )  # fmt: skip
    finally:
        stop.set()
        await task
    ui.say(f"  p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms")
    return res


async def scrape_metrics(port: int) -> dict[str, float]:
    """The worker's metrics now; empty if its HTTP server does not answer (yet)."""
    for _ in range(50):
        try:
            return await asyncio.to_thread(scrape, port)
        except OSError:
            await asyncio.sleep(0.1)
    return {}


async def _end_offsets_total(settings: Settings) -> int:
    from aiokafka import AIOKafkaConsumer

    from bench.kafkaio import topic_partitions

    consumer = AIOKafkaConsumer(**kafka_client_params(settings.kafka))
    await consumer.start()
    try:
        tps = await topic_partitions(settings.kafka, settings.commands_topic)
        ends = await consumer.end_offsets(tps)
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def _expiry_phase(
    cfg: Config, base: Settings, run_id: str, results: Results, ui: Display, logs: Path
) -> None:
    tag = run_id[5:]
    s = _settings(base, f"{run_id}-exp", f"be{tag}")
    await make_topics(s, cfg.partitions)
    n = cfg.expiring
    stream = CommandStream(cfg.seed + 3, mix=CREATES_ONLY, expiration_s=cfg.expiry_ttl_s, tag="e")
    with ui.phase(f"expiry: preloading {n:,} creates (TTL {cfg.expiry_ttl_s:g} s)", n) as adv:
        await preload(s.kafka, s.commands_topic, stream.take(n), adv)
    collector = EventCollector(s.kafka, s.events_topic, from_beginning=True, keep_arrivals=False)
    await collector.start()
    # The creates must all be processed before they expire, and waiting a whole TTL is not what
    # is measured: the held clock is set so that expiresAt is `wait_s` after the worker starts.
    max_rate = results.worker.rate if results.worker and results.worker.rate > 0 else 1000.0
    expected_burst_s = n / max_rate * 1.5 + 5
    wait_s = max(cfg.expiry_wait_s, expected_burst_s)
    lead_s = wait_s - cfg.expiry_ttl_s  # negative: the clock is held in the past
    freeze_at = now_ms() + int(lead_s * 1000)
    expires_at = (freeze_at + int(cfg.expiry_ttl_s * 1000)) / 1000
    note = ""
    try:
        proc = WorkerProc(
            s,
            logs / "worker-expiry.log",
            module=("bench.clocked",),
            extra_env={FREEZE_ENV: str(freeze_at)},
        )
        async with proc:
            t0 = time.monotonic()
            with ui.phase("expiry: worker processing the burst", n) as adv:
                last = 0

                def created(seen: object) -> bool:
                    nonlocal last
                    by_type = collector.seen.by_type
                    count = by_type.get("session.created", 0) + by_type.get("command.rejected", 0)
                    adv(count - last)
                    last = count
                    return count >= n

                ok = await collector.wait(created, timeout_s=max(120.0, expected_burst_s * 3))
            proc.check()
            burst_s = time.monotonic() - t0
            rejected = collector.seen.by_type.get("command.rejected", 0)
            if not ok:
                note = "the burst was not processed in time"
            elif rejected:
                note = f"{rejected:,} creates were rejected (see the worker log)"
            elif time.time() > expires_at - 0.5:
                note = "the burst took longer than the TTL: sessions expired before all existed"
            proc.signal(signal.SIGUSR1)  # the clock runs again
            wait_s = max(0.0, expires_at - time.time())
            waiting = f"expiry: waiting {wait_s:.0f} s for expiresAt, then announcements"
            with ui.phase(waiting, n) as adv:
                seen_before = 0

                def expired(seen: object) -> bool:
                    nonlocal seen_before
                    count = len(collector.seen.expired_at)
                    adv(count - seen_before)
                    seen_before = count
                    return count >= n

                await collector.wait(expired, timeout_s=wait_s + 120)
            proc.check()
    finally:
        await collector.stop()
    after = sorted(t - expires_at for t in collector.seen.expired_at)
    results.expiry = ExpiryResult(
        sessions=n,
        ttl_s=cfg.expiry_ttl_s,
        burst_s=burst_s,
        announced=len(after),
        last_after_s=after[-1] if after else float("nan"),
        p50_after_s=after[len(after) // 2] if after else float("nan"),
        valid=not note,
        note=note,
        arrivals_after_s=after,
    )
    ui.say(f"  {len(after):,} announced, last {results.expiry.last_after_s:.2f} s after expiresAt")


async def _profile_phase(
    cfg: Config, base: Settings, run_id: str, results: Results, ui: Display, logs: Path
) -> None:
    if py_spy() is None:
        results.notes.append("--profile: py-spy is not installed, no profile taken")
        return
    tag = run_id[5:]
    s = _settings(base, f"{run_id}-prof", f"bp{tag}")
    await make_topics(s, cfg.partitions)
    n = cfg.profile_commands
    stream = CommandStream(cfg.seed + 4, mix=CREATE_HEAVY, tag="p")
    commands = stream.take(n)
    watch = LagWatch(s.kafka, s.commands_topic, s.group_id)
    await watch.start()
    raw = cfg.out / f"{results.date}-profile.raw.txt"
    cfg.out.mkdir(parents=True, exist_ok=True)
    log = logs / "worker-profile.log"
    try:
        async with WorkerProc(s, log) as proc:
            # Started and in its group before py-spy attaches: imports and the join are not
            # what is profiled. The commands are sent after that, while it runs.
            for _ in range(300):
                if log.exists() and b'"partitions assigned"' in log.read_bytes():
                    break
                await asyncio.sleep(0.1)
            proc.check()
            recorder = Recorder(proc.pid, raw)
            with ui.phase(f"profile: {n:,} commands through the worker under py-spy", n) as adv:
                shown = asyncio.create_task(_watch_progress(watch, adv))
                try:
                    await preload(s.kafka, s.commands_topic, commands)
                    await watch.until(n, timeout_s=900)
                finally:
                    shown.cancel()
            await recorder.stop()
    finally:
        await watch.stop()
    if raw.exists():
        results.profile = summarise(raw.read_text(encoding="utf-8"))


def write(results: Results, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{results.date}.png"
    drawn = plot(results, png)
    if not drawn:
        results.notes.append("no plot: matplotlib is not installed (pip install matplotlib)")
    md = out / f"{results.date}.md"
    md.write_text(markdown(results, png.name if drawn else None), encoding="utf-8")
    if results.profile is not None:
        prof = results.profile
        lines = [f"samples: {prof.samples}", "", "own time:"]
        lines += [f"  {share * 100:5.1f}%  {name}" for name, share in prof.own]
        lines += ["", "total time:"]
        lines += [f"  {share * 100:5.1f}%  {name}" for name, share in prof.total]
        lines += ["", "areas (own time):"]
        lines += [f"  {share * 100:5.1f}%  {name}" for name, share in prof.areas]
        (out / f"{results.date}-profile.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark; 0 when it ran (whether or not the targets are met), 1 if it failed."""
    cfg = parse_args(argv)
    quiet_logging()
    results = new_results(cfg)
    code = 0
    with Display() as ui:
        try:
            ui.say("starting (or finding) Kafka and Redis ...")
            with open_services() as services:
                ui.say(f"Kafka {services.bootstrap_servers}, Redis {services.redis_url}")
                # On the loop the worker runs on (its default), so the in-process ceiling and
                # floor, and the load generator, run as the worker does.
                event_loop.run(run(cfg, services, ui, results), Settings().event_loop)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # noqa: BLE001 - reported, and what was measured is kept
            ui.console.print_exception()
            ui.say(f"benchmark failed: {exc}")
            results.notes.insert(0, f"THE RUN FAILED and is incomplete: {exc!r}")
            code = 1
    path = write(results, cfg.out)
    Console().print(f"results: {path}", highlight=False)
    return code
