"""`session-worker`: run the worker, set up and check topics, operate and try it.

Every setting is a flag as well as an environment variable (see `worker.settings`); flags win.
Exit codes: 0 done (or healthy), 1 failed (or unhealthy, or something to look at), 2 bad usage
or a bad setting, 130 interrupted.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import IO, TYPE_CHECKING, Any, NoReturn, get_args

import structlog
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from worker import event_loop
from worker.errors import AccessDeniedError, SettingsError
from worker.gc_tuning import tune_for_worker
from worker.logs import configure_logging
from worker.settings import ENV, SECRET_FIELDS, Settings

if TYPE_CHECKING:
    from worker.ops.dlq import DeadLetter

DEFAULT_PARTITIONS = 12  # room to scale to 12 replicas; partitions can be added, never removed


def _event_types() -> list[str]:
    from contracts.events import Event

    return [str(t.__struct_config__.tag) for t in get_args(Event)]


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "settings (flags override the environment; secrets only from the environment or "
        "<NAME>_FILE, as argv is visible to every user of the host)"
    )
    for f in fields(Settings):
        if f.name in SECRET_FIELDS - {"redis_url"}:
            continue
        kind = f.type if f.type in (int, float) else str
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            # Unset flags leave no attribute, so a flag given before a sub-command survives.
            default=argparse.SUPPRESS,
            metavar=ENV[f.name],
            help=f"default: {f.default}",
        )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    return Settings.from_env(**overrides)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _position(text: str) -> tuple[int, int]:
    from worker.ops.dlq import parse_position

    try:
        return parse_position(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def version_line() -> str:
    """What `--version` prints: the release (the VERSION file the package was built from) and the
    Redis record format it writes, which decides whether two releases may run side by side."""
    from worker.metrics import running_version
    from worker.session_record import RECORD_FORMAT

    return f"session-worker {running_version()} (record format {RECORD_FORMAT})"


class _VersionAction(argparse.Action):
    """argparse's `action="version"`, but the line is built only when asked for: it imports
    worker.metrics (prometheus_client, ~40 ms) that an exec probe's `check` does not need."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> NoReturn:
        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="session-worker",
        description="Keeps Vapi sessions in Redis and emits their lifecycle events to Kafka.",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the version and the Redis record format it writes, and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=description or summary)

    run = command(
        "run",
        "consume commands and emit events until stopped",
        "Consumes commands and emits events until SIGTERM/SIGINT; serves /metrics, /healthz "
        "and /readyz on SW_HTTP_HOST:SW_HTTP_PORT.",
    )
    _add_settings_flags(run)

    topics = command(
        "topics",
        "create (or --check) the commands, events and dead-letter topics",
        "Creates the three topics that are missing, with their partitions, retention and "
        "cleanup settings; existing topics are left alone. With --check, changes nothing and "
        "exits 1 saying what differs from what would be created.",
    )
    topics.add_argument("--partitions", type=_positive, default=DEFAULT_PARTITIONS)
    topics.add_argument("--replication-factor", type=_positive, default=1)
    topics.add_argument(
        "--check", action="store_true", help="only compare; exit 1 if anything differs"
    )
    _add_settings_flags(topics)

    publish = command(
        "publish",
        "send commands from a JSON-lines file (or stdin), keyed by sessionId",
        "Sends one command per line to the commands topic, keyed by its sessionId, and reports "
        "how many Kafka acknowledged. Lines that are not a JSON object with a sessionId are "
        "reported with their line numbers and not sent (exit code 1).",
    )
    publish.add_argument("file", nargs="?", default="-", metavar="FILE", help="default: stdin")
    _add_settings_flags(publish)

    tail = command(
        "tail",
        "follow lifecycle events, one JSON line each",
        "Prints events from the events topic as they arrive (from the end unless "
        "--from-beginning), without joining a consumer group. Ctrl-C to stop.",
    )
    tail.add_argument(
        "--type",
        dest="types",
        action="append",
        choices=_event_types(),
        metavar="TYPE",
        help="only this event type (repeatable): " + ", ".join(_event_types()),
    )
    tail.add_argument("--session", metavar="SESSION_ID", help="only this session's events")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest event")
    tail.add_argument("--limit", type=_positive, metavar="N", help="stop after N events")
    _add_settings_flags(tail)

    get = command("get", "print a live session's snapshot and remaining TTL")
    get.add_argument("session_id", metavar="SESSION_ID")
    _add_settings_flags(get)

    dlq = command(
        "dlq",
        "list dead letters with their reasons; `dlq replay` re-publishes chosen ones",
        "Lists the dead-letter topic: position (PARTITION:OFFSET), time, reason from the "
        "headers, key and source record. Values are never printed (they may hold secrets).",
    )
    _add_dlq_list_flags(dlq)
    _add_settings_flags(dlq)
    dlq_sub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION")
    dlq_list = dlq_sub.add_parser("list", help="list dead letters (the default)")
    _add_dlq_list_flags(dlq_list)
    _add_settings_flags(dlq_list)
    replay = dlq_sub.add_parser(
        "replay",
        help="re-publish chosen dead letters to the commands topic",
        description="Re-publishes dead letters to the commands topic with their original key "
        "and value; the worker processes them as new commands.",
    )
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--offset",
        dest="offsets",
        action="append",
        type=_position,
        metavar="P:O",
        help="the dead letter at PARTITION:OFFSET of the dead-letter topic (repeatable)",
    )
    chosen.add_argument("--all", action="store_true", help="every dead letter in the topic")
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    _add_settings_flags(replay)

    check = command(
        "check",
        "exec probe: exit 0 when this host's worker is ready, 1 when not",
        "Asks the worker's /readyz on this host (SW_HTTP_PORT), or /healthz with --live; "
        "--deep instead checks Kafka (and the topics) and Redis directly with the settings.",
    )
    how = check.add_mutually_exclusive_group()
    how.add_argument("--live", action="store_true", help="liveness (/healthz) instead")
    how.add_argument("--deep", action="store_true", help="check Kafka and Redis directly")
    check.add_argument("--timeout-s", type=float, default=3.0, help="default: 3.0")
    _add_settings_flags(check)
    return parser


def _add_dlq_list_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="one JSON object a line"
    )


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"session-worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "publish":
            return _publish(settings, args.file)
        if args.command == "run":
            tune_for_worker()
        return event_loop.run(_dispatch(args, settings), settings.event_loop)
    except SettingsError as exc:  # found when used: a certificate or token provider that fails
        print(f"session-worker: {exc}", file=sys.stderr)
        return 2
    except AccessDeniedError as exc:
        # One line an operator can act on: which service, which settings, what it answered.
        structlog.get_logger("worker").error(
            "cannot connect",
            service=exc.service,
            settings=", ".join(exc.settings),
            answer=exc.answer,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (KafkaError, RedisError, OSError, LookupError) as exc:
        # Unreachable services, missing topics or files: one line, not a traceback.
        print(f"session-worker {args.command}: {exc}", file=sys.stderr)
        return 1


def _publish(settings: Settings, path: str) -> int:
    from worker.ops.progress import progress
    from worker.ops.publish import publish_lines

    with contextlib.ExitStack() as stack:
        stream: IO[bytes]
        if path == "-":
            stream, total = sys.stdin.buffer, None
        else:
            stream = stack.enter_context(open(path, "rb"))
            total = sum(1 for _ in stream)
            stream.seek(0)
        advance = stack.enter_context(progress(f"publishing {path}", total))
        report = asyncio.run(publish_lines(settings, stream, advance=advance))
    for number, why in report.invalid:
        print(f"line {number}: {why}; not sent", file=sys.stderr)
    for number, error in report.failed:
        print(f"line {number}: not acknowledged: {error}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM, for commands that run until stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    match args.command:
        case "run":
            from worker.app import Worker
            from worker.errors import LivenessError
            from worker.metrics import running_version
            from worker.telemetry import tracing_from_env

            tracing = tracing_from_env(group_id=settings.group_id, version=running_version())
            try:
                await Worker(settings, tracing=tracing).run()
            except LivenessError as exc:
                print(f"session-worker: not live: {exc}; exiting", file=sys.stderr)
                return 1
            return 0
        case "topics":
            return await _topics(args, settings)
        case "tail":
            from worker.ops.tail import tail_events

            await tail_events(
                settings,
                sys.stdout,
                _stop_on_signals(),
                types=args.types or (),
                session_id=args.session,
                from_beginning=args.from_beginning,
                limit=args.limit,
                on_ready=lambda text: print(text, file=sys.stderr, flush=True),
            )
            return 0
        case "get":
            from worker.ops.get import describe_session

            report = await describe_session(settings, args.session_id)
            print(report.text, file=sys.stdout if report.found else sys.stderr)
            return 0 if report.found else 1
        case "dlq":
            if getattr(args, "dlq_command", None) == "replay":
                return await _dlq_replay(args, settings)
            return await _dlq_list(settings, as_json=getattr(args, "json", False))
        case "check":
            return await _check(args, settings)
    raise AssertionError(f"unknown command {args.command!r}")


async def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ops.topics import check_topics, ensure_topics

    shape = {"partitions": args.partitions, "replication_factor": args.replication_factor}
    states = {} if args.check else await ensure_topics(settings, **shape)
    differences = await check_topics(settings, **shape)
    for name, differs in differences.items():
        state = states.get(name, "ok" if not differs else "differs")
        detail = f": {'; '.join(differs)}" if differs else ""
        print(f"{name}: {state}{detail}")
    if args.check and any(differences.values()):
        print("topics differ from the plan (see above)", file=sys.stderr)
        return 1
    return 0


async def _dlq_list(settings: Settings, *, as_json: bool) -> int:
    import json

    from worker.ops.dlq import read_dead_letters

    count = 0
    async for letter in read_dead_letters(settings):
        count += 1
        print(json.dumps(letter.describe()) if as_json else letter.line())
    print(f"{count} dead letter(s) in {settings.dead_letter_topic}", file=sys.stderr)
    return 0


async def _dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ops.dlq import count_dead_letters, replay
    from worker.ops.progress import progress

    chosen = None if args.all else list(args.offsets)
    total = await count_dead_letters(settings) if chosen is None else len(set(chosen))
    listed: list[str] = []

    def show(letter: "DeadLetter") -> None:
        if args.dry_run:
            listed.append(letter.line())

    with progress("replaying dead letters", total) as advance:
        report = await replay(
            settings, chosen, dry_run=args.dry_run, advance=advance, on_letter=show
        )
    if args.dry_run:
        for line in listed:
            print(line)
        print(f"dry run: {len(listed)} dead letter(s) would be replayed to {report.topic}")
        if report.missing:
            print(f"not found: {', '.join(report.missing)}", file=sys.stderr)
        return 0 if not report.missing else 1
    for position, error in report.failed:
        print(f"{position}: not acknowledged: {error}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


async def _check(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ops.check import check_deep, check_http, probe_host

    if args.deep:
        results = await check_deep(settings, args.timeout_s)
    elif settings.http_port == 0:
        print("check: SW_HTTP_PORT=0 turns the HTTP server off; use --deep", file=sys.stderr)
        return 1
    else:
        path = "/healthz" if args.live else "/readyz"
        results = [await check_http(probe_host(settings), settings.http_port, path, args.timeout_s)]
    for result in results:
        print(result.line(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if all(r.ok for r in results) else 1
