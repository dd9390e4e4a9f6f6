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

import contextlib
import math
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from rich.console import Console

from bench import interleaved
from bench.baselines import RunResult
from bench.commands import Encoded
from bench.cpu_budget import CpuMeter
from bench.interleaved import Busy, Metric, busy_text, load_us, num, pct, us
from bench.offered import LoadResult
from bench.report import _machine
from bench.runner import RESULTS_DIR, Display, quiet_logging, scrape_metrics
from bench.sizes import Size
from devenv.redis_local import LocalRedis
from devenv.replica_sync import until_replica_in_sync
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
    sizes: tuple[Size, ...] = (
        ("rounds", int, "rounds, each measuring both settings"),
        ("commands", int, "creates preloaded per round and setting (max throughput)"),
        ("latency_s", float, "seconds per offered load, round and setting"),
        ("rate", float, "one offered load in commands/s instead (0: from --loads)"),
        ("partitions", int, "of every topic"),
        ("replica_timeout_ms", int, "SW_REDIS_REPLICA_TIMEOUT_MS of the on-rounds"),
        ("seed", int, "of the command streams"),
    )
    p = interleaved.parser(
        "python -m bench.replicas",
        "The worker with SW_REDIS_MIN_REPLICAS=0 and =1 against a local primary and replica, "
        "in interleaved rounds; writes <out>/<date>-replicas.md.",
        sizes,
        d,
        quick,
    )
    p.add_argument(
        "--loads",
        type=lambda text: tuple(float(x) for x in text.split(",")),
        help="offered loads as shares of the round's off max, comma-separated (default "
        + ",".join(f"{x:g}" for x in d.loads)
        + ")",
    )
    cfg = interleaved.parsed(p, argv, Config, sizes, quick, except_=("seed", "rate"))
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

    @property
    def name(self) -> str:
        return self.setting

    def load(self, label: str) -> Load | None:
        return next((x for x in self.loads if x.label == label), None)

    def phases(self) -> list[tuple[str, Busy]]:
        return [("max", self.busy_max), *((x.label, x.busy) for x in self.loads)]


class Results(interleaved.Results[Config, Cell]):
    pass


# -- measuring ---------------------------------------------------------------------------------


def offers(cfg: Config, off_max: float) -> list[tuple[str, float]]:
    """(label, commands/s) of a round's offered loads."""
    if cfg.rate:
        return [(f"{cfg.rate:,.0f}/s", cfg.rate)]
    return [(f"{share:.0%} of max", max(1.0, share * off_max)) for share in cfg.loads]


@dataclass
class Runner(interleaved.RoundRunner[Config]):
    names = tuple(SETTINGS)

    def changes(self, name: str) -> dict[str, int]:
        return {"redis_min_replicas": SETTINGS[name]}

    async def flushed(self) -> None:
        """The replica has caught up with the flushed primary."""
        await until_replica_in_sync(self.client, SYNC_TIMEOUT_S)

    def describe(self, name: str) -> str:
        return f"{name} (min replicas {SETTINGS[name]})"

    async def max_throughput(self, k: int, setting: str, commands: list[Encoded]) -> Cell:
        m = await self.max_run(k, setting, commands, metrics=True)
        return Cell(k, setting, m.throughput, Waits.of(m.metrics), m.busy, rate_note=m.note)

    async def latency(self, cell: Cell, offers: list[tuple[str, float]]) -> None:
        """A fresh worker, once it has its partitions, at each (label, commands/s) in turn."""
        async with self.latency_worker(cell.round, cell.setting) as worker:
            port = worker.settings.http_port
            for load_label, offered in offers:
                before = Waits.of(await scrape_metrics(port))
                res, busy = await self.offered(worker, offered)
                w = Waits.of(await scrape_metrics(port)) - before
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
    runner = Runner(cfg, base, client, meter, ui, run_id, logs)

    async def latency(k: int, cells: dict[str, Cell]) -> None:
        for setting in runner.order(k):
            await runner.latency(cells[setting], offers(cfg, cells["off"].throughput.rate))

    await runner.interleave(results, runner.max_throughput, latency)


# -- the report --------------------------------------------------------------------------------


def _load_labels(r: Results) -> list[str]:
    labels: list[str] = []
    for c in r.cells:
        labels += [x.label for x in c.loads if x.label not in labels]
    return labels


WORKER_REDIS = ("worker", PRIMARY, REPLICA)


def metrics(load_labels: Sequence[str]) -> list[Metric[Cell]]:
    """The summary's rows; `on_only`: the off-rounds have none (replica waits)."""
    rows: list[Metric[Cell]] = [
        Metric("max throughput, commands/s", lambda c: c.throughput.rate, 0),
        Metric("worker CPU µs/command, max", lambda c: us(c.throughput.cpu, ["worker"]), 0),
        Metric("Redis primary µs/command, max", lambda c: us(c.throughput.cpu, [PRIMARY]), 1),
        Metric("Redis replica µs/command, max", lambda c: us(c.throughput.cpu, [REPLICA]), 1),
        Metric(
            "worker + primary + replica µs/command, max",
            lambda c: us(c.throughput.cpu, WORKER_REDIS),
            0,
        ),
        Metric("replica wait mean ms, max", lambda c: c.waits_max.mean_ms, 2, on_only=True),
    ]
    for label in load_labels:
        rows += [
            Metric(f"p50 ms at {label}", _at(label, lambda x: pct(x, 50)), 1),
            Metric(f"p95 ms at {label}", _at(label, lambda x: pct(x, 95)), 1),
            Metric(f"p99 ms at {label}", _at(label, lambda x: pct(x, 99)), 1),
            Metric(
                f"worker + primary + replica µs/command at {label}",
                _at(label, lambda x: load_us(x, WORKER_REDIS)),
                0,
            ),
            Metric(f"replica wait mean ms at {label}", _at(label, _wait_ms), 2, on_only=True),
        ]
    return rows


def _at(label: str, value: Callable[[Load | None], float]) -> Callable[[Cell], float]:
    """`value` of a cell's load of this label."""
    return lambda c: value(c.load(label))


def _wait_ms(load: Load | None) -> float:
    return load.waits.mean_ms if load is not None else math.nan


def summary_rows(r: Results) -> list[tuple[str, ...]]:
    """(metric, off median, on median, on/off: median of the rounds' own ratios and each)."""
    return interleaved.summary_rows(r, metrics(_load_labels(r)), tuple(SETTINGS), [("off", "on")])


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


def markdown(r: Results) -> str:
    cfg = r.config
    out = interleaved.heading(r, "SW_REDIS_MIN_REPLICAS", "bench.replicas")
    add = out.append
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
        f"{len(r.pairs('off', 'on'))} rounds. Each measures both settings in alternating order "
        "(off first in odd rounds, on first in even ones), each with a worker process of its "
        "own (`python -m worker run`, its settings in its environment) on fresh topics "
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
        f"committed ({num(on.per_batch, 2)} waits per batch); mean wait "
        f"{num(on.mean_ms, 2)} ms (`session_worker_replica_wait_seconds`). Off-rounds: "
        f"{off.ok + off.short + off.error:,.0f} waits for {off.batches:,.0f} batches. (Read "
        "from /metrics with up to two batches in flight: a batch may have waited and not yet "
        "be counted as committed.)"
    )
    add(
        "\nCPU: from /proc, per command handled, from the first commit to lag 0 (max) and while "
        "the load was offered; `worker` is its process, the primary and the replica the two "
        "redis-server processes."
    )
    out += interleaved.noisy(r)
    add("\n## Each round\n")
    add(interleaved.busy_legend("worker, primary, replica") + "\n")
    add("| round | setting | commands/s | busy | worker µs/cmd | primary µs/cmd "
        "| replica µs/cmd | batches | waits ok | short | error | wait mean ms |")  # fmt: skip
    add("|---" * 12 + "|")
    for c in r.cells:
        w, cpu = c.waits_max, c.throughput.cpu
        add(
            f"| {c.round} | {c.setting} | {num(c.throughput.rate)} | {busy_text(c.busy_max)} "
            f"| {num(us(cpu, ['worker']))} | {num(us(cpu, [PRIMARY]), 1)} "
            f"| {num(us(cpu, [REPLICA]), 1)} | {w.batches:,.0f} | {w.ok:,.0f} "
            f"| {w.short:,.0f} | {w.error:,.0f} | {num(w.mean_ms, 2)} |"
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
                f"| {c.round} | {c.setting} | {x.label} | {num(res.offered_per_s)} "
                f"| {num(pct(x, 50), 1)} | {num(pct(x, 95), 1)} | {num(pct(x, 99), 1)} "
                f"| {res.missing:,} | {busy_text(x.busy)} | {num(us(res.cpu, WORKER_REDIS))} "
                f"| {w.batches:,.0f} | {w.ok:,.0f} | {w.short:,.0f} | {w.error:,.0f} "
                f"| {num(w.mean_ms, 2)} |"
            )
    out += interleaved.notes_section(interleaved.rate_notes(r) + r.notes)
    return "\n".join(out) + "\n"


# -- the entry point ---------------------------------------------------------------------------


@contextlib.contextmanager
def replicated_redis() -> Iterator[tuple[LocalRedis, LocalRedis]]:
    with LocalRedis() as primary:
        replica = LocalRedis(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
        with replica:
            yield primary, replica


async def _main(cfg: Config, bootstrap: str, kafka_pid: int | None, results: Results) -> None:
    with replicated_redis() as (primary, replica):
        base = interleaved.base_settings(
            bootstrap, primary.url, "rp", redis_replica_timeout_ms=cfg.replica_timeout_ms
        )
        meter = CpuMeter(
            interleaved.own_pids(kafka_pid, **{PRIMARY: primary.pid, REPLICA: replica.pid})
        )
        client = aioredis.Redis.from_url(primary.url)
        try:
            await until_replica_in_sync(client, SYNC_TIMEOUT_S)
            with Display() as ui:
                await run(cfg, base, client, meter, ui, results)
        finally:
            await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    quiet_logging()
    results = Results(*interleaved.stamped(), cfg)

    def measure(console: Console) -> None:
        interleaved.with_kafka(
            console, results, lambda bootstrap, pid: _main(cfg, bootstrap, pid, results)
        )

    return interleaved.main(results, measure, markdown, "replicas", "## Off")


if __name__ == "__main__":
    sys.exit(main())
