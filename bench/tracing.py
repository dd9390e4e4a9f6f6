"""`python -m bench.tracing`: what the worker's OpenTelemetry tracing costs, on and off, against
the worker from before tracing was added, in one run.

Three variants of the worker, each a real process (`python -m worker run`, its settings in its
environment):

- `before`: the worker as it was before tracing (commit `--before`, d4aeec3);
- `off`: the current worker (commit `--current`, HEAD), no `OTEL_*` variable (tracing off; its
  log says `tracing: false`);
- `on`: the current worker exporting every span (`OTEL_TRACES_SAMPLER=always_on`, the worst
  case) over OTLP/HTTP to a local sink (`OTEL_EXPORTER_OTLP_ENDPOINT`), the SDK's defaults
  otherwise (BatchSpanProcessor: a queue of 2,048 spans, exported 512 at a time or every 5 s).
  The sink (`bench.otlp_sink`) is a process of its own that decodes every request and counts
  its spans, so that its CPU is not the benchmark process's and is reported on its own.

Both commits run from git worktrees in a temporary folder (removed at the end), not from this
checkout, whose uncommitted edits could change the worker between two rounds: each worker
imports its `worker` (and `contracts`) packages from its worktree, `PYTHONPATH=<worktree>` and
`PYTHONSAFEPATH=1`, so that neither its cwd (this checkout) nor the editable install comes
first. Checked before the first round (a child with that environment imports `worker.app` from
the worktree, and finds `worker.tracing` in the current one only), and in every worker's log:
the before-worker's `worker started` line has no `tracing` field, which the current worker
always writes. `--current .` runs this checkout as it is instead.

Kafka comes from `devenv.services.open_services` as for the rest of the benchmark (started
here, or `KAFKA_BOOTSTRAP_SERVERS`); Redis is a local `redis-server` started here (so that its
CPU can be read from /proc). In interleaved rounds, each measuring the three variants in
alternating order (before, off, on; then on, off, before; ...), each with a worker of its own on
fresh topics and a flushed database:

- max throughput: the steady rate from the first commit to lag 0 over the same preloaded
  creates (bench.runner's way), and CPU per command of the worker, Redis and the sink over the
  same window; the spans the sink received over the worker's life (its shutdown exports what
  is left), per command;
- then, with fresh workers, end-to-end latency p50/p95/p99 (bench.offered) at one offered load,
  the same for the three: `--load` times the round's off max.

This machine is shared by the broker, Redis, the load generator and the worker (and, often,
other benchmarks): single runs differ by tens of percent, so the table gives medians of rounds
and, per metric, the median of the rounds' own ratios.

Writes <out>/<YYYY-MM-DD>-tracing.md.
"""

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import redis.asyncio as aioredis
from rich.console import Console

from bench import interleaved
from bench.baselines import RunResult
from bench.commands import Encoded
from bench.cpu_budget import CpuMeter, CpuUse
from bench.interleaved import (
    Busy,
    Metric,
    busy_text,
    load_us,
    median,
    num,
    pct,
    round_ratios,
    us,
)
from bench.offered import LoadResult
from bench.procs import thread_cpu_seconds
from bench.report import _machine
from bench.runner import RESULTS_DIR, Display, quiet_logging
from bench.sizes import Size
from devenv._proc import StartedService
from devenv.ports import free_port
from devenv.redis_local import LocalRedis
from worker.settings import Settings

VARIANTS = ("before", "off", "on")
COMPARED = [("before", "off"), ("off", "on")]  # the summary's ratios: off/before, on/off
REDIS, SINK = "Redis", "OTLP sink"
LOOP = "worker main thread"  # its event loop: the worker less its other threads
WR = ("worker", REDIS)
REPO = Path(__file__).resolve().parent.parent
SINK_START_S = 30.0


@dataclass(frozen=True)
class Config:
    rounds: int = 3
    commands: int = 30_000  # creates preloaded per cell
    latency_s: float = 15.0  # at the offered load
    load: float = 0.25  # share of each round's off max throughput; 0: no latency phase
    partitions: int = 12
    seed: int = 20261208
    before: str = "d4aeec3"  # the worker before tracing
    current: str = "HEAD"  # the worker with tracing; ".": this checkout as it is
    quick: bool = False
    out: Path = RESULTS_DIR

    @classmethod
    def quick_sizes(cls) -> dict[str, object]:
        return {"rounds": 2, "commands": 5_000, "latency_s": 6.0}


def parse_args(argv: Sequence[str] | None) -> Config:
    d = Config()
    quick = Config.quick_sizes()
    sizes: tuple[Size, ...] = (
        ("rounds", int, "rounds, each measuring the three variants"),
        ("commands", int, "creates preloaded per round and variant (max throughput)"),
        ("latency_s", float, "seconds at the offered load, per round and variant"),
        ("load", float, "offered load as a share of the round's off max (0: no latency phase)"),
        ("partitions", int, "of every topic"),
        ("seed", int, "of the command streams"),
    )
    p = interleaved.parser(
        "python -m bench.tracing",
        "The worker from before tracing, with tracing off and with it on (every span exported "
        "to a local OTLP sink), in interleaved rounds; writes <out>/<date>-tracing.md.",
        sizes,
        d,
        quick,
    )
    p.add_argument("--before", help=f"the commit of the before-worker (default {d.before})")
    p.add_argument(
        "--current",
        help=f"the commit of the off- and on-workers (default {d.current}; '.': this checkout "
        "with its uncommitted edits)",
    )
    cfg = interleaved.parsed(p, argv, Config, sizes, quick, except_=("seed", "load"))
    if cfg.load < 0:
        p.error("--load must not be negative")
    return cfg


def order(k: int) -> tuple[str, ...]:
    """Alternating order, so that neither `before` nor `on` is always the last of a round (a
    broker that warms up, or a neighbour that starts, would favour one); `off` is always in
    the middle, next to both it is compared with."""
    return interleaved.alternating(VARIANTS, k)


# -- the before-worker -------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(  # noqa: S603 - git from PATH, our own arguments
        ["git", "-C", str(REPO), *args],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@contextlib.contextmanager
def git_tree(commit: str, name: str) -> Iterator[Path]:
    """A detached git worktree of `commit` in a temporary folder, removed on exit."""
    parent = Path(tempfile.mkdtemp(prefix=f"worker-{name}-"))
    tree = parent / "session-worker"
    _git("worktree", "add", "--detach", str(tree), commit)
    try:
        yield tree
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(parent, ignore_errors=True)
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "prune")


def tree_env(tree: Path) -> dict[str, str]:
    """What a worker's environment adds to run from `tree`: it first on `sys.path`."""
    if tree == REPO:
        return {}
    path = os.environ.get("PYTHONPATH", "")
    return {
        "PYTHONPATH": str(tree) + (os.pathsep + path if path else ""),
        "PYTHONSAFEPATH": "1",  # not the cwd (this checkout) ahead of it
    }


_IMPORT_CHECK = """\
import importlib.util, json
import contracts, worker.app, worker.store
print(json.dumps({
    "worker.app": worker.app.__file__,
    "contracts": contracts.__file__,
    "worker.tracing": importlib.util.find_spec("worker.tracing") is not None,
}))
"""


def check_tree(name: str, tree: Path, env: dict[str, str], *, tracing: bool) -> str:
    """Fails unless a child with `env` imports the worker from `tree`, with `worker.tracing`
    or without it."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _IMPORT_CHECK],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout)
    for module in ("worker.app", "contracts"):
        if not Path(found[module]).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"the before-worker would import {module} from {found[module]}")
    if found["worker.tracing"] != tracing or (tree / "worker" / "tracing.py").exists() != tracing:
        has = "has" if found["worker.tracing"] else "has no"
        raise RuntimeError(f"the {name}-worker in {tree} {has} worker.tracing")
    where = "this checkout" if tree == REPO else "a worktree, removed at the end"
    return (
        f"the {name}-worker imports worker.app from {found['worker.app']} ({where}) and finds "
        + ("worker.tracing" if tracing else "no worker.tracing")
    )


def tracing_logged(log: Path) -> bool | None:
    """The `tracing` field of the worker's `worker started` log line; None: no such field (the
    worker from before tracing)."""
    for line in log.read_bytes().splitlines():
        if b'"worker started"' in line:
            value = json.loads(line).get("tracing")
            return None if value is None else bool(value)
    raise RuntimeError(f"no 'worker started' line in {log}")


EXPECTED_LOG = {"before": None, "off": False, "on": True}


def otel_lines(log: Path) -> list[str]:
    """What OpenTelemetry's SDK and exporter logged (warnings: dropped spans, failed exports)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return [x for x in text.splitlines() if x.startswith("opentelemetry")]


# -- CPU of the worker's event loop ----------------------------------------------------------


class LoopMeter(CpuMeter):
    """A CpuMeter that also reads the worker's main thread alone (role `LOOP`): its event
    loop, without the other threads (with tracing on, the span exporter's)."""

    def with_process(self, role: str, pid: int) -> CpuMeter:
        meter = LoopMeter(self._pids)
        meter._pids[role] = pid
        return meter

    def processes(self) -> CpuMeter:
        """The same processes without the main thread: for `busy`, which sums every role."""
        return CpuMeter(self._pids)

    def _read(self) -> dict[str, float]:
        values = super()._read()
        pid = self._pids.get("worker")
        if pid is not None:
            loop = thread_cpu_seconds(pid, pid)
            if loop is not None:
                values[LOOP] = loop
        return values


# -- the sink ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkStats:
    """What the sink received so far (bench.otlp_sink's counts)."""

    requests: int = 0
    body_bytes: int = 0
    spans: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def __sub__(self, other: "SinkStats") -> "SinkStats":
        kinds = {k: v - other.kinds.get(k, 0) for k, v in self.kinds.items()}
        return SinkStats(
            self.requests - other.requests,
            self.body_bytes - other.body_bytes,
            self.spans - other.spans,
            {k: v for k, v in kinds.items() if v},
            self.errors - other.errors,
        )

    def kind(self, name: str) -> int:
        return self.kinds.get(name, 0)


class SinkProc(StartedService):
    """`python -m bench.otlp_sink` on a free port, from ready to stopped."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None  # noqa: S101 - started first
        return self._proc.pid

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.otlp_sink", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        deadline = time.monotonic() + SINK_START_S
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the OTLP sink exited; its log: {self.log_path}")
            try:
                self.stats_now()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return

    def stats_now(self) -> SinkStats:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as reply:  # noqa: S310
            return SinkStats(**json.loads(reply.read()))

    async def stats(self) -> SinkStats:
        return await asyncio.to_thread(self.stats_now)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """The offered load on a cell's latency worker."""

    label: str  # "25% of off max"
    result: LoadResult
    busy: Busy
    exported: SinkStats  # over the worker's life

    @property
    def spans_per_command(self) -> float:
        sent = self.result.sent
        return self.exported.spans / sent if sent else math.nan


@dataclass
class Cell:
    """One variant in one round: a worker from start to lag 0 over the preloaded creates, and
    a fresh one at the round's offered load."""

    round: int
    variant: str  # one of VARIANTS
    throughput: RunResult
    busy_max: Busy
    exported: SinkStats  # what the sink received over the worker's life
    otel_log: list[str] = field(default_factory=list)
    load: Load | None = None
    rate_note: str = ""

    @property
    def spans_per_command(self) -> float:
        n = self.throughput.records
        return self.exported.spans / n if n else math.nan

    @property
    def name(self) -> str:
        return self.variant

    def phases(self) -> list[tuple[str, Busy]]:
        return [("max", self.busy_max)] + (
            [] if self.load is None else [(self.load.label, self.load.busy)]
        )


@dataclass
class Results(interleaved.Results[Config, Cell]):
    before: str = "?"  # the before commit, described
    current: str = "?"  # the current commit, described


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Runner(interleaved.RoundRunner[Config]):
    names = VARIANTS

    meter: LoopMeter
    sink: SinkProc
    envs: dict[str, dict[str, str]]  # before, current: what runs the worker from its tree

    def worker_env(self, name: str) -> dict[str, str]:
        if name == "before":
            return self.envs["before"]
        if name == "on":
            return {
                **self.envs["current"],
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.sink.url,
                "OTEL_TRACES_SAMPLER": "always_on",
            }
        return self.envs["current"]

    def meters(self, pid: int) -> tuple[CpuMeter, CpuMeter]:
        """The worker's main thread too for its CPU; not for `busy`, which sums every role."""
        meter = self.meter.with_process("worker", pid)
        return meter, self.meter.processes().with_process("worker", pid)

    def _checked(self, variant: str, log: Path, exported: SinkStats) -> list[str]:
        """Fails unless the worker ran the variant's code and traced (only) when on."""
        logged = tracing_logged(log)
        if logged != EXPECTED_LOG[variant]:
            raise RuntimeError(
                f"the {variant}-worker logged tracing={logged}, not {EXPECTED_LOG[variant]}: {log}"
            )
        if (exported.spans > 0) != (variant == "on"):
            raise RuntimeError(f"the {variant}-worker exported {exported.spans:,} spans: {log}")
        return otel_lines(log)

    async def max_throughput(self, k: int, variant: str, commands: list[Encoded]) -> Cell:
        sent_before = await self.sink.stats()
        m = await self.max_run(k, variant, commands)
        # The worker has stopped: its tracing's shutdown exported what it still held.
        exported = await self.sink.stats() - sent_before
        otel = self._checked(variant, m.log, exported)
        if variant == "on":
            n = len(commands)
            self.ui.say(
                f"  {exported.spans:,} spans exported ({exported.spans / n:.2f} per command) "
                f"in {exported.requests:,} requests; sink "
                f"{num(us(m.throughput.cpu, [SINK]))} µs/command"
            )
        return Cell(k, variant, m.throughput, m.busy, exported, otel, rate_note=m.note)

    async def latency(self, cell: Cell, load_label: str, offered: float) -> None:
        """A fresh worker, once it has its partitions, at `offered` commands/s."""
        sent_before = await self.sink.stats()
        async with self.latency_worker(cell.round, cell.variant) as worker:
            res, busy = await self.offered(worker, offered)
        exported = await self.sink.stats() - sent_before
        cell.otel_log += self._checked(cell.variant, worker.log, exported)
        cell.load = Load(load_label, res, busy, exported)
        self.ui.say(
            f"  p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms, "
            f"{res.missing} unanswered; machine {busy.cores:.2f} cores busy, "
            f"{busy.others:.2f} of them outside the benchmark"
        )


async def run(
    cfg: Config,
    base: Settings,
    client: aioredis.Redis,
    meter: LoopMeter,
    ui: Display,
    results: Results,
    sink: SinkProc,
    envs: dict[str, dict[str, str]],
    logs: Path,
) -> None:
    """Fills `results` cell by cell, so that a failed run keeps what it measured. Per round:
    the three variants' max throughput, then the three at the round's offered load (a share
    of that round's off max), each with a worker of its own."""
    run_id = f"trac{datetime.now(UTC):%H%M%S}"
    runner = Runner(cfg, base, client, meter, ui, run_id, logs, sink, envs)

    async def latency(k: int, cells: dict[str, Cell]) -> None:
        if cfg.load > 0:
            offered = max(1.0, cfg.load * cells["off"].throughput.rate)
            for variant in order(k):
                await runner.latency(cells[variant], load_label(cfg), offered)

    await runner.interleave(results, runner.max_throughput, latency)


def load_label(cfg: Config) -> str:
    return f"{cfg.load:.0%} of off max"


# -- the report --------------------------------------------------------------------------------


def _other_threads(cpu: CpuUse | None) -> float:
    """The worker's CPU µs per command outside its main thread (read apart: a hair below 0 is
    the clock ticks' rounding)."""
    value = us(cpu, ["worker"]) - us(cpu, [LOOP])
    return value if math.isnan(value) else max(0.0, value)


def metrics(cfg: Config) -> list[Metric[Cell]]:
    """The summary's rows; `on_only`: before and off export nothing."""
    rows: list[Metric[Cell]] = [
        Metric("max throughput, commands/s", lambda c: c.throughput.rate, 0),
        Metric("worker CPU µs/command, max", lambda c: us(c.throughput.cpu, ["worker"]), 0),
        Metric("worker main thread µs/command, max", lambda c: us(c.throughput.cpu, [LOOP]), 0),
        Metric(
            "worker's other threads µs/command, max",
            lambda c: _other_threads(c.throughput.cpu),
            0,
            ratios=False,
        ),
        Metric("Redis µs/command, max", lambda c: us(c.throughput.cpu, [REDIS]), 1),
        Metric("worker + Redis µs/command, max", lambda c: us(c.throughput.cpu, WR), 0),
        Metric("OTLP sink µs/command, max", lambda c: us(c.throughput.cpu, [SINK]), 0, True),
        Metric("spans exported per command, max", lambda c: c.spans_per_command, 2, True),
    ]
    if cfg.load > 0:
        label = load_label(cfg)
        rows += [
            Metric(f"p50 ms at {label}", lambda c: pct(c.load, 50), 1),
            Metric(f"p95 ms at {label}", lambda c: pct(c.load, 95), 1),
            Metric(f"p99 ms at {label}", lambda c: pct(c.load, 99), 1),
            Metric(f"worker µs/command at {label}", lambda c: load_us(c.load, ["worker"]), 0),
            Metric(f"worker + Redis µs/command at {label}", lambda c: load_us(c.load, WR), 0),
            Metric(
                f"OTLP sink µs/command at {label}",
                lambda c: load_us(c.load, [SINK]),
                0,
                True,
            ),
        ]
    return rows


def summary_rows(r: Results) -> list[tuple[str, ...]]:
    """(metric, before, off, on medians, off/before and on/off: medians of the rounds' own
    ratios, each in brackets)."""
    return interleaved.summary_rows(r, metrics(r.config), VARIANTS, COMPARED)


def _spread(each: list[float]) -> str:
    values = [x for x in each if not math.isnan(x)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}x, one round"
    return f"{median(values):.2f}x, rounds {min(values):.2f} to {max(values):.2f}"


def _within(each: list[float]) -> str:
    """Whether 1.0 is within the rounds' own ratios: noise, or the same sign every round."""
    values = [x for x in each if not math.isnan(x)]
    if len(values) < 2:
        return "one round cannot tell noise"
    if min(values) <= 1.0 <= max(values):
        return "1.00 lies within the rounds' spread: no difference beyond noise"
    side = "above" if min(values) > 1.0 else "below"
    return f"every round's ratio is {side} 1.00: a difference beyond this run's noise"


def _differences(r: Results, value: Callable[[Cell], float], a: str, b: str) -> list[float]:
    return [value(y) - value(x) for x, y in r.pairs(a, b)]


def conclusion(r: Results) -> list[str]:
    by_label = {m.label: m for m in metrics(r.config)}
    rate = by_label["max throughput, commands/s"]
    worker = by_label["worker CPU µs/command, max"]
    out = []
    off_rate = round_ratios(r, rate, "before", "off")
    off_cpu = round_ratios(r, worker, "before", "off")
    before_rates = [c.throughput.rate for c in r.of("before")]
    spread = ""
    if len(before_rates) > 1:
        m = median(before_rates)
        spread = (
            f" (the before-worker's own max ranged {num(min(before_rates))} to "
            f"{num(max(before_rates))} commands/s over the rounds, "
            f"{(max(before_rates) - min(before_rates)) / m:.0%} of its median)"
        )
    out.append(
        f"- **Off against before**: max throughput off/before {_spread(off_rate)}; "
        f"{_within(off_rate)}{spread}. Worker CPU per command off/before {_spread(off_cpu)}; "
        f"{_within(off_cpu)}."
    )
    on_rate = round_ratios(r, rate, "off", "on")
    extra = _differences(r, lambda c: us(c.throughput.cpu, ["worker"]), "off", "on")
    extra_loop = _differences(r, lambda c: us(c.throughput.cpu, [LOOP]), "off", "on")
    sink = [us(c.throughput.cpu, [SINK]) for c in r.of("on")]
    spans = [c.spans_per_command for c in r.of("on")]
    commands = [c.exported.kind("command") / c.throughput.records for c in r.of("on")]
    on_cpu = round_ratios(r, worker, "off", "on")
    each = ", ".join(num(x) for x in extra)
    out.append(
        f"- **On against off** (every span exported): max throughput on/off {_spread(on_rate)}; "
        f"{_within(on_rate)}. The worker spends {num(median(extra))} µs more CPU per command "
        f"(median of the rounds' own differences: {each}), "
        f"{num(median(extra_loop))} µs of them on its main thread (the event loop), the rest "
        f"on its other threads (the span exporter's); worker CPU on/off {_spread(on_cpu)}. "
        f"The sink took {num(median(sink))} µs per command to receive and decode "
        f"{num(median(spans), 2)} spans per command ({num(median(commands), 2)} command "
        "spans per command: 1.00 when none was dropped)."
    )
    if r.config.load > 0:
        p99 = by_label[f"p99 ms at {load_label(r.config)}"]
        p50 = by_label[f"p50 ms at {load_label(r.config)}"]
        out.append(
            f"- **Latency at {load_label(r.config)}**: p50 off/before "
            f"{_spread(round_ratios(r, p50, 'before', 'off'))}, on/off "
            f"{_spread(round_ratios(r, p50, 'off', 'on'))}; p99 off/before "
            f"{_spread(round_ratios(r, p99, 'before', 'off'))}, on/off "
            f"{_spread(round_ratios(r, p99, 'off', 'on'))}."
        )
    return out


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f}"


def markdown(r: Results) -> str:
    cfg = r.config
    out = interleaved.heading(r, "tracing", "bench.tracing")
    add = out.append
    add(
        f"Machine: {_machine()}. Services: {r.services}; Redis {r.redis_version}, started here "
        "as a local process."
    )
    add(
        "Everything below was measured in this one run, on the same broker and Redis, with the "
        "load generator and the OTLP sink on the same machine.\n"
    )
    add(
        f"Three variants of the worker: **before**, the worker before tracing was added "
        f"({r.before}); **off**, the current worker ({r.current}) without any `OTEL_*` "
        "variable (its log line says `tracing: false`); **on**, the current worker with "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` set to a local OTLP/HTTP sink and "
        "`OTEL_TRACES_SAMPLER=always_on` (every span recorded and exported: the worst case), "
        "the SDK's defaults otherwise (BatchSpanProcessor: a queue of 2,048 spans, exported 512 "
        "at a time or every 5 s; protobuf, no compression). Each commit runs from a git "
        "worktree of it (`PYTHONPATH=<worktree>`, `PYTHONSAFEPATH=1`), so that edits to this "
        "checkout during the run change nothing; checked: each imports `worker` from its "
        "worktree, the before-worker has no `worker.tracing` and its `worker started` log line "
        "no `tracing` field. The same venv's packages for both. The sink "
        "(`bench.otlp_sink`) is a process of its own: it decodes every request "
        "(`ExportTraceServiceRequest`), counts the spans and answers 200; its CPU is its own "
        "column. The preloaded commands carry no `traceparent`, so each command's span is a "
        "child of its batch's span (a producer's context would add its extraction per record "
        "and a link per command to the batch span).\n"
    )
    latency = (
        f" then, with a fresh worker once it has its partitions, the end-to-end latency "
        f"(command handed to the producer -> its event read back) over {cfg.latency_s:g} s of "
        f"creates at {load_label(cfg)} (the round's off max throughput), the same for the "
        "three; the first second left out."
        if cfg.load > 0
        else ""
    )
    add(
        f"{len(r.pairs('before', 'off'))} rounds. Each measures the three variants in "
        "alternating order (before, off, on in odd rounds; on, off, before in even ones), "
        "each with a worker process of its own (`python -m worker run`, its settings in its "
        f"environment) on fresh topics ({cfg.partitions} partitions) and a flushed database: "
        f"first the max throughput over the same {cfg.commands:,} preloaded creates (the "
        "steady rate from the first commit to lag 0; CPU over the same window);" + latency + "\n"
    )
    add("## Before, off and on\n")
    add(
        "Medians of the rounds; off/before and on/off are the medians of the rounds' own "
        "ratios (each round's in brackets), so that a slow minute of this shared machine "
        "weighs on the variants it compares.\n"
    )
    add("| | before | off | on | off/before | on/off |")
    add("|---|---|---|---|---|---|")
    for row in summary_rows(r):
        add("| " + " | ".join(row) + " |")
    add("")
    out.extend(conclusion(r))
    add(
        "\nCPU: from /proc, per command handled, from the first commit to lag 0 (max) and while "
        "the load was offered; `worker` is its process (with tracing on, the exporter's thread "
        "included), its `main thread` the one running the event loop (/proc/<pid>/task/<pid>), "
        "`Redis` the redis-server, `OTLP sink` the sink's process. Spans exported: "
        "what the sink received over the max worker's whole life (its shutdown exports what "
        "was still queued), per command preloaded."
    )
    out += interleaved.noisy(r)
    add("\n## Each round\n")
    add(
        interleaved.busy_legend("worker, Redis, the OTLP sink") + " Spans: all the sink "
        "received, then command spans, batch spans (one per batch), and the batches' Redis and "
        "send spans.\n"
    )
    add("| round | variant | commands/s | busy | worker µs/cmd | main thread µs/cmd "
        "| Redis µs/cmd | sink µs/cmd | batches | spans | spans/cmd | command | batch | redis "
        "| send | requests | KiB |")  # fmt: skip
    add("|---" * 17 + "|")
    for c in r.cells:
        cpu, x = c.throughput.cpu, c.exported
        on = c.variant == "on"
        add(
            f"| {c.round} | {c.variant} | {num(c.throughput.rate)} | {busy_text(c.busy_max)} "
            f"| {num(us(cpu, ['worker']))} | {num(us(cpu, [LOOP]))} "
            f"| {num(us(cpu, [REDIS]), 1)} "
            f"| {num(us(cpu, [SINK])) if on else '-'} | {num(c.throughput.batches)} "
            f"| {x.spans:,} | {num(c.spans_per_command, 2)} | {x.kind('command'):,} "
            f"| {x.kind('batch'):,} | {x.kind('redis'):,} | {x.kind('send'):,} "
            f"| {x.requests:,} | {_kib(x.body_bytes)} |"
        )
    loads = [c for c in r.cells if c.load is not None]
    if loads:
        add("")
        add("| round | variant | load | offered/s | p50 ms | p95 ms | p99 ms | unanswered "
            "| busy | worker µs/cmd | main thread µs/cmd | Redis µs/cmd | sink µs/cmd "
            "| spans/cmd |")  # fmt: skip
        add("|---" * 14 + "|")
        for c in loads:
            ld = c.load
            assert ld is not None  # noqa: S101 - filtered above
            res, on = ld.result, c.variant == "on"
            add(
                f"| {c.round} | {c.variant} | {ld.label} | {num(res.offered_per_s)} "
                f"| {num(pct(ld, 50), 1)} | {num(pct(ld, 95), 1)} | {num(pct(ld, 99), 1)} "
                f"| {res.missing:,} | {busy_text(ld.busy)} | {num(load_us(ld, ['worker']))} "
                f"| {num(load_us(ld, [LOOP]))} "
                f"| {num(load_us(ld, [REDIS]), 1)} "
                f"| {num(load_us(ld, [SINK])) if on else '-'} "
                f"| {num(ld.spans_per_command, 2)} |"
            )
    notes = interleaved.rate_notes(r)
    for c in r.cells:
        if c.otel_log:
            notes.append(
                f"round {c.round}, {c.variant}: OpenTelemetry logged {len(c.otel_log)} lines, "
                f"the first: `{c.otel_log[0][:200]}`"
            )
    out += interleaved.notes_section(notes + r.notes)
    return "\n".join(out) + "\n"


# -- the entry point ---------------------------------------------------------------------------


async def _main(
    cfg: Config,
    bootstrap: str,
    kafka_pid: int | None,
    envs: dict[str, dict[str, str]],
    results: Results,
) -> None:
    logs = Path(tempfile.mkdtemp(prefix="worker-tracing-"))
    results.notes.append(f"worker and sink logs of this run: {logs}")
    with LocalRedis() as redis, SinkProc(logs / "otlp-sink.log") as sink:
        base = interleaved.base_settings(bootstrap, redis.url, "tr")
        meter = LoopMeter(interleaved.own_pids(kafka_pid, **{REDIS: redis.pid, SINK: sink.pid}))
        client = aioredis.Redis.from_url(redis.url)
        try:
            with Display() as ui:
                await run(cfg, base, client, meter, ui, results, sink, envs, logs)
        finally:
            await client.aclose()


def _drop_otel_env() -> list[str]:
    """Takes this process' `OTEL_*` variables away, so that the workers inherit none: each
    variant's are set for it alone."""
    names = sorted(k for k in os.environ if k.startswith("OTEL_"))
    for name in names:
        del os.environ[name]
    return names


def _commit(rev: str) -> tuple[str, str]:
    """A revision's abbreviated commit, and it described for the report."""
    full = _git("rev-parse", "--short=12", f"{rev}^{{commit}}")
    subject = _git("log", "-1", "--format=%s", full)
    return full, f"commit {full}, {subject[:100]!r}" + (f" ({rev})" if rev != full else "")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    quiet_logging()
    results = Results(*interleaved.stamped(), cfg)
    dropped = _drop_otel_env()
    if dropped:
        results.notes.append(
            "left out of the workers' environment (set in the benchmark's): " + ", ".join(dropped)
        )

    def measure(console: Console) -> None:
        before, results.before = _commit(cfg.before)
        with contextlib.ExitStack() as trees:
            old = trees.enter_context(git_tree(before, "before"))
            if cfg.current == ".":
                changed = len(_git("status", "--short").splitlines())
                head = _git("rev-parse", "--short=12", "HEAD")
                results.current = f"this checkout at {head} with {changed} files edited or new"
                current = REPO
            else:
                commit, results.current = _commit(cfg.current)
                current = trees.enter_context(git_tree(commit, "current"))
            envs = {"before": tree_env(old), "current": tree_env(current)}
            results.notes.append(check_tree("before", old, envs["before"], tracing=False))
            results.notes.append(check_tree("current", current, envs["current"], tracing=True))
            interleaved.with_kafka(
                console, results, lambda bootstrap, pid: _main(cfg, bootstrap, pid, envs, results)
            )

    return interleaved.main(results, measure, markdown, "tracing", "## Before, off")


if __name__ == "__main__":
    sys.exit(main())
