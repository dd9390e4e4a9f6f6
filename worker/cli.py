"""`session-worker`: run the worker, set up topics, try it locally.

Every setting is a flag as well as an environment variable (see `worker.settings`); flags win.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import fields

from worker.errors import SettingsError
from worker.logs import configure_logging
from worker.settings import ENV, Settings


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (flags override the environment)")
    for f in fields(Settings):
        kind = f.type if f.type in (int, float) else str
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=None,
            metavar=ENV[f.name],
            help=f"default: {f.default}",
        )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    return Settings.from_env(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="session-worker",
        description="Keeps Vapi sessions in Redis and emits their lifecycle events to Kafka.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="consume commands and emit events until stopped")
    _add_settings_flags(run)

    topics = sub.add_parser("topics", help="create the commands, events and dead-letter topics")
    topics.add_argument("--partitions", type=int, default=12, help="partitions per topic")
    topics.add_argument("--replication-factor", type=int, default=1)
    _add_settings_flags(topics)

    get = sub.add_parser("get", help="print a live session's snapshot and remaining TTL")
    get.add_argument("session_id", metavar="SESSION_ID")
    _add_settings_flags(get)

    dev = sub.add_parser(
        "dev", help="start local Kafka and Redis, run the worker on demo commands, print events"
    )
    dev.add_argument(
        "--stay", action="store_true", help="keep the worker and services running after the demo"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args) if args.command != "dev" else Settings.from_env()
    except SettingsError as exc:
        print(f"session-worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "dev":
            return _dev(settings, stay=args.stay)
        return asyncio.run(_dispatch(args, settings))
    except KeyboardInterrupt:
        return 130


def _dev(settings: Settings, *, stay: bool) -> int:
    """Starts (or uses) Kafka and Redis, then runs the demo against them."""
    from worker.demo import run_demo
    from worker.devenv.services import open_services

    with open_services() as services:
        print(f"Kafka {services.bootstrap_servers}, Redis {services.redis_url} ({services.source})")
        local = settings.replace(
            kafka_bootstrap_servers=services.bootstrap_servers, redis_url=services.redis_url
        )
        return asyncio.run(run_demo(local, stay=stay))


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    match args.command:
        case "run":
            from worker.app import Worker

            await Worker(settings).run()
            return 0
        case "topics":
            from worker.topics import ensure_topics

            states = await ensure_topics(
                settings, partitions=args.partitions, replication_factor=args.replication_factor
            )
            for name, state in states.items():
                print(f"{name}: {state}")
            return 0
        case "get":
            from worker.inspect import describe_session

            report = await describe_session(settings, args.session_id)
            print(report.text, file=sys.stdout if report.found else sys.stderr)
            return 0 if report.found else 1
    raise AssertionError(f"unknown command {args.command!r}")
