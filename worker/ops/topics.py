"""`session-worker topics`: creates the three topics with settings suited to them, or with
`--check` says how existing ones differ from that plan.

Compared: partition count, replication factor, and the configs `topics` sets (cleanup policy,
retention, maximum record size, min.insync.replicas). Each difference is said in one line.
"""

import asyncio
import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from contracts.wire import COMMANDS_TOPIC, DEAD_LETTER_TOPIC, EVENTS_TOPIC, RETENTION_MS
from session_client.connection import kafka_client_params
from worker.settings import Settings

READY_TIMEOUT_S = 30.0  # a new topic needs its partition leaders elected before use


@dataclass(frozen=True, slots=True)
class TopicPlan:
    name: str
    partitions: int
    config: dict[str, str]


def plan(settings: Settings, partitions: int) -> list[TopicPlan]:
    """The contract's retention per topic (`contracts.wire.RETENTION_MS`: commands and events 7
    days, what replays and consumers rely on; dead letters 30, time for a person to look), under
    the names these settings give the topics."""
    common = {"cleanup.policy": "delete", "max.message.bytes": str(settings.max_record_bytes * 2)}
    named = [
        (settings.commands_topic, COMMANDS_TOPIC),
        (settings.events_topic, EVENTS_TOPIC),
        (settings.dead_letter_topic, DEAD_LETTER_TOPIC),
    ]
    return [
        TopicPlan(name, partitions, {**common, "retention.ms": str(RETENTION_MS[default])})
        for name, default in named
    ]


async def ensure_topics(
    settings: Settings, *, partitions: int, replication_factor: int
) -> dict[str, str]:
    """Creates missing topics; returns each topic's state: `created` or `exists`."""
    admin = AIOKafkaAdminClient(**kafka_client_params(settings.kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = plan(settings, partitions)
        missing = [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=replication_factor,
                topic_configs={**t.config, "min.insync.replicas": str(min(2, replication_factor))},
            )
            for t in wanted
            if t.name not in existing
        ]
        if missing:
            # Another replica may create them at the same moment: that is success too.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            await _until_ready(admin, [t.name for t in missing])
        return {t.name: "exists" if t.name in existing else "created" for t in wanted}
    finally:
        await admin.close()


async def _until_ready(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Waits until every partition of the new topics has a leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while True:
        described = await admin.describe_topics(names)
        ready = all(
            t.get("error_code", 1) == 0
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
            for t in described
        )
        if ready:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"topics not ready after {READY_TIMEOUT_S} s: {names}")
        await asyncio.sleep(0.1)


UNKNOWN_TOPIC = 3  # Kafka's UNKNOWN_TOPIC_OR_PARTITION error code


def expected_configs(config: dict[str, str], replication_factor: int) -> dict[str, str]:
    """The configs `ensure_topics` creates a topic with."""
    return {**config, "min.insync.replicas": str(min(2, replication_factor))}


async def check_topics(
    settings: Settings, *, partitions: int, replication_factor: int
) -> dict[str, list[str]]:
    """For each topic, what differs from the plan (an empty list: as planned)."""
    wanted = plan(settings, partitions)
    names = [t.name for t in wanted]
    admin = AIOKafkaAdminClient(**kafka_client_params(settings.kafka))
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        present = [n for n in names if described.get(n, {}).get("error_code") == 0]
        configs: dict[str, dict[str, str]] = {}
        if present:
            resources = [ConfigResource(ConfigResourceType.TOPIC, n, None) for n in present]
            for response in await admin.describe_configs(resources):
                for resource in response.to_object()["resources"]:
                    configs[resource["resource_name"]] = {
                        c["config_names"]: c["config_value"] for c in resource["config_entries"]
                    }
    finally:
        await admin.close()
    report: dict[str, list[str]] = {}
    for topic in wanted:
        info = described.get(topic.name)
        if info is None or info.get("error_code") == UNKNOWN_TOPIC or not info.get("partitions"):
            report[topic.name] = ["missing"]
            continue
        differences = []
        count = len(info["partitions"])
        if count != topic.partitions:
            differences.append(f"partitions {count}, expected {topic.partitions}")
        replicas = min(len(p["replicas"]) for p in info["partitions"])
        if replicas != replication_factor:
            differences.append(f"replication factor {replicas}, expected {replication_factor}")
        actual = configs.get(topic.name, {})
        for name, value in expected_configs(topic.config, replication_factor).items():
            if actual.get(name) != value:
                differences.append(f"{name} {actual.get(name)}, expected {value}")
        report[topic.name] = differences
    return report
