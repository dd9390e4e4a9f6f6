"""What the benchmarks of worker variants in interleaved rounds share (`bench.replicas`,
`bench.tracing`).

Each round measures every variant (a setting, a commit, ...) in alternating order, each with a
worker process of its own on fresh topics and a flushed database: first its max throughput over
the same preloaded creates, then, with a fresh worker, its end-to-end latency at offered loads.
This module holds the pieces that do not depend on what the variants are: the command line's
scaffolding, the round order, how busy the machine was, the worker phases, the median/ratio
table and the report's common parts, and `main`'s frame (Kafka, the report written even when
the run failed)."""

import argparse
import contextlib
import dataclasses
import math
import os
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import redis.asyncio as aioredis
from rich.console import Console

from bench.baselines import RunResult
from bench.commands import CREATES_ONLY, CommandStream, Encoded
from bench.cpu_budget import CpuMeter, CpuUse, Mark
from bench.kafkaio import LagWatch, delete_topics, make_topics, preload
from bench.offered import LoadResult, offer
from bench.procs import WorkerProc
from bench.runner import RESULTS_DIR, Display, scrape_metrics, worker_max
from bench.sizes import Size, add_size_flags, check_positive, chosen
from devenv.ports import free_port
from devenv.services import open_services
from worker import event_loop
from worker.settings import Settings

# -- the command line --------------------------------------------------------------------------


class RoundsConfig(Protocol):
    """What the shared parts read of a benchmark's `Config`."""

    @property
    def rounds(self) -> int: ...
    @property
    def commands(self) -> int: ...  # creates preloaded per cell
    @property
    def latency_s(self) -> float: ...
    @property
    def partitions(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def quick(self) -> bool: ...
    @property
    def out(self) -> Path: ...


ConfigT = TypeVar("ConfigT", bound=RoundsConfig)


def parser(
    prog: str,
    description: str,
    sizes: Sequence[Size],
    defaults: object,
    quick: dict[str, object],
) -> argparse.ArgumentParser:
    """The parser with `--quick` and a flag for each of `sizes`; add the benchmark's own."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_size_flags(p, sizes, defaults, quick)
    return p


def parsed(
    p: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    config: type[ConfigT],
    sizes: Sequence[Size],
    quick: dict[str, object],
    *,
    except_: Sequence[str],
) -> ConfigT:
    """Adds `--out`, parses `argv` and checks that the sizes (but `except_`) are positive."""
    p.add_argument("--out", type=Path, help=f"results folder (default {RESULTS_DIR})")
    args = p.parse_args(argv)
    cfg = config(**chosen(args, config, quick))
    check_positive(p, sizes, cfg, except_=except_)
    return cfg


def alternating(names: tuple[str, ...], k: int) -> tuple[str, ...]:
    """Round `k`'s order: `names` in odd rounds, reversed in even ones, so that none is always
    the last of a round (a broker that warms up, or a neighbour that starts, would favour it)."""
    return names if k % 2 else tuple(reversed(names))


# -- how busy the machine was ------------------------------------------------------------------


@dataclass(frozen=True)
class Busy:
    """How busy the machine was over a phase: its cores kept busy on average (/proc/stat), and
    how many of those went to processes other than the benchmark's own (those its meter reads:
    the worker, Redis, this process, and the broker when started here): other work on a shared
    machine, the noise a phase ran in."""

    cores: float
    others: float


def _machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat); NaN where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class BusyMark:
    busy_s: float
    mark: Mark


def busy_mark(meter: CpuMeter) -> BusyMark:
    return BusyMark(_machine_busy_s(), meter.mark())


def busy_since(meter: CpuMeter, start: BusyMark) -> Busy:
    use = meter.since(start.mark, 0)
    if use.wall_s <= 0:
        return Busy(math.nan, math.nan)
    cores = (_machine_busy_s() - start.busy_s) / use.wall_s
    return Busy(cores, max(0.0, cores - sum(use.cpu_s.values()) / use.wall_s))


# -- results -----------------------------------------------------------------------------------


class RoundCell(Protocol):
    """One variant in one round, as the shared parts see it."""

    @property
    def round(self) -> int: ...
    @property
    def name(self) -> str: ...  # the variant
    @property
    def throughput(self) -> RunResult: ...
    @property
    def rate_note(self) -> str: ...
    def phases(self) -> list[tuple[str, Busy]]:
        """(name, how busy the machine was) of each phase: "max", then the loads'."""
        ...


CellT = TypeVar("CellT", bound=RoundCell)


@dataclass
class Results(Generic[ConfigT, CellT]):
    date: str
    started_utc: str
    config: ConfigT
    wall_s: float = 0.0
    services: str = "not started"
    redis_version: str = "?"
    cells: list[CellT] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, name: str) -> list[CellT]:
        return [c for c in self.cells if c.name == name]

    def pairs(self, a: str, b: str) -> list[tuple[CellT, CellT]]:
        """(a, b) of each round that measured both."""
        rounds: dict[int, dict[str, CellT]] = {}
        for c in self.cells:
            rounds.setdefault(c.round, {})[c.name] = c
        return [(r[a], r[b]) for _, r in sorted(rounds.items()) if a in r and b in r]


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaxRun:
    """A worker from start to lag 0 over the preloaded creates."""

    throughput: RunResult
    busy: Busy
    log: Path
    metrics: dict[str, float]  # its /metrics at lag 0, if asked for
    note: str


@dataclass(frozen=True)
class LatencyWorker:
    """A started worker that has its partitions, for offered loads."""

    settings: Settings
    label: str
    log: Path
    proc: WorkerProc
    meter: CpuMeter  # with the worker: for the load's CPU
    processes: CpuMeter  # for `busy`: the processes, each counted once
    stream: CommandStream  # the loads' commands, one after the other


@dataclass
class RoundRunner(Generic[ConfigT]):
    """Workers of the variants `names` on topics of their own, the topics removed at the end.
    A benchmark's runner says what differs between its variants (`changes`, `worker_env`)."""

    names: ClassVar[tuple[str, ...]]

    cfg: ConfigT
    base: Settings
    client: aioredis.Redis
    meter: CpuMeter
    ui: Display
    run_id: str
    logs: Path
    topics: list[str] = field(default_factory=list, init=False)

    def order(self, k: int) -> tuple[str, ...]:
        return alternating(self.names, k)

    def changes(self, name: str) -> dict[str, Any]:
        """The variant's settings that differ from `base`."""
        return {}

    def worker_env(self, name: str) -> dict[str, str]:
        """What the variant's worker gets in its environment on top of its settings."""
        return {}

    def describe(self, name: str) -> str:
        return name

    def meters(self, pid: int) -> tuple[CpuMeter, CpuMeter]:
        """(for the CPU per command, for `busy`) with the worker's process `pid`."""
        meter = self.meter.with_process("worker", pid)
        return meter, meter

    async def flushed(self) -> None:
        """Called once the database is flushed for a fresh worker."""

    async def fresh(self, name: str, variant: str) -> Settings:
        """Settings of a worker on topics of its own, over a flushed database."""
        s = self.base.replace(
            commands_topic=f"{name}.commands",
            events_topic=f"{name}.events",
            dead_letter_topic=f"{name}.dlq",
            group_id=f"{name}-group",
            **self.changes(variant),
            http_host="127.0.0.1",
            http_port=free_port(),
        )
        await self.client.flushall()
        await self.flushed()
        self.topics += [s.commands_topic, s.events_topic, s.dead_letter_topic]
        await make_topics(s, self.cfg.partitions)
        return s

    def label(self, k: int, name: str) -> str:
        return f"round {k}/{self.cfg.rounds}, {self.describe(name)}: "

    async def max_run(
        self, k: int, variant: str, commands: list[Encoded], *, metrics: bool = False
    ) -> MaxRun:
        """A fresh worker from start to lag 0 over the preloaded `commands`; with `metrics`,
        its /metrics at the end."""
        name = f"{self.run_id}-r{k}{variant}"
        s = await self.fresh(name, variant)
        label = self.label(k, variant)
        n = len(commands)
        with self.ui.phase(f"{label}preloading {n:,} creates", n) as advance:
            await preload(s.kafka, s.commands_topic, commands, advance)
        watch = LagWatch(s.kafka, s.commands_topic, s.group_id)
        log = self.logs / f"worker-{name}.log"
        scraped: dict[str, float] = {}
        await watch.start()
        try:
            async with WorkerProc(s, log, extra_env=self.worker_env(variant)) as proc:
                meter, processes = self.meters(proc.pid)
                began = busy_mark(processes)
                thr = await worker_max(proc, watch, s.http_port, n, label, self.ui, meter)
                busy = busy_since(processes, began)
                if metrics:
                    scraped = await scrape_metrics(s.http_port)
        finally:
            await watch.stop()
        note = ""
        if thr.rate <= 0:  # all committed between two samples: too few commands to tell
            until_lag0 = watch.samples[-1].t - proc.started_at
            thr = dataclasses.replace(thr, rate=n / until_lag0, window_s=until_lag0)
            note = "too short for a steady rate: from the worker's start to lag 0"
        return MaxRun(thr, busy, log, scraped, note)

    @contextlib.asynccontextmanager
    async def latency_worker(self, k: int, variant: str) -> AsyncIterator[LatencyWorker]:
        """A fresh worker, once it has its partitions."""
        name = f"{self.run_id}-r{k}{variant}-lat"
        s = await self.fresh(name, variant)
        log = self.logs / f"worker-{name}.log"
        async with WorkerProc(s, log, extra_env=self.worker_env(variant)) as proc:
            await proc.wait_for_log(b'"partitions assigned"')
            meter, processes = self.meters(proc.pid)
            # The same commands in every cell: each starts on a flushed database.
            stream = CommandStream(self.cfg.seed + 1, mix=CREATES_ONLY, tag="l")
            label = self.label(k, variant)
            yield LatencyWorker(s, label, log, proc, meter, processes, stream)

    async def offered(self, w: LatencyWorker, offered: float) -> tuple[LoadResult, Busy]:
        """`w` at `offered` commands/s for `latency_s`."""
        s = w.settings
        began = busy_mark(w.processes)
        total = int(offered * self.cfg.latency_s)
        with self.ui.phase(f"{w.label}latency at {offered:,.0f}/s", total) as advance:
            res = await offer(
                s.kafka, s.commands_topic, s.events_topic, w.stream,
                rate_per_s=offered, seconds=self.cfg.latency_s, warmup_s=1.0,
                on_tick=advance, meter=w.meter,
            )  # fmt: skip
        busy = busy_since(w.processes, began)
        w.proc.check()
        return res, busy

    async def interleave(
        self,
        results: Results[ConfigT, CellT],
        max_cell: Callable[[int, str, list[Encoded]], Awaitable[CellT]],
        latency: Callable[[int, dict[str, CellT]], Awaitable[None]],
    ) -> None:
        """Fills `results` cell by cell, so that a failed run keeps what it measured. Per
        round: every variant's `max_cell` in the round's order, then `latency` of the round's
        cells; the run's topics are removed at the end."""
        results.redis_version = str((await self.client.info("server"))["redis_version"])
        commands = CommandStream(self.cfg.seed, mix=CREATES_ONLY, tag="t").take(self.cfg.commands)
        try:
            for k in range(1, self.cfg.rounds + 1):
                cells = {}
                for name in self.order(k):
                    cells[name] = cell = await max_cell(k, name, commands)
                    results.cells.append(cell)
                await latency(k, cells)
        finally:
            with self.ui.phase("removing the run's topics", None), contextlib.suppress(Exception):
                await delete_topics(self.base.kafka, self.topics)
            await self.client.flushall()


def base_settings(bootstrap: str, redis_url: str, key_prefix: str, **more: Any) -> Settings:
    """The workers' settings but topics and port: the environment's Kafka security settings,
    if any; not its Redis ones (the local servers take no password or TLS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    return Settings.from_env(
        env,
        kafka_bootstrap_servers=bootstrap,
        redis_url=redis_url,
        **more,
        log_format="json",
        log_level="info",
        key_prefix=key_prefix,
    )


def own_pids(kafka_pid: int | None, **roles: int | None) -> dict[str, int | None]:
    """The processes of the benchmark's own, by role: this one, the broker, and `roles`."""
    return {"benchmark": os.getpid(), "broker": kafka_pid, **roles}


# -- the report --------------------------------------------------------------------------------


def us(use: CpuUse | None, roles: Sequence[str]) -> float:
    """CPU µs per command of these roles together; NaN if one was not measured."""
    if use is None or any(role not in use.cpu_s for role in roles):
        return math.nan
    return sum(use.us_per_item(role) for role in roles)


class HasResult(Protocol):
    @property
    def result(self) -> LoadResult: ...


def pct(load: HasResult | None, q: float) -> float:
    return load.result.percentile(q) if load is not None else math.nan


def load_us(load: HasResult | None, roles: Sequence[str]) -> float:
    """CPU µs per command of these roles at an offered load; NaN without it."""
    return us(load.result.cpu, roles) if load is not None else math.nan


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def num(x: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.{digits}f}"


def busy_text(b: Busy) -> str:
    return f"{num(b.cores, 2)} ({num(b.others, 2)})"


@dataclass(frozen=True)
class Metric(Generic[CellT]):
    label: str
    value: Callable[[CellT], float]
    digits: int
    on_only: bool = False  # only the `on` variant has it
    ratios: bool = True  # False: a difference near 0, whose ratios would say nothing


def round_ratios(r: Results[Any, CellT], m: Metric[CellT], a: str, b: str) -> list[float]:
    """Each round's own b/a of the metric."""
    return [m.value(y) / m.value(x) if m.value(x) > 0 else math.nan for x, y in r.pairs(a, b)]


def ratio_text(each: list[float]) -> str:
    """The median of the rounds' ratios, and each in brackets."""
    if not each:
        return ""
    middle = median(each)
    text = "n/a" if math.isnan(middle) else f"{middle:,.2f}x"
    if len(each) > 1:
        text += " (" + ", ".join(num(x, 2) for x in each) + ")"
    return text


def summary_rows(
    r: Results[Any, CellT],
    metrics: Sequence[Metric[CellT]],
    names: Sequence[str],
    compared: Sequence[tuple[str, str]],
) -> list[tuple[str, ...]]:
    """(metric, the median of each of `names`, then per (a, b) of `compared` b/a: the median
    of the rounds' own ratios, each in brackets)."""
    rows = []
    for m in metrics:
        medians = [
            "-"
            if m.on_only and name != "on"
            else num(median([m.value(c) for c in r.of(name)]), m.digits)
            for name in names
        ]
        if m.on_only or not m.ratios:
            ratios = ["" for _ in compared]
        else:
            ratios = [ratio_text(round_ratios(r, m, a, b)) for a, b in compared]
        rows.append((m.label, *medians, *ratios))
    return rows


def heading(r: Results[Any, Any], title: str, module: str) -> list[str]:
    """The report's title and when and how it ran."""
    command = f"python -m {module}" + (" --quick" if r.config.quick else "")
    return [
        f"# session-worker benchmark: {title}, {r.date}\n",
        f"Started {r.started_utc} UTC, took {r.wall_s / 60:.1f} min (`{command}`).",
    ]


def noisy(r: Results[Any, CellT], limit: float = 0.25) -> list[str]:
    """The paragraph on the phases that ran with more than `limit` cores of other work, if
    any."""
    found = [
        f"round {c.round} {c.name} {name} ({b.others:.2f})"
        for c in r.cells
        for name, b in c.phases()
        if b.others > limit
    ]
    if not found:
        return []
    return [
        "\nPhases that shared the machine with more than 0.25 cores of other work (see "
        "`busy` below): " + ", ".join(found) + "."
    ]


def busy_legend(own: str) -> str:
    """What `busy` is, `own` naming the benchmark's own processes."""
    return (
        "`busy`: the machine's cores kept busy on average over the phase (/proc/stat; it has "
        f"{os.cpu_count()}), and in brackets how many of them went to processes other than the "
        f"benchmark's own ({own}, the benchmark process, the broker when started here): other "
        "work on this shared machine."
    )


def rate_notes(r: Results[Any, CellT]) -> list[str]:
    return [f"round {c.round}, {c.name}: {c.rate_note}" for c in r.cells if c.rate_note]


def notes_section(notes: list[str]) -> list[str]:
    if not notes:
        return []
    return ["\n## Notes\n", *(f"- {note}" for note in notes)]


ResultsT = TypeVar("ResultsT", bound=Results[Any, Any])


def write(results: ResultsT, markdown: Callable[[ResultsT], str], name: str) -> Path:
    """Writes <out>/<date>-<name>.md."""
    out: Path = results.config.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{results.date}-{name}.md"
    path.write_text(markdown(results), encoding="utf-8")
    return path


# -- the entry point ---------------------------------------------------------------------------


def stamped() -> tuple[str, str]:
    """(date, start) of a run starting now, UTC."""
    stamp = datetime.now(UTC)
    return f"{stamp:%Y-%m-%d}", f"{stamp:%Y-%m-%d %H:%M}"


def with_kafka(
    console: Console,
    results: Results[Any, Any],
    measure: Callable[[str, int | None], Coroutine[Any, Any, None]],
) -> None:
    """Runs `measure(bootstrap servers, the broker's pid if started here)` on the worker's
    event loop, with Kafka from `devenv.services.open_services`."""
    console.print("starting (or finding) Kafka ...", highlight=False)
    with open_services() as services:
        kafka_pid = services.kafka.pid if services.kafka else None
        source = "external" if services.kafka is None else "local" if kafka_pid else "docker"
        results.services = f"Kafka {source} ({services.bootstrap_servers})"
        event_loop.run(measure(services.bootstrap_servers, kafka_pid), Settings().event_loop)


def main(
    results: ResultsT,
    measure: Callable[[Console], None],
    markdown: Callable[[ResultsT], str],
    name: str,
    table: str,
) -> int:
    """Runs `measure`, then writes the report, also of a run that failed (what was measured
    is kept), and prints its section that starts with `table`. The exit code."""
    console = Console(stderr=True)
    started = time.monotonic()
    code = 0
    try:
        measure(console)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, and what was measured is kept
        console.print_exception()
        console.print(f"benchmark failed: {exc}", highlight=False)
        results.notes.insert(0, f"THE RUN FAILED and is incomplete: {exc!r}")
        code = 1
    results.wall_s = time.monotonic() - started
    path = write(results, markdown, name)
    section = markdown(results).split(table, 1)[-1].split("\n## ", 1)[0]
    Console().print(table + section, highlight=False, markup=False)
    Console().print(f"results: {path} ({results.wall_s / 60:.1f} min)", highlight=False)
    return code
