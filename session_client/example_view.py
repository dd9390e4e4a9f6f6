"""Example consumer: a local view of the live sessions, built from the events topic.

    python -m session_client.example_view --bootstrap-servers localhost:9092 --until-idle 2

Against a secured Kafka it takes the worker's connection settings from the environment
(`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_*`; see the README).

Prints one line per event (what it did to the view), then the live sessions. The rules every
consumer of the events topic needs, in `SessionView.apply`:

- read each record with `session_client.read_event` (tolerant: unknown fields are ignored, an
  unknown event type is skipped);
- drop a repeated eventId (delivery is at least once), remembering a bounded number of recent
  ids (`session_client.recent.RecentIds`, 10 000 by default, about 2 MB);
- per session, the highest `version` wins: an event at or below the version already applied is
  stale. `session.deleted` / `session.expired` remove the session and leave a bounded tombstone
  (its version and time), so an old event replayed later cannot bring it back, while a create
  that happened after the removal (a new incarnation) is applied even if the worker restarted
  its versions at 1 (it does so when its own tombstone, 24 h, has run out).

It reads every partition from the beginning without a consumer group, so the view is rebuilt at
each start. Events are kept 7 days and a session may live 30: a production view keeps its state
and offsets (or reads `session-worker get`) instead of relying on the topic alone.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.events import (
    CommandRejected,
    Event,
    SessionCompleted,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    SessionUpdated,
)
from contracts.session import Session
from contracts.wire import EVENTS_TOPIC
from session_client.connection import (
    KafkaConnection,
    kafka_client_params,
    kafka_connection_from_env,
    partitions_of,
)
from session_client.errors import InvalidEventError, SettingsError
from session_client.events import UnknownEvent, event_type, read_event
from session_client.recent import DEFAULT_MAX_IDS, RecentIds

SessionEvent = SessionCreated | SessionUpdated | SessionCompleted | SessionDeleted | SessionExpired
Outcome = Literal["applied", "removed", "duplicate", "stale", "ignored", "invalid"]

DEFAULT_MAX_REMOVED = 10_000  # tombstones of removed sessions kept; about 150 bytes each
POLL_MS = 200  # how often the stop event and the idle time are looked at


@dataclass(frozen=True, slots=True)
class ViewEntry:
    version: int
    timestamp_ms: int  # of the event that set it
    session: Session


@dataclass(frozen=True, slots=True)
class Tombstone:
    version: int
    timestamp_ms: int


class SessionView:
    """Live sessions by sessionId; feed it every event in partition order with `apply`."""

    def __init__(
        self, *, max_event_ids: int = DEFAULT_MAX_IDS, max_removed: int = DEFAULT_MAX_REMOVED
    ) -> None:
        self.sessions: dict[str, ViewEntry] = {}
        self.counts: Counter[Outcome] = Counter()
        self.max_removed = max_removed
        self._seen = RecentIds(max_event_ids)
        self._removed: OrderedDict[str, Tombstone] = OrderedDict()

    def apply(self, event: Event | UnknownEvent) -> Outcome:
        outcome = self._apply(event)
        self.counts[outcome] += 1
        return outcome

    def _apply(self, event: Event | UnknownEvent) -> Outcome:
        if isinstance(event, UnknownEvent):
            return "ignored"  # a type added by a newer minor version: not ours to interpret
        if not self._seen.add(event.event_id):
            return "duplicate"
        if isinstance(event, CommandRejected):
            return "ignored"  # nothing changed
        if not self._is_newer(event):
            return "stale"
        if isinstance(event, SessionDeleted | SessionExpired):
            self.sessions.pop(event.session_id, None)
            self._removed[event.session_id] = Tombstone(event.version, event.timestamp)
            self._removed.move_to_end(event.session_id)
            if len(self._removed) > self.max_removed:
                self._removed.popitem(last=False)
            return "removed"
        self.sessions[event.session_id] = ViewEntry(event.version, event.timestamp, event.session)
        self._removed.pop(event.session_id, None)
        return "applied"

    def _is_newer(self, event: SessionEvent) -> bool:
        live = self.sessions.get(event.session_id)
        if live is not None:
            return event.version > live.version
        gone = self._removed.get(event.session_id)
        if gone is None:
            return True
        return event.version > gone.version or (
            isinstance(event, SessionCreated) and event.timestamp > gone.timestamp_ms
        )


def describe(outcome: Outcome, event: Event | UnknownEvent) -> str:
    """One line per event: outcome, type, sessionId, version."""
    session_id = getattr(event, "session_id", None)
    version = getattr(event, "version", None)
    shown_id = session_id if isinstance(session_id, str) else "-"
    shown_version = f"v{version}" if isinstance(version, int) else "-"
    return f"{outcome:<9} {event_type(event):<17} {shown_id} {shown_version}"


async def follow(
    connection: KafkaConnection,
    topic: str,
    view: SessionView,
    *,
    stop: asyncio.Event,
    idle_s: float | None = None,
    on_event: Callable[[Outcome, Event | UnknownEvent], None] = lambda outcome, event: None,
    on_invalid: Callable[[InvalidEventError], None] = lambda error: None,
) -> None:
    """Feeds `view` every event of `topic` from the beginning until `stop` is set or, with
    `idle_s`, nothing new came for that long."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(connection, topic)]
    consumer = AIOKafkaConsumer(
        **kafka_client_params(connection),
        enable_auto_commit=False,  # no group: nothing to commit
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        loop = asyncio.get_running_loop()
        last_record_at = loop.time()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=POLL_MS)
            records = [record for records in batch.values() for record in records]
            if records:
                last_record_at = loop.time()
            elif idle_s is not None and loop.time() - last_record_at >= idle_s:
                return
            for record in records:
                try:
                    event = read_event(record.value)
                except InvalidEventError as error:  # a poison record must not stop the view
                    view.counts["invalid"] += 1
                    on_invalid(error)
                    continue
                on_event(view.apply(event), event)
    finally:
        await consumer.stop()


async def run(args: argparse.Namespace, out: TextIO) -> None:
    view = SessionView(max_event_ids=args.max_event_ids)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await follow(
            args.connection,
            args.topic,
            view,
            stop=stop,
            idle_s=args.until_idle,
            on_event=lambda outcome, event: print(describe(outcome, event), file=out, flush=True),
            on_invalid=lambda error: print(f"invalid event: {error}", file=sys.stderr),
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print(f"live sessions: {len(view.sessions)}", file=out)
    for session_id, entry in sorted(view.sessions.items()):
        name = entry.session.name if isinstance(entry.session.name, str) else ""
        print(f"  {session_id} v{entry.version} {entry.session.status} {name}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m session_client.example_view",
        description="Keep a local view of live sessions from the events topic (an example).",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "localhost:9092",
        help="Kafka brokers (default: $KAFKA_BOOTSTRAP_SERVERS or %(default)s)",
    )
    parser.add_argument(
        "--topic",
        default=os.environ.get("SW_EVENTS_TOPIC") or EVENTS_TOPIC,
        help="events topic (default: $SW_EVENTS_TOPIC or %(default)s)",
    )
    parser.add_argument(
        "--until-idle",
        type=float,
        metavar="SECONDS",
        help="stop once nothing new came for this long (default: run until interrupted)",
    )
    parser.add_argument(
        "--max-event-ids",
        type=int,
        default=DEFAULT_MAX_IDS,
        help="recent eventIds remembered to drop repeats (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        args.connection = replace(
            kafka_connection_from_env(), bootstrap_servers=args.bootstrap_servers
        )
    except SettingsError as exc:
        parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args, sys.stdout))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
