"""``python -m devenv resolve|up|demo``: warm the Kafka cache, run both services, or run the
worker on demo commands against them (`make dev`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devenv.kafka_local import LocalKafka, kafka_version_of, resolve_classpath
from devenv.services import open_services


def _resolve(args: argparse.Namespace) -> int:
    classpath = resolve_classpath(kafka_version=args.kafka_version, force=args.force)
    if args.warm:
        # One start/stop leaves the formatted-storage template and the JVM class
        # archive in .cache/kafka/, so the first test's broker starts at full speed.
        with LocalKafka(classpath=classpath) as kafka:
            print(f"broker up in {kafka.last_start_seconds:.1f}s", file=sys.stderr)
    print(kafka_version_of(classpath))
    return 0


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before anything starts, so Ctrl-C/SIGTERM during start-up also
    # ends in a clean stop of whatever is already running.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with open_services(appendonly=args.appendonly) as services:
        lines = [
            f"KAFKA_BOOTSTRAP_SERVERS={services.bootstrap_servers}",
            f"REDIS_URL={services.redis_url}",
        ]
        if args.env_file:
            # Written whole, then renamed: a reader polling for it never sees half.
            target = Path(args.env_file)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text("".join(f"{line}\n" for line in lines))
            tmp.replace(target)
        print(*lines, sep="\n", flush=True)
        print(f"services from: {services.source}; Ctrl-C to stop", file=sys.stderr, flush=True)
        handles = [h for h in (services.kafka, services.redis) if h is not None]
        while not stop.wait(2.0):
            dead = [type(h).__name__ for h in handles if not h.running]
            if dead:
                print(f"stopped unexpectedly: {', '.join(dead)}", file=sys.stderr)
                return 1
        if args.env_file:
            Path(args.env_file).unlink(missing_ok=True)
    print("stopped", file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Starts (or uses) Kafka and Redis, then runs the demo against them."""
    import asyncio

    from devenv.demo import run_demo
    from worker.logs import configure_logging
    from worker.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    with open_services() as services:
        print(f"Kafka {services.bootstrap_servers}, Redis {services.redis_url} ({services.source})")
        local = settings.replace(
            kafka_bootstrap_servers=services.bootstrap_servers, redis_url=services.redis_url
        )
        return asyncio.run(run_demo(local, stay=args.stay))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv")
    sub = parser.add_subparsers(dest="command", required=True)
    resolve = sub.add_parser(
        "resolve", help="resolve and cache the Kafka classpath; print the version"
    )
    resolve.add_argument("--kafka-version", help="override the pom's kafka.version")
    resolve.add_argument("--force", action="store_true", help="ignore the cached classpath")
    resolve.add_argument(
        "--warm", action="store_true", help="also start and stop a broker once to fill the caches"
    )
    resolve.set_defaults(func=_resolve)
    up = sub.add_parser("up", help="start Kafka and Redis; run until Ctrl-C or SIGTERM")
    up.add_argument("--appendonly", action="store_true", help="Redis with AOF")
    up.add_argument("--env-file", help="also write the two variables to this file")
    up.set_defaults(func=_up)
    demo = sub.add_parser(
        "demo", help="start local Kafka and Redis, run the worker on demo commands, print events"
    )
    demo.add_argument(
        "--stay", action="store_true", help="keep the worker and services running after the demo"
    )
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
