"""Reads what came out (events topic, Redis, the group's offsets) and checks it against the
ledger of what went in. Every finding is a violation with the session it concerns."""

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.consumer import AIOKafkaConsumer

from tests.chaos.load import Ledger
from tests.support import Record, stored_session
from worker.keys import KeySpace
from worker.settings import Settings

TERMINAL = {"session.deleted", "session.expired"}

# What the verifier reads Redis with: one server, or a cluster (`SW_REDIS_CLUSTER`).
RedisReader = aioredis.Redis | aioredis.RedisCluster


def redis_reader(settings: Settings) -> RedisReader:
    """A fresh client for the Redis the workers of `settings` use, a cluster client for a
    cluster (a single-server client would be answered MOVED for most keys)."""
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(settings.redis_url)
    return aioredis.Redis.from_url(settings.redis_url)


@dataclass
class Report:
    scenario: str
    sent: int = 0
    applied: int = 0
    events: int = 0
    distinct_ids: int = 0
    lost: int = 0
    duplicated_transitions: int = 0
    recovery_s: float = 0.0
    missing_sessions: int = 0  # announced as created, neither in Redis nor deleted/expired
    lag: int = 0
    violations: list[str] = field(default_factory=list)

    def row(self) -> str:
        return (
            f"| {self.scenario} | {self.sent} | {self.applied} | {self.events} | "
            f"{self.distinct_ids} | {self.lost} | {self.duplicated_transitions} | "
            f"{self.recovery_s:.1f} | {self.missing_sessions} |"
        )


TABLE_HEADER = (
    "| scenario | commands sent | applied | events | distinct eventIds | lost | "
    "duplicated transitions | recovery s | announced sessions missing |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


async def group_lag(bootstrap_servers: str, group_id: str, topic: str) -> int:
    """Records of `topic` the group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
        (described,) = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        ends = await consumer.end_offsets(tps)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


def longest_silence_s(records: list[Record], start_ms: int, end_ms: int) -> float:
    """The longest stretch in which no event reached Kafka: the outage consumers saw."""
    times = sorted([start_ms, *(r.timestamp_ms for r in records), end_ms])
    times = [t for t in times if start_ms <= t <= end_ms]
    return max((b - a for a, b in itertools.pairwise(times)), default=0) / 1000


def differing_fields(first: dict[str, Any], again: dict[str, Any]) -> list[str]:
    """The fields two copies of an event disagree on (one level into objects: `session.name`)."""
    found: list[str] = []
    for key in sorted(first.keys() | again.keys()):
        a, b = first.get(key), again.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += [
                f"{key}.{sub}" for sub in sorted(a.keys() | b.keys()) if a.get(sub) != b.get(sub)
            ]
        elif a != b:
            found.append(key)
    return found


async def verify(
    scenario: str,
    ledger: Ledger,
    records: list[Record],
    redis_client: RedisReader,
    key_prefix: str,
    *,
    expect_expired: set[str] | None = None,
) -> Report:
    report = Report(scenario, sent=len(ledger.sent), events=len(records))
    first_by_id: dict[str, bytes] = {}
    per_session: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        event = json.loads(r.value or b"{}")
        eid = event["eventId"]
        if eid in first_by_id:
            if first_by_id[eid] != r.value:
                differ = differing_fields(json.loads(first_by_id[eid]), event)
                report.violations.append(f"{eid}: repeated with different content: {differ}")
            continue
        first_by_id[eid] = r.value or b""
        per_session.setdefault(event.get("sessionId", "?"), []).append(event)
    report.distinct_ids = len(first_by_id)

    keys = KeySpace(key_prefix)
    for sid, sent in ledger.by_session.items():
        events = per_session.get(sid, [])
        for e in events:
            if e["type"] == "command.rejected":
                report.violations.append(f"{sid}: valid command rejected: {e['error']}")
        transitions = [e for e in events if e["type"] != "command.rejected"]
        by_command: dict[str, int] = {}
        for e in transitions:
            if "commandId" in e:
                by_command[e["commandId"]] = by_command.get(e["commandId"], 0) + 1
        report.duplicated_transitions += sum(n - 1 for n in by_command.values())
        missing = [s.command_id for s in sent if s.command_id not in by_command]
        report.lost += len(missing)
        report.applied += sum(1 for s in sent if s.command_id in by_command)
        if missing:
            report.violations.append(f"{sid}: no event for {missing}")
        order = [e["commandId"] for e in transitions if "commandId" in e]
        if order != [s.command_id for s in sent if s.command_id in by_command]:
            report.violations.append(f"{sid}: transitions out of command order")
        versions = [e["version"] for e in transitions]
        if versions != list(range(1, len(versions) + 1)):
            report.violations.append(f"{sid}: versions {versions}")
        if [e["type"] for e in transitions].count("session.created") != 1:
            report.violations.append(f"{sid}: not exactly one session.created")
        terminal = [i for i, e in enumerate(transitions) if e["type"] in TERMINAL]
        if len(terminal) > 1 or (terminal and terminal[0] != len(transitions) - 1):
            report.violations.append(f"{sid}: events after a terminal one")
        expired = [e for e in transitions if e["type"] == "session.expired"]
        if expect_expired is not None and sid in expect_expired and len(expired) != 1:
            report.violations.append(f"{sid}: {len(expired)} session.expired, expected 1")
        stored = await redis_client.get(keys.session(sid).live)
        last = transitions[-1] if transitions else None
        if last is None or last["type"] in TERMINAL:
            if stored is not None:
                report.violations.append(f"{sid}: live in Redis after {last and last['type']}")
        elif stored is None and any(e["type"] == "session.created" for e in transitions):
            # Announced as created and not deleted or expired (with its event), yet gone: a
            # write Redis acknowledged and then lost (a failover to a replica that lacked it).
            report.missing_sessions += 1
            report.violations.append(f"{sid}: announced as created, missing from Redis")
        elif stored is None or stored_session(stored) != last["session"]:
            report.violations.append(f"{sid}: Redis differs from the last applied command")
    return report
