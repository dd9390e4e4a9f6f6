"""`python -m bench.ab`: end-to-end latency of worker variants at one offered load, interleaved.

Each round offers the same load (creates, `--rate` commands/s for `--seconds`) to a fresh worker
process per variant (its settings changed by `NAME:VAR=VALUE,...`), in alternating order, on
fresh topics, and, with `--pass-through`, to the raw aiokafka pass-through right after. It
prints, per variant, the median over rounds of p50/p95/p99 and of the CPU µs per command of the
worker, the broker and Redis, and each round's own figures: latency on this shared 2-core
machine moves by several times between identical runs, so only what holds round after round
counts. Issue 27's prefetching consumer was measured with it (README, "Tried and not kept").
"""

import argparse
import asyncio
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import baselines
from bench.commands import CREATE_HEAVY, CommandStream
from bench.cpu_budget import CpuMeter
from bench.fixed_load import base_settings, offer_to_worker, serve, services_meter
from bench.kafkaio import make_topics
from bench.offered import LoadResult, offer
from bench.runner import _settings
from devenv.services import Services
from worker.settings import Settings

CEILING = "pass-through"


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    return name, env


def _row(label: str, res: LoadResult) -> dict[str, float | str]:
    row: dict[str, float | str] = {
        "variant": label,
        "p50": res.percentile(50),
        "p95": res.percentile(95),
        "p99": res.percentile(99),
        "missing": res.missing,
    }
    if res.cpu is not None:
        for role in res.cpu.cpu_s:
            row[role] = res.cpu.us_per_item(role)
    return row


async def run(args: argparse.Namespace, services: Services) -> None:
    base = base_settings(services)
    logs = Path(tempfile.mkdtemp(prefix="ab-"))
    print(f"worker logs: {logs}", flush=True)
    meter = services_meter(services)
    variants = [_variant(v) for v in args.variant]
    rows: list[dict[str, float | str]] = []
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for name, env in order:
            s = _settings(base, f"ab{os.getpid()}-{r}-{name}", f"ab{r}{name}")
            res = await offer_to_worker(
                s,
                logs / f"worker-{r}-{name}.log",
                CommandStream(args.seed + r, mix=CREATE_HEAVY, tag=name[:3]),
                rate=args.rate,
                seconds=args.seconds,
                partitions=args.partitions,
                meter=meter,
                extra_env=env,
            )
            rows.append({"round": r, **_row(name, res)})
            _print(rows[-1])
            if args.pass_through:
                rows.append({"round": r, **_row(CEILING, await _pass_through(args, s, meter))})
                _print(rows[-1])
    print("\nmedians over rounds:")
    names = [n for n, _ in variants] + ([CEILING] if args.pass_through else [])
    for name in dict.fromkeys(names):
        mine = [row for row in rows if row["variant"] == name]
        keys = [k for k in mine[0] if k not in ("round", "variant")]
        medians = {k: statistics.median(float(row[k]) for row in mine if k in row) for k in keys}
        _print({"variant": name, **medians})


async def _pass_through(args: argparse.Namespace, s: Settings, meter: CpuMeter) -> LoadResult:
    pt = s.replace(
        commands_topic=s.commands_topic + "-pt",
        events_topic=s.events_topic + "-pt",
        group_id=s.group_id + "-pt",
    )
    await make_topics(pt, args.partitions)
    stop = asyncio.Event()
    task = asyncio.create_task(baselines.pass_through(pt, pt.events_topic, stop))
    try:
        return await offer(
            pt.kafka, pt.commands_topic, pt.events_topic,
            CommandStream(args.seed + 99, mix=CREATE_HEAVY, tag="pt"),
            rate_per_s=args.rate, seconds=args.seconds, warmup_s=2.0, meter=meter,
        )  # fmt: skip
    finally:
        stop.set()
        await task


def _print(row: dict[str, float | str]) -> None:
    parts = [f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()]
    print("  " + ", ".join(parts), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    p.add_argument(
        "--variant",
        action="append",
        required=True,
        help="NAME:SW_SETTING=value,... (repeat; NAME: alone runs the defaults)",
    )
    p.add_argument("--rate", type=float, default=5000.0, help="commands/s offered")
    p.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--partitions", type=int, default=12)
    p.add_argument("--pass-through", action="store_true", help="measure it after each variant")
    p.add_argument("--seed", type=int, default=20261207)
    args = p.parse_args(argv)
    serve(lambda services: run(args, services))


if __name__ == "__main__":
    main()
