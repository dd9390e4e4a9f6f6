"""The results: one Markdown file with the targets table and details, and one PNG plot."""

import math
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.baselines import RunResult
from bench.cpu_budget import ROLES, CpuUse
from bench.memory import LayoutResult, WorkerMemory
from bench.offered import LoadResult
from bench.procs import RssSample
from bench.profiling import PieceCost, Profile

MiB = 1024 * 1024
SAME_RUN = (
    "Everything below was measured in this one run, on the same broker and Redis, with the "
    "load generator on the same machine.\n"
)

# Every row of the targets table, in order; the smoke test checks that each is written.
TARGET_ROWS = (
    "throughput vs ceiling",
    "throughput vs floor",
    "p99 latency at 50% of max",
    "worker RSS after the commands",
    "worker RSS flat over the soak",
    "Redis bytes per live session",
    "expiry burst announced",
)


@dataclass
class ExpiryResult:
    sessions: int
    ttl_s: float
    burst_s: float  # worker start to the last create's event
    announced: int
    last_after_s: float  # the last announcement, seconds after expiresAt
    p50_after_s: float
    valid: bool  # the burst was processed before the sessions expired
    note: str = ""
    arrivals_after_s: list[float] = field(default_factory=list)


@dataclass
class ThroughputRound:
    """The three contenders one after the other on the same preloaded commands: their ratios
    are measured side by side, so a slow minute of a shared machine weighs on all three."""

    ceiling: RunResult
    floor: RunResult
    worker: RunResult

    @property
    def of_ceiling(self) -> float:
        return _ratio(self.worker.rate, self.ceiling.rate)

    @property
    def of_floor(self) -> float:
        return _ratio(self.worker.rate, self.floor.rate)


def _ratio(a: float, b: float) -> float:
    return a / b if a > 0 and b > 0 else float("nan")


def median_run(runs: list[RunResult]) -> RunResult:
    """The run of median rate (of an even count, the lower middle one)."""
    return sorted(runs, key=lambda run: run.rate)[(len(runs) - 1) // 2]


@dataclass
class Results:
    date: str
    started_utc: str
    wall_s: float
    quick: bool
    config: dict[str, object]
    services: str
    rounds: list[ThroughputRound] = field(default_factory=list)
    loads: list[tuple[float, LoadResult]] = field(default_factory=list)  # (share of max, result)
    ceiling_latency: LoadResult | None = None  # the pass-through at 50% of the worker's max
    soak: LoadResult | None = None
    soak_window: tuple[float, float] = (0.0, 0.0)  # monotonic start, end
    rss: list[RssSample] = field(default_factory=list)
    worker_started: float = 0.0
    commands_total: int = 0
    rss_end: int = 0
    memory: list[WorkerMemory] = field(default_factory=list)
    layouts: list[LayoutResult] = field(default_factory=list)
    expiry: ExpiryResult | None = None
    pieces: list[PieceCost] = field(default_factory=list)
    profile: Profile | None = None
    notes: list[str] = field(default_factory=list)

    # Each contender's run of median rate over the rounds: the rates the report shows.
    @property
    def ceiling(self) -> RunResult | None:
        return median_run([rd.ceiling for rd in self.rounds]) if self.rounds else None

    @property
    def floor(self) -> RunResult | None:
        return median_run([rd.floor for rd in self.rounds]) if self.rounds else None

    @property
    def worker(self) -> RunResult | None:
        return median_run([rd.worker for rd in self.rounds]) if self.rounds else None


def ratios(r: Results) -> tuple[float, float]:
    """(worker / ceiling, worker / floor): the median of the rounds' own ratios."""
    return (
        _median([rd.of_ceiling for rd in r.rounds]),
        _median([rd.of_floor for rd in r.rounds]),
    )


def _median(values: list[float]) -> float:
    """NaN when there are none, or one of them is (a round that measured nothing)."""
    if not values or any(math.isnan(v) for v in values):
        return float("nan")
    return statistics.median(values)


def _met(ok: bool | None) -> str:
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**not met**"


def _num(x: float, digits: int = 0) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{x:,.{digits}f}"


def rss_flatness(results: Results) -> tuple[float, int, int] | None:
    """(spread as a share of the minimum, min, max) of RSS over the soak, its first tenth left
    out as warm-up; None without samples."""
    start, end = results.soak_window
    if end <= start:
        return None
    warm = start + (end - start) / 10
    values = [s.rss for s in results.rss if warm <= s.t <= end]
    if len(values) < 2:
        return None
    low, high = min(values), max(values)
    return (high - low) / low, low, high


def half_load(r: Results) -> LoadResult | None:
    """The latency phase at 50% of the worker's max, the one the p99 target is about."""
    return next((res for share, res in r.loads if abs(share - 0.5) < 1e-9), None)


def _per_round(r: Results, show: Callable[[ThroughputRound], str]) -> str:
    """Each round's ratio, then the arrow to their median; nothing for a single round."""
    if len(r.rounds) < 2:
        return ""
    return "rounds " + ", ".join(show(rd) for rd in r.rounds) + ", median "


def target_rows(r: Results) -> list[tuple[str, str, str, str, str]]:
    """(row, target, measured, baseline / ratio, met)."""
    rows: list[tuple[str, str, str, str, str]] = []
    w = r.worker.rate if r.worker else float("nan")
    c = r.ceiling.rate if r.ceiling else float("nan")
    f = r.floor.rate if r.floor else float("nan")
    ratio_c, ratio_f = ratios(r)
    of_rounds = f" (median of {len(r.rounds)} rounds)" if len(r.rounds) > 1 else ""
    per_c = _per_round(r, lambda rd: f"{_num(rd.of_ceiling * 100, 1)}%")
    per_f = _per_round(r, lambda rd: f"{_num(rd.of_floor, 1)}x")
    rows.append(
        (TARGET_ROWS[0], ">= 50% of the ceiling", f"{_num(w)} commands/s{of_rounds}",
         f"ceiling {_num(c)} records/s -> {per_c}{_num(ratio_c * 100, 1)}%",
         _met(None if math.isnan(ratio_c) else ratio_c >= 0.5)),
    )  # fmt: skip
    rows.append(
        (TARGET_ROWS[1], ">= 20x the floor", f"{_num(w)} commands/s{of_rounds}",
         f"floor {_num(f, 1)} records/s -> {per_f}{_num(ratio_f, 1)}x",
         _met(None if math.isnan(ratio_f) else ratio_f >= 20)),
    )  # fmt: skip
    half = half_load(r)
    if half is not None:
        p99 = half.percentile(99)
        ok = half.missing == 0 and not math.isnan(p99) and p99 <= 25
        rows.append(
            (TARGET_ROWS[2], "<= 25 ms",
             f"p99 {_num(p99, 1)} ms (p50 {_num(half.percentile(50), 1)}, "
             f"p95 {_num(half.percentile(95), 1)}) at {_num(half.offered_per_s)}/s",
             f"{half.sent:,} commands, {half.missing} unanswered"
             + (f"; ceiling at the same load: p99 {_num(r.ceiling_latency.percentile(99), 1)} ms"
                if r.ceiling_latency else ""), _met(ok)),
        )  # fmt: skip
    else:
        rows.append((TARGET_ROWS[2], "<= 25 ms", "n/a", "", _met(None)))
    wanted = int(str(r.config.get("commands", 0)))
    rss_mb = r.rss_end / MiB
    rows.append(
        (TARGET_ROWS[3], f"<= 150 MB after {wanted:,} commands",
         f"{_num(rss_mb, 1)} MB after {r.commands_total:,} commands",
         "" if r.commands_total >= wanted else f"only {r.commands_total:,} of {wanted:,} reached",
         _met(None if not r.rss_end else rss_mb <= 150 and r.commands_total >= wanted)),
    )  # fmt: skip
    flat = rss_flatness(r)
    soak_s = float(str(r.config.get("soak_s", 0)))
    if flat is not None:
        spread, low, high = flat
        rows.append(
            (TARGET_ROWS[4], f"within 10% over a {soak_s:.0f} s soak",
             f"{_num(spread * 100, 1)}% ({_num(low / MiB, 1)}-{_num(high / MiB, 1)} MB)",
             f"{_num(r.soak.offered_per_s if r.soak else 0)} commands/s offered",
             _met(spread <= 0.10 and soak_s >= 600) if soak_s >= 600
             else _met(spread <= 0.10) + f" (soak {soak_s:.0f} s < 600 s)"),
        )  # fmt: skip
    else:
        rows.append((TARGET_ROWS[4], "within 10% over 10 min", "n/a", "", _met(None)))
    typical = next((m for m in r.memory if m.label == "realistic mix"), None)
    if typical is not None:
        ref = next((m for m in r.memory if m.label != "realistic mix"), None)
        rows.append(
            (TARGET_ROWS[5], "<= 1.5 KiB (1,536 B), helper keys included",
             f"{_num(typical.bytes_per_session)} B ({_num(typical.keys_per_session, 2)} keys)",
             f"reference payload: {_num(ref.bytes_per_session)} B" if ref else "",
             _met(typical.bytes_per_session <= 1536)),
        )  # fmt: skip
    else:
        rows.append((TARGET_ROWS[5], "<= 1.5 KiB", "n/a", "", _met(None)))
    e = r.expiry
    if e is not None:
        ok = e.valid and e.announced >= e.sessions and e.last_after_s <= 10
        rows.append(
            (TARGET_ROWS[6], "100,000 in the same second, all within 10 s",
             f"{e.announced:,}/{e.sessions:,} announced, last {_num(e.last_after_s, 2)} s "
             f"after expiresAt (median {_num(e.p50_after_s, 2)} s)",
             e.note or f"burst of creates took {_num(e.burst_s, 1)} s",
             _met(ok) + ("" if e.sessions >= 100_000 else f" (only {e.sessions:,} sessions)")),
        )  # fmt: skip
    else:
        rows.append((TARGET_ROWS[6], "all within 10 s", "n/a", "", _met(None)))
    return rows


def cpu_phases(r: Results) -> list[tuple[str, CpuUse]]:
    """Every phase whose processes' CPU time was measured, labelled as in the report."""
    phases: list[tuple[str, CpuUse]] = []
    spans = {"ceiling": "start-up incl.", "floor": "start-up incl.", "worker": "from 1st commit"}
    for run in (r.ceiling, r.floor, r.worker):
        if run is not None and run.cpu is not None:
            phases.append((f"{run.name}, max throughput ({spans[run.name]})", run.cpu))
    loads: list[tuple[str, LoadResult | None]] = [
        (f"worker, {share:.0%} of max", res) for share, res in r.loads
    ]
    loads.append(("ceiling at 50% of the worker's max", r.ceiling_latency))
    loads.append(("worker, soak", r.soak))
    phases += [(label, res.cpu) for label, res in loads if res is not None and res.cpu is not None]
    return phases


def _cell(use: CpuUse, role: str) -> str:
    cores = use.cores(role)
    if math.isnan(cores):
        return "n/a"
    return f"{cores:.2f} ({_num(use.us_per_item(role))} µs)"


def cores_section(r: Results) -> list[str]:
    """Where the machine's cores went in each phase, and what the unmet targets would take
    at the costs measured: the numbers behind a target that this machine cannot give."""
    phases = cpu_phases(r)
    if not phases:
        return []
    cores = os.cpu_count() or 1
    out = [
        "## Where the machine's cores went\n",
        "CPU time of each process over each phase (from /proc), as cores kept busy on average "
        "and, in brackets, CPU µs per command or record the phase handled. `benchmark` is the "
        "benchmark's own process: the ceiling and the floor run in it, and the load generator "
        "(producing the commands, reading the events back; in the soak also building them). "
        f"The latency phases are measured while the load is offered. The machine has {cores} "
        "cores.\n",
        "| phase | handled/s | " + " | ".join(ROLES) + f" | all (of {cores}) |",
        "|---|---|" + "---|" * len(ROLES) + "---|",
    ]
    for label, use in phases:
        rate = use.items / use.wall_s if use.wall_s > 0 else math.nan
        cells = " | ".join(_cell(use, role) for role in ROLES)
        out.append(f"| {label} | {_num(rate)} | {cells} | {_num(use.total_cores, 2)} |")
    out.append("")
    out += _what_targets_take(r, cores)
    return out


def _what_targets_take(r: Results, cores: int) -> list[str]:
    """The unmet targets, worked out from what this run measured (nothing assumed)."""
    out: list[str] = []
    of_ceiling, _ = ratios(r)
    c, w = r.ceiling, r.worker
    if (
        c is not None and w is not None and w.cpu is not None and c.cpu is not None
        and of_ceiling < 0.5 and all(k in w.cpu.cpu_s for k in ("worker", "broker", "Redis"))
    ):  # fmt: skip
        need = 0.5 * c.rate
        per_command = {k: w.cpu.us_per_item(k) for k in ("worker", "broker", "Redis")}
        own = need * per_command["worker"] / 1e6
        together = need * sum(per_command.values()) / 1e6
        out.append(
            f"Half of the ceiling is {_num(need)} commands/s. At the costs the worker's run "
            f"measured per command (worker {_num(per_command['worker'])} µs, broker "
            f"{_num(per_command['broker'])} µs, Redis {_num(per_command['Redis'])} µs), that rate "
            f"would keep {own:.2f} cores busy in the worker's process, whose event loop runs on "
            f"one, and {together:.2f} of the machine's {cores} with the broker and Redis. So each "
            f"command could cost the worker's process at most {_num(1e6 / need)} µs, where the "
            f"ceiling's process spent {_num(c.cpu.us_per_item('benchmark'))} µs on each record "
            "only to consume and produce it"
        )
        path = [p.us_per_record for p in r.pieces if p.on_create_path]
        if path:
            out[-1] += (
                f", and a create's own pieces without any I/O take {_num(sum(path), 1)} µs "
                '(table "CPU per create" below)'
            )
        out[-1] += ".\n"
    half = half_load(r)
    if half is not None and half.cpu is not None and half.percentile(99) > 25:
        use = half.cpu
        parts = ", ".join(
            f"{role} {use.cores(role):.2f}" for role in ROLES if not math.isnan(use.cores(role))
        )
        line = (
            f"At 50% of the worker's max ({_num(half.offered_per_s)}/s), the processes kept "
            f"{use.total_cores:.2f} of the {cores} cores busy ({parts})"
        )
        ceiling = r.ceiling_latency
        if ceiling is not None and ceiling.cpu is not None:
            line += (
                f"; the ceiling at the same load {ceiling.cpu.total_cores:.2f}, with p99 "
                f"{_num(ceiling.percentile(99), 1)} ms"
            )
        out.append(line + ".\n")
    return out


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), Python {python}, {platform.system()}"


def markdown(r: Results, plot_name: str | None) -> str:
    out: list[str] = []
    add = out.append
    add(f"# session-worker benchmark, {r.date}\n")
    quick = " (--quick)" if r.quick else ""
    add(f"Started {r.started_utc} UTC, took {r.wall_s / 60:.1f} min{quick}.")
    add(f"Machine: {_machine()}. Services: {r.services}.")
    add(SAME_RUN)
    add("## Targets\n")
    add("| | target | measured | baseline / ratio | |")
    add("|---|---|---|---|---|")
    for row in target_rows(r):
        add("| " + " | ".join(row) + " |")
    add("")
    if plot_name:
        add(f"![throughput, latency, RSS, expiry]({plot_name})\n")
    add("## Throughput (create-heavy mix: 70% creates, 20% updates, 10% deletes)\n")
    if len(r.rounds) > 1:
        add(
            f"{len(r.rounds)} rounds, each the ceiling, the floor and the worker one after the "
            "other on the same preloaded commands (each with a group, key prefix and output "
            "topics of its own). The targets take the median of the rounds' ratios; the "
            "second table shows each contender's run of median rate.\n"
        )
        add("| round | ceiling records/s | floor records/s | worker commands/s "
            "| worker / ceiling | worker / floor |")  # fmt: skip
        add("|---|---|---|---|---|---|")
        for number, rd in enumerate(r.rounds, 1):
            add(
                f"| {number} | {_num(rd.ceiling.rate)} | {_num(rd.floor.rate, 1)} "
                f"| {_num(rd.worker.rate)} | {_num(rd.of_ceiling * 100, 1)}% "
                f"| {_num(rd.of_floor, 1)}x |"
            )
        add("")
    add("| contender | records | steady records/s | steady window s | wall s (start-up incl.) |")
    add("|---|---|---|---|---|")
    for run in (r.ceiling, r.floor, r.worker):
        if run is not None:
            add(
                f"| {run.name} | {run.records:,} | {_num(run.rate, 1)} | {_num(run.window_s, 1)} "
                f"| {_num(run.wall_s, 1)} |"
            )
    w = r.worker
    if w is not None and w.cpu is not None and "worker" in w.cpu.cpu_s and w.records:
        add(
            f"\nWorker process CPU from its first commit to lag 0: {w.cpu.cpu_s['worker']:.1f} s "
            f"for {w.cpu.items:,} commands = {_num(w.cpu.us_per_item('worker'))} µs per command; "
            f"{_num(w.cpu.cores('worker') * 100)}% of one core on average: the worker is "
            "CPU-bound when this is near 100%."
        )
        if not math.isnan(w.batches) and w.batches > 0:
            add(
                f" Its own metrics: {w.batches:,.0f} batches, {w.records / w.batches:,.0f} records "
                f"and {w.batch_seconds / w.batches * 1000:,.0f} ms (fetch to commit) each on "
                f"average (two batches overlap, so these spans add up to more than the wall time: "
                f"{w.batch_seconds / w.wall_s * 100:.0f}%)."
            )
    add(
        "\nSteady rate: records committed from the first commit seen to lag 0 (polled every "
        "0.1 s through the group's committed offsets, the same way for all three). Ceiling: "
        "consume, produce the bytes unchanged, commit per batch (aiokafka, same settings). Floor: "
        "the worker's own decode/decide/Lua step/publish/commit with a batch of one, timed over "
        "a sample. Worker: `python -m worker run` as a subprocess, logging at `info` (JSON) to a "
        "file, as in production.\n"
    )
    if r.loads or r.soak:
        add("## End-to-end latency (command handed to the producer -> its event read back)\n")
        add(
            "| offered | commands/s | sent/s | commands | p50 ms | p95 ms | p99 ms | max ms "
            "| unanswered |"
        )
        add("|---|---|---|---|---|---|---|---|---|")
        rows = [(f"worker, {share:.0%} of max", res) for share, res in r.loads]
        if r.ceiling_latency is not None:
            rows.append(("ceiling (pass-through), 50% of the worker's max", r.ceiling_latency))
        if r.soak is not None:
            rows.append(("worker, soak", r.soak))
        for label, res in rows:
            lat = res.latencies_ms
            add(
                f"| {label} | {_num(res.offered_per_s)} | "
                f"{_num(res.sent / res.seconds if res.seconds else float('nan'))} | {res.sent:,} | "
                f"{_num(res.percentile(50), 1)} | {_num(res.percentile(95), 1)} | "
                f"{_num(res.percentile(99), 1)} | {_num(max(lat) if lat else float('nan'), 1)} "
                f"| {res.missing} |"
            )
        add("")
    out += cores_section(r)
    if r.rss:
        first = r.rss[0].rss / MiB
        peak = max(s.rss for s in r.rss) / MiB
        add("## Worker RSS\n")
        add(
            f"VmRSS of the worker process sampled every second: {first:.1f} MB at start, peak "
            f"{peak:.1f} MB, {r.rss_end / MiB:.1f} MB at the end after {r.commands_total:,} "
            "commands (throughput, latency and soak phases together)."
        )
        flat = rss_flatness(r)
        if flat is not None:
            add(
                f" Over the soak (its first tenth left out as warm-up) it stayed between "
                f"{flat[1] / MiB:.1f} and {flat[2] / MiB:.1f} MB ({flat[0] * 100:.1f}%)."
            )
        add("")
    if r.memory:
        add("## Redis memory per live session (through the worker)\n")
        add(
            "| payload | sessions | bytes/session | keys/session | live STRING value B "
            "| MEMORY USAGE by key kind | record encoding | index encoding |"
        )
        add("|---|---|---|---|---|---|---|---|")
        for m in r.memory:
            usage = ", ".join(f"{k}: {v:,.0f}" for k, v in sorted(m.usage_by_kind.items()))
            add(
                f"| {m.label} | {m.sessions:,} | {_num(m.bytes_per_session)} | "
                f"{_num(m.keys_per_session, 2)} | {_num(m.snapshot_bytes)} | {usage} | "
                f"{m.record_encoding} | {m.index_encoding} |"
            )
        add(
            "\n`used_memory` growth divided by the sessions created; all of a session's keys "
            "are in it (s = live STRING, r = the record STRING, x = the 256 bucket ZSETs; no "
            "outbox is left once the offsets are committed). MEMORY USAGE of `x` is a whole "
            "bucket.\n"
        )
    if r.layouts:
        add("## Candidate layouts (same snapshots, written directly)\n")
        add(
            "| layout | bytes/session | vs current | copy B | CPU to build it µs "
            "| record/meta key |"
        )
        add("|---|---|---|---|---|---|")
        base = r.layouts[0].bytes_per_session if r.layouts else 0
        for lay in r.layouts:
            add(
                f"| {lay.name}: {lay.description} | {_num(lay.bytes_per_session)} | "
                f"{_num((lay.bytes_per_session / base - 1) * 100 if base else 0, 0)}% | "
                f"{_num(lay.archived_bytes)} | {_num(lay.compress_us, 1)} | {lay.record_encoding} |"
            )
        add("")
    if r.expiry is not None:
        e = r.expiry
        add("## Expiry burst\n")
        add(
            f"{e.sessions:,} creates with `expirationSeconds={e.ttl_s:g}` were processed by a "
            "worker whose clock was held at one instant (`python -m bench.clocked`), so all "
            "share one `expiresAt` (same millisecond); the clock was released before they "
            f"expired. Burst processed in {e.burst_s:.1f} s. {e.announced:,} `session.expired` "
            f"events arrived; the median {e.p50_after_s:.2f} s and the last "
            f"{e.last_after_s:.2f} s after `expiresAt`. {e.note}\n"
        )
    if r.pieces:
        add("## CPU per create of the worker's pure-Python pieces (no I/O)\n")
        add("| piece | µs per record |")
        add("|---|---|")
        for p in r.pieces:
            add(f"| {p.name} | {p.us_per_record:.1f} |")
        add("")
    if r.profile is not None:
        prof = r.profile
        add(f"## Profile of the worker process (py-spy, {prof.samples:,} samples)\n")
        add("| area (own time) | share |")
        add("|---|---|")
        for name, share in prof.areas:
            add(f"| {name} | {share * 100:.1f}% |")
        add("\n| function (own time) | share |")
        add("|---|---|")
        for name, share in prof.own[:12]:
            add(f"| `{name}` | {share * 100:.1f}% |")
        add("")
    add("## Settings of this run\n")
    add("| setting | value |")
    add("|---|---|")
    for k, v in r.config.items():
        add(f"| {k} | {v} |")
    if r.notes:
        add("\n## Notes\n")
        for n in r.notes:
            add(f"- {n}")
    return "\n".join(out) + "\n"


def plot(r: Results, path: Path) -> bool:
    """The PNG; False if matplotlib is not installed (it is an optional dev dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    for run in (r.ceiling, r.worker, r.floor):
        if run is None or len(run.samples) < 2:
            continue
        t0 = run.samples[0].t
        xs, ys = [], []
        last = run.samples[0]
        for sample in run.samples[1:]:
            if sample.t - last.t >= 1.0 or sample is run.samples[-1]:  # 1 s windows: no spikes
                xs.append(sample.t - t0)
                ys.append((sample.committed - last.committed) / (sample.t - last.t))
                last = sample
        ax.plot(xs, ys, label=f"{run.name} (steady {run.rate:,.0f}/s)")
    ax.set_title("throughput: committed records/s (1 s windows)")
    ax.set_xlabel("s since start")
    ax.legend()
    ax = axes[0][1]
    labels, p50, p95, p99 = [], [], [], []
    for share, res in r.loads:
        labels.append(f"{share:.0%}\n{res.offered_per_s:,.0f}/s")
        p50.append(res.percentile(50))
        p95.append(res.percentile(95))
        p99.append(res.percentile(99))
    extra = [("ceiling", r.ceiling_latency), ("soak", r.soak)]
    for name, res in ((n, x) for n, x in extra if x is not None):
        labels.append(f"{name}\n{res.offered_per_s:,.0f}/s")
        p50.append(res.percentile(50))
        p95.append(res.percentile(95))
        p99.append(res.percentile(99))
    xs_i = list(range(len(labels)))
    width = 0.27
    ax.bar([x - width for x in xs_i], p50, width, label="p50")
    ax.bar(xs_i, p95, width, label="p95")
    ax.bar([x + width for x in xs_i], p99, width, label="p99")
    ax.axhline(25, color="red", linestyle="--", label="target p99 25 ms")
    ax.set_xticks(xs_i, labels)
    ax.set_title("end-to-end latency by offered load (ms)")
    ax.legend()
    ax = axes[1][0]
    if r.rss:
        t0 = r.worker_started or r.rss[0].t
        ax.plot([s.t - t0 for s in r.rss], [s.rss / MiB for s in r.rss], label="worker RSS MB")
        start, end = r.soak_window
        if end > start:
            ax.axvspan(start - t0, end - t0, alpha=0.15, label="soak")
        ax.axhline(150, color="red", linestyle="--", label="target 150 MB")
        ax.set_ylim(bottom=0)
    if r.soak is not None and r.soak.windows:
        twin = ax.twinx()
        s0 = r.soak_window[0] - (r.worker_started or r.soak_window[0])
        twin.plot(
            [s0 + w.t for w in r.soak.windows],
            [w.p99_ms for w in r.soak.windows],
            color="gray",
            alpha=0.6,
            label="soak p99 ms",
        )
        twin.set_ylabel("soak p99 latency ms")
    ax.set_title("worker RSS over its life")
    ax.set_xlabel("s since worker start")
    ax.legend(loc="lower right")
    ax = axes[1][1]
    if r.expiry is not None and r.expiry.arrivals_after_s:
        arr = sorted(r.expiry.arrivals_after_s)
        ax.plot(arr, range(1, len(arr) + 1), label=f"{r.expiry.sessions:,} expiring together")
        ax.axvline(10, color="red", linestyle="--", label="target 10 s")
        ax.set_xlabel("s after expiresAt")
        ax.set_ylabel("session.expired events received")
        ax.set_title("expiry burst: announcements")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
