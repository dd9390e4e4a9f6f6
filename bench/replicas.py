"""`python -m bench.replicas`: what `SW_REDIS_MIN_REPLICAS=1` costs, against `=0`, in one run.

A Redis primary and one replica are started here as local processes (the replica attached in
both settings, so both pay for replication itself and the difference is the wait: a barrier
write and `WAIT` per batch, overlapped with the batch's event delivery). Kafka comes from
`devenv.services.open_services` as for the rest of the benchmark (started here, or
`KAFKA_BOOTSTRAP_SERVERS`); its Redis, if it starts one, is not used.

The worker runs as a real process (`python -m worker run`, its settings in its environment), in
interleaved rounds: each round measures both settings, in alternating order (off, on; then on,
off; ...), each with a worker of its own on fresh topics and a flushed database:

- max throughput: the steady rate from the first commit to lag 0 over the same preloaded
  creates (bench.runner's way);
- then, with fresh workers, end-to-end latency p50/p95/p99 (bench.offered) at the round's fixed
  offered loads, the same for both settings: `--loads` shares of the round's off max (or
  `--rate`), one after the other on the same worker;
- the worker's own `session_worker_replica_wait*` metrics: that every batch waited and how long;
- CPU per command of the worker, the Redis primary and the replica, from /proc.

This machine is shared by the broker, Redis, the load generator and the worker (and, often,
other test suites): single runs differ by tens of percent, so the table gives medians of rounds
and, per metric, the median of the rounds' own on/off ratios.

Writes <out>/<YYYY-MM-DD>-replicas.md.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from rich.console import Console

from bench.baselines import RunResult
from bench.commands import CREATES_ONLY, CommandStream, Encoded
from bench.cpu_budget import CpuMeter, CpuUse, Mark
from bench.kafkaio import LagWatch, delete_topics, make_topics, preload
from bench.offered import LoadResult, offer
from bench.procs import WorkerProc
from bench.report import _machine
from bench.runner import RESULTS_DIR, Display, quiet_logging, scrape_metrics, worker_max
from bench.sizes import Size, add_size_flags, check_positive, chosen
from devenv.ports import free_port
from devenv.redis_local import LocalRedis
from devenv.services import open_services
from worker import event_loop
from worker.settings import Settings

# The two settings measured: name -> SW_REDIS_MIN_REPLICAS.
SETTINGS = {"off": 0, "on": 1}
PRIMARY, REPLICA = "Redis primary", "Redis replica"
SYNC_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Config:
    rounds: int = 3
    commands: int = 30_000  # creates preloaded per cell
    latency_s: float = 20.0  # per offered load
    loads: tuple[float, ...] = (0.25, 0.5)  # shares of each round's off max throughput
    rate: float = 0.0  # one fixed offered load instead (commands/s); 0: from `loads`
    partitions: int = 12
    replica_timeout_ms: int = 1000  # SW_REDIS_REPLICA_TIMEOUT_MS, the worker's default
    seed: int = 20261207
    quick: bool = False
    out: Path = RESULTS_DIR

    @classmethod
    def quick_sizes(cls) -> dict[str, object]:
        return {"rounds": 2, "commands": 5_000, "latency_s": 8.0}


def parse_args(argv: Sequence[str] | None) -> Config:
    d = Config()
    quick = Config.quick_sizes()
    p = argparse.ArgumentParser(
        prog="python -m bench.replicas",
        description="The worker with SW_REDIS_MIN_REPLICAS=0 and =1 against a local primary "
        "and replica, in interleaved rounds; writes <out>/<date>-replicas.md.",
    )
    sizes: tuple[Size, ...] = (
        ("rounds", int, "rounds, each measuring both settings"),
        ("commands", int, "creates preloaded per round and setting (max throughput)"),
        ("latency_s", float, "seconds per offered load, round and setting"),
        ("rate", float, "one offered load in commands/s instead (0: from --loads)"),
        ("partitions", int, "of every topic"),
        ("replica_timeout_ms", int, "SW_REDIS_REPLICA_TIMEOUT_MS of the on-rounds"),
        ("seed", int, "of the command streams"),
    )
    add_size_flags(p, sizes, d, quick)
    p.add_argument(
        "--loads",
        type=lambda text: tuple(float(x) for x in text.split(",")),
        help="offered loads as shares of the round's off max, comma-separated (default "
        + ",".join(f"{x:g}" for x in d.loads)
        + ")",
    )
    p.add_argument("--out", type=Path, help=f"results folder (default {RESULTS_DIR})")
    args = p.parse_args(argv)
    cfg = Config(**chosen(args, Config, quick))
    check_positive(p, sizes, cfg, except_=("seed", "rate"))
    if cfg.rate < 0:
        p.error("--rate must not be negative")
    if not cfg.loads or not all(x > 0 for x in cfg.loads):
        p.error("--loads must be positive shares")
    return cfg


@dataclass(frozen=True)
class Waits:
    """The worker's replica-wait metrics at one moment (totals since it started)."""

    ok: float
    short: float
    error: float
    seconds: float  # sum of the successful waits
    batches: float  # batches committed

    @classmethod
    def of(cls, metrics: dict[str, float]) -> "Waits":
        def total(result: str) -> float:
            return metrics.get(f'session_worker_replica_waits_total{{result="{result}"}}', 0.0)

        return cls(
            ok=total("ok"),
            short=total("short"),
            error=total("error"),
            seconds=metrics.get("session_worker_replica_wait_seconds_sum", 0.0),
            batches=metrics.get("session_worker_batch_records_count", 0.0),
        )

    def __sub__(self, other: "Waits") -> "Waits":
        return Waits(
            self.ok - other.ok,
            self.short - other.short,
            self.error - other.error,
            self.seconds - other.seconds,
            self.batches - other.batches,
        )

    @property
    def mean_ms(self) -> float:
        return self.seconds / self.ok * 1000 if self.ok > 0 else math.nan

    @property
    def per_batch(self) -> float:
        return self.ok / self.batches if self.batches > 0 else math.nan


@dataclass(frozen=True)
class Busy:
    """How busy the machine was over a phase: its cores kept busy on average (/proc/stat), and
    how many of those went to processes other than the benchmark's own (the worker, the
    primary, the replica, this process, and the broker when started here): other work on a
    shared machine, the noise a phase ran in."""

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


@dataclass(frozen=True)
class Load:
    """One offered load on a cell's latency worker."""

    label: str  # "25% of max", or "1,000/s" for --rate
    result: LoadResult
    waits: Waits
    busy: Busy


@dataclass
class Cell:
    """One setting in one round: a worker from start to lag 0 over the preloaded creates, and
    a fresh one at the round's offered loads."""

    round: int
    setting: str  # a key of SETTINGS
    throughput: RunResult
    waits_max: Waits
    busy_max: Busy
    loads: list[Load] = field(default_factory=list)
    rate_note: str = ""

    def load(self, label: str) -> Load | None:
        return next((x for x in self.loads if x.label == label), None)


@dataclass
class Results:
    date: str
    started_utc: str
    config: Config
    wall_s: float = 0.0
    services: str = "not started"
    redis_version: str = "?"
    cells: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, setting: str) -> list[Cell]:
        return [c for c in self.cells if c.setting == setting]

    def pairs(self) -> list[tuple[Cell, Cell]]:
        """(off, on) of each round that measured both."""
        rounds: dict[int, dict[str, Cell]] = {}
        for c in self.cells:
            rounds.setdefault(c.round, {})[c.setting] = c
        return [(r["off"], r["on"]) for _, r in sorted(rounds.items()) if len(r) == 2]


# -- measuring ---------------------------------------------------------------------------------


def _in_sync(info: dict[str, object]) -> bool:
    """The replica is online (past its first sync) and has everything the primary wrote."""
    replica = info.get("slave0")
    return (
        isinstance(replica, dict)
        and replica.get("state") == "online"
        and replica.get("offset") == info.get("master_repl_offset")
    )


async def _until_in_sync(client: aioredis.Redis) -> None:
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while not _in_sync(await client.info("replication")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the replica did not catch up within {SYNC_TIMEOUT_S:g} s")
        await asyncio.sleep(0.05)


def offers(cfg: Config, off_max: float) -> list[tuple[str, float]]:
    """(label, commands/s) of a round's offered loads."""
    if cfg.rate:
        return [(f"{cfg.rate:,.0f}/s", cfg.rate)]
    return [(f"{share:.0%} of max", max(1.0, share * off_max)) for share in cfg.loads]


def _order(k: int) -> tuple[str, str]:
    """Alternating order, so that neither setting is always the second of a round (a broker
    that warms up, or a neighbour that starts, would favour one)."""
    return ("off", "on") if k % 2 else ("on", "off")


@dataclass
class Runner:
    cfg: Config
    base: Settings
    client: aioredis.Redis
    meter: CpuMeter
    ui: Display
    run_id: str
    logs: Path
    topics: list[str] = field(default_factory=list)

    async def fresh(self, name: str, setting: str) -> Settings:
        """Settings of a worker on topics of its own, over a flushed primary and replica."""
        s = self.base.replace(
            commands_topic=f"{name}.commands",
            events_topic=f"{name}.events",
            dead_letter_topic=f"{name}.dlq",
            group_id=f"{name}-group",
            redis_min_replicas=SETTINGS[setting],
            http_host="127.0.0.1",
            http_port=free_port(),
        )
        await self.client.flushall()
        await _until_in_sync(self.client)
        self.topics += [s.commands_topic, s.events_topic, s.dead_letter_topic]
        await make_topics(s, self.cfg.partitions)
        return s

    def label(self, k: int, setting: str) -> str:
        return f"round {k}/{self.cfg.rounds}, {setting} (min replicas {SETTINGS[setting]}): "

    async def max_throughput(self, k: int, setting: str, commands: list[Encoded]) -> Cell:
        name = f"{self.run_id}-r{k}{setting}"
        s = await self.fresh(name, setting)
        label = self.label(k, setting)
        n = len(commands)
        with self.ui.phase(f"{label}preloading {n:,} creates", n) as advance:
            await preload(s.kafka, s.commands_topic, commands, advance)
        watch = LagWatch(s.kafka, s.commands_topic, s.group_id)
        await watch.start()
        try:
            async with WorkerProc(s, self.logs / f"worker-{name}.log") as proc:
                meter = self.meter.with_process("worker", proc.pid)
                began = busy_mark(meter)
                thr = await worker_max(proc, watch, s.http_port, n, label, self.ui, meter)
                busy = busy_since(meter, began)
                waits = Waits.of(await scrape_metrics(s.http_port))
        finally:
            await watch.stop()
        note = ""
        if thr.rate <= 0:  # all committed between two samples: too few commands to tell
            until_lag0 = watch.samples[-1].t - proc.started_at
            thr = dataclasses.replace(thr, rate=n / until_lag0, window_s=until_lag0)
            note = "too short for a steady rate: from the worker's start to lag 0"
        return Cell(k, setting, thr, waits, busy, rate_note=note)

    async def latency(self, cell: Cell, offers: list[tuple[str, float]]) -> None:
        """A fresh worker, once it has its partitions, at each (label, commands/s) in turn."""
        k, setting = cell.round, cell.setting
        name = f"{self.run_id}-r{k}{setting}-lat"
        s = await self.fresh(name, setting)
        label = self.label(k, setting)
        log = self.logs / f"worker-{name}.log"
        # The same commands in every cell: each starts on a flushed database.
        stream = CommandStream(self.cfg.seed + 1, mix=CREATES_ONLY, tag="l")
        async with WorkerProc(s, log) as proc:
            await proc.wait_for_log(b'"partitions assigned"')
            meter = self.meter.with_process("worker", proc.pid)
            for load_label, offered in offers:
                before = Waits.of(await scrape_metrics(s.http_port))
                began = busy_mark(meter)
                total = int(offered * self.cfg.latency_s)
                with self.ui.phase(f"{label}latency at {offered:,.0f}/s", total) as advance:
                    res = await offer(
                        s.kafka, s.commands_topic, s.events_topic, stream,
                        rate_per_s=offered, seconds=self.cfg.latency_s, warmup_s=1.0,
                        on_tick=advance, meter=meter,
                    )  # fmt: skip
                busy = busy_since(meter, began)
                proc.check()
                w = Waits.of(await scrape_metrics(s.http_port)) - before
                cell.loads.append(Load(load_label, res, w, busy))
                self.ui.say(
                    f"  p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms, "
                    f"{res.missing} unanswered; replica waits ok/short/error "
                    f"{w.ok:,.0f}/{w.short:,.0f}/{w.error:,.0f} for {w.batches:,.0f} batches; "
                    f"machine {busy.cores:.2f} cores busy, {busy.others:.2f} of them outside "
                    "the benchmark"
                )


async def run(
    cfg: Config,
    base: Settings,
    client: aioredis.Redis,
    meter: CpuMeter,
    ui: Display,
    results: Results,
) -> None:
    """Fills `results` cell by cell, so that a failed run keeps what it measured. Per round:
    both settings' max throughput, then both at the round's offered loads (shares of that
    round's off max), each with a worker of its own."""
    run_id = f"repl{datetime.now(UTC):%H%M%S}"
    logs = Path(tempfile.mkdtemp(prefix="worker-replicas-"))
    results.notes.append(f"worker logs of this run: {logs}")
    results.redis_version = str((await client.info("server"))["redis_version"])
    commands = CommandStream(cfg.seed, mix=CREATES_ONLY, tag="t").take(cfg.commands)
    runner = Runner(cfg, base, client, meter, ui, run_id, logs)
    try:
        for k in range(1, cfg.rounds + 1):
            cells = {}
            for setting in _order(k):
                cells[setting] = cell = await runner.max_throughput(k, setting, commands)
                results.cells.append(cell)
            for setting in _order(k):
                await runner.latency(cells[setting], offers(cfg, cells["off"].throughput.rate))
    finally:
        with ui.phase("removing the run's topics", None), contextlib.suppress(Exception):
            await delete_topics(base.kafka, runner.topics)
        await client.flushall()


# -- the report --------------------------------------------------------------------------------


def _us(use: CpuUse | None, roles: Sequence[str]) -> float:
    """CPU µs per command of these roles together; NaN if one was not measured."""
    if use is None or any(role not in use.cpu_s for role in roles):
        return math.nan
    return sum(use.us_per_item(role) for role in roles)


def _load_labels(r: Results) -> list[str]:
    labels: list[str] = []
    for c in r.cells:
        labels += [x.label for x in c.loads if x.label not in labels]
    return labels


def _pct(load: Load | None, q: float) -> float:
    return load.result.percentile(q) if load is not None else math.nan


@dataclass(frozen=True)
class Metric:
    label: str
    value: Callable[[Cell], float]
    digits: int
    on_only: bool = False  # the off-rounds have none (replica waits)


WORKER_REDIS = ("worker", PRIMARY, REPLICA)


def metrics(load_labels: Sequence[str]) -> list[Metric]:
    rows = [
        Metric("max throughput, commands/s", lambda c: c.throughput.rate, 0),
        Metric("worker CPU µs/command, max", lambda c: _us(c.throughput.cpu, ["worker"]), 0),
        Metric("Redis primary µs/command, max", lambda c: _us(c.throughput.cpu, [PRIMARY]), 1),
        Metric("Redis replica µs/command, max", lambda c: _us(c.throughput.cpu, [REPLICA]), 1),
        Metric(
            "worker + primary + replica µs/command, max",
            lambda c: _us(c.throughput.cpu, WORKER_REDIS),
            0,
        ),
        Metric("replica wait mean ms, max", lambda c: c.waits_max.mean_ms, 2, on_only=True),
    ]
    for label in load_labels:
        rows += [
            Metric(f"p50 ms at {label}", _at(label, lambda x: _pct(x, 50)), 1),
            Metric(f"p95 ms at {label}", _at(label, lambda x: _pct(x, 95)), 1),
            Metric(f"p99 ms at {label}", _at(label, lambda x: _pct(x, 99)), 1),
            Metric(
                f"worker + primary + replica µs/command at {label}",
                _at(label, lambda x: _us(_cpu(x), WORKER_REDIS)),
                0,
            ),
            Metric(f"replica wait mean ms at {label}", _at(label, _wait_ms), 2, on_only=True),
        ]
    return rows


def _at(label: str, value: Callable[[Load | None], float]) -> Callable[[Cell], float]:
    """`value` of a cell's load of this label."""
    return lambda c: value(c.load(label))


def _cpu(load: Load | None) -> CpuUse | None:
    return load.result.cpu if load is not None else None


def _wait_ms(load: Load | None) -> float:
    return load.waits.mean_ms if load is not None else math.nan


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _num(x: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.{digits}f}"


def summary_rows(r: Results) -> list[tuple[str, str, str, str]]:
    """(metric, off median, on median, on/off: median of the rounds' own ratios and each)."""
    rows = []
    for m in metrics(_load_labels(r)):
        off = "-" if m.on_only else _num(_median([m.value(c) for c in r.of("off")]), m.digits)
        on = _num(_median([m.value(c) for c in r.of("on")]), m.digits)
        ratio = ""
        if not m.on_only:
            each = [m.value(b) / m.value(a) if m.value(a) > 0 else math.nan for a, b in r.pairs()]
            if each:
                middle = _median(each)
                ratio = "n/a" if math.isnan(middle) else f"{middle:,.2f}x"
                if len(each) > 1:
                    ratio += " (" + ", ".join(_num(x, 2) for x in each) + ")"
        rows.append((m.label, off, on, ratio))
    return rows


def _sum(waits: Sequence[Waits]) -> Waits:
    total = Waits(0, 0, 0, 0, 0)
    for w in waits:
        total = Waits(
            total.ok + w.ok,
            total.short + w.short,
            total.error + w.error,
            total.seconds + w.seconds,
            total.batches + w.batches,
        )
    return total


def _waits_of(cells: list[Cell]) -> Waits:
    return _sum([w for c in cells for w in (c.waits_max, *(x.waits for x in c.loads))])


def _busy(b: Busy) -> str:
    return f"{_num(b.cores, 2)} ({_num(b.others, 2)})"


def _noisy(r: Results, limit: float = 0.25) -> list[str]:
    """The phases that ran with more than `limit` cores of other work."""
    found = []
    for c in r.cells:
        phases = [("max", c.busy_max), *((x.label, x.busy) for x in c.loads)]
        found += [
            f"round {c.round} {c.setting} {name} ({b.others:.2f})"
            for name, b in phases
            if b.others > limit
        ]
    return found


def markdown(r: Results) -> str:
    cfg = r.config
    out: list[str] = []
    add = out.append
    add(f"# session-worker benchmark: SW_REDIS_MIN_REPLICAS, {r.date}\n")
    command = "python -m bench.replicas" + (" --quick" if cfg.quick else "")
    add(f"Started {r.started_utc} UTC, took {r.wall_s / 60:.1f} min (`{command}`).")
    add(
        f"Machine: {_machine()}. Services: {r.services}; Redis {r.redis_version}, a primary and "
        "one replica started here as local processes (`--replicaof`), the replica attached in "
        "both settings."
    )
    add(
        "Everything below was measured in this one run, on the same broker, primary and "
        "replica, with the load generator on the same machine.\n"
    )
    loads = (
        "`--rate`"
        if cfg.rate
        else ", ".join(f"{x:.0%}" for x in cfg.loads) + " of the round's off max throughput"
    )
    add(
        f"{len(r.pairs())} rounds. Each measures both settings in alternating order (off first "
        "in odd rounds, on first in even ones), each with a worker process of its own (`python "
        "-m worker run`, its settings in its environment) on fresh topics "
        f"({cfg.partitions} partitions) and a flushed database: first the max throughput over "
        f"the same {cfg.commands:,} preloaded creates (the steady rate from the first commit "
        "to lag 0), then, with a fresh worker once it has its partitions, the end-to-end "
        "latency (command handed to the producer -> its event read back) over "
        f"{cfg.latency_s:g} s of creates at each of the round's offered loads in turn, {loads}, "
        "the same for both settings; the first second of each left out. The on-rounds wait for "
        f"1 replica with SW_REDIS_REPLICA_TIMEOUT_MS={cfg.replica_timeout_ms}.\n"
    )
    add("## Off (SW_REDIS_MIN_REPLICAS=0) against on (=1)\n")
    add(
        "Medians of the rounds; on/off is the median of the rounds' own ratios (each round's "
        "in brackets), so that a slow minute of this shared machine weighs on both settings.\n"
    )
    add("| | off | on | on/off |")
    add("|---|---|---|---|")
    for row in summary_rows(r):
        add("| " + " | ".join(row) + " |")
    on = _waits_of(r.of("on"))
    off = _waits_of(r.of("off"))
    add(
        f"\nReplica waits of the on-rounds (`session_worker_replica_waits_total`): {on.ok:,.0f} "
        f"ok, {on.short:,.0f} short, {on.error:,.0f} error, for {on.batches:,.0f} batches "
        f"committed ({_num(on.per_batch, 2)} waits per batch); mean wait "
        f"{_num(on.mean_ms, 2)} ms (`session_worker_replica_wait_seconds`). Off-rounds: "
        f"{off.ok + off.short + off.error:,.0f} waits for {off.batches:,.0f} batches. (Read "
        "from /metrics with up to two batches in flight: a batch may have waited and not yet "
        "be counted as committed.)"
    )
    add(
        "\nCPU: from /proc, per command handled, from the first commit to lag 0 (max) and while "
        "the load was offered; `worker` is its process, the primary and the replica the two "
        "redis-server processes."
    )
    noisy = _noisy(r)
    if noisy:
        add(
            "\nPhases that shared the machine with more than 0.25 cores of other work (see "
            "`busy` below): " + ", ".join(noisy) + "."
        )
    add("\n## Each round\n")
    add(
        "`busy`: the machine's cores kept busy on average over the phase (/proc/stat; it has "
        f"{os.cpu_count()}), and in brackets how many of them went to processes other than the "
        "benchmark's own (worker, primary, replica, the benchmark process, the broker when "
        "started here): other work on this shared machine.\n"
    )
    add("| round | setting | commands/s | busy | worker µs/cmd | primary µs/cmd "
        "| replica µs/cmd | batches | waits ok | short | error | wait mean ms |")  # fmt: skip
    add("|---" * 12 + "|")
    for c in r.cells:
        w, cpu = c.waits_max, c.throughput.cpu
        add(
            f"| {c.round} | {c.setting} | {_num(c.throughput.rate)} | {_busy(c.busy_max)} "
            f"| {_num(_us(cpu, ['worker']))} | {_num(_us(cpu, [PRIMARY]), 1)} "
            f"| {_num(_us(cpu, [REPLICA]), 1)} | {w.batches:,.0f} | {w.ok:,.0f} "
            f"| {w.short:,.0f} | {w.error:,.0f} | {_num(w.mean_ms, 2)} |"
        )
    add("")
    add("| round | setting | load | offered/s | p50 ms | p95 ms | p99 ms | unanswered | busy "
        "| worker + Redis µs/cmd | batches | waits ok | short | error "
        "| wait mean ms |")  # fmt: skip
    add("|---" * 15 + "|")
    for c in r.cells:
        for x in c.loads:
            w, res = x.waits, x.result
            add(
                f"| {c.round} | {c.setting} | {x.label} | {_num(res.offered_per_s)} "
                f"| {_num(_pct(x, 50), 1)} | {_num(_pct(x, 95), 1)} | {_num(_pct(x, 99), 1)} "
                f"| {res.missing:,} | {_busy(x.busy)} | {_num(_us(res.cpu, WORKER_REDIS))} "
                f"| {w.batches:,.0f} | {w.ok:,.0f} | {w.short:,.0f} | {w.error:,.0f} "
                f"| {_num(w.mean_ms, 2)} |"
            )
    notes = [f"round {c.round}, {c.setting}: {c.rate_note}" for c in r.cells if c.rate_note]
    notes += r.notes
    if notes:
        add("\n## Notes\n")
        out.extend(f"- {note}" for note in notes)
    return "\n".join(out) + "\n"


def write(results: Results, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{results.date}-replicas.md"
    path.write_text(markdown(results), encoding="utf-8")
    return path


# -- the entry point ---------------------------------------------------------------------------


@contextlib.contextmanager
def replicated_redis() -> Iterator[tuple[LocalRedis, LocalRedis]]:
    with LocalRedis() as primary:
        replica = LocalRedis(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
        with replica:
            yield primary, replica


async def _main(cfg: Config, bootstrap: str, kafka_pid: int | None, results: Results) -> None:
    with replicated_redis() as (primary, replica):
        # The environment's Kafka security settings, if any; not its Redis ones: the local
        # servers take no password or TLS.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
        base = Settings.from_env(
            env,
            kafka_bootstrap_servers=bootstrap,
            redis_url=primary.url,
            redis_replica_timeout_ms=cfg.replica_timeout_ms,
            log_format="json",
            log_level="info",
            key_prefix="rp",
        )
        meter = CpuMeter(
            {
                "benchmark": os.getpid(),
                "broker": kafka_pid,
                PRIMARY: primary.pid,
                REPLICA: replica.pid,
            }
        )
        client = aioredis.Redis.from_url(primary.url)
        try:
            await _until_in_sync(client)
            with Display() as ui:
                await run(cfg, base, client, meter, ui, results)
        finally:
            await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    quiet_logging()
    stamp = datetime.now(UTC)
    results = Results(f"{stamp:%Y-%m-%d}", f"{stamp:%Y-%m-%d %H:%M}", cfg)
    console = Console(stderr=True)
    started = time.monotonic()
    code = 0
    try:
        console.print("starting (or finding) Kafka ...", highlight=False)
        with open_services() as services:
            kafka_pid = services.kafka.pid if services.kafka else None
            source = "external" if services.kafka is None else "local" if kafka_pid else "docker"
            results.services = f"Kafka {source} ({services.bootstrap_servers})"
            event_loop.run(
                _main(cfg, services.bootstrap_servers, kafka_pid, results),
                Settings().event_loop,
            )
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, and what was measured is kept
        console.print_exception()
        console.print(f"benchmark failed: {exc}", highlight=False)
        results.notes.insert(0, f"THE RUN FAILED and is incomplete: {exc!r}")
        code = 1
    results.wall_s = time.monotonic() - started
    path = write(results, cfg.out)
    table = markdown(results).split("## Off", 1)[-1].split("\n## ", 1)[0]
    Console().print("## Off" + table, highlight=False, markup=False)
    Console().print(f"results: {path} ({results.wall_s / 60:.1f} min)", highlight=False)
    return code


if __name__ == "__main__":
    sys.exit(main())
