"""Creates (or checks) the three topics with settings suited to them."""

import asyncio
import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.kafka_connection import KafkaConnection, kafka_client_params
from worker.settings import Settings

DAY_MS = 24 * 3600 * 1000
READY_TIMEOUT_S = 30.0  # a new topic needs its partition leaders elected before use


@dataclass(frozen=True, slots=True)
class TopicPlan:
    name: str
    partitions: int
    config: dict[str, str]


def plan(settings: Settings, partitions: int) -> list[TopicPlan]:
    """Commands and events keep 7 days (Kafka's default, and what replays and consumers rely on);
    dead letters keep 30 days, time for a person to look at them."""
    common = {"cleanup.policy": "delete", "max.message.bytes": str(settings.max_record_bytes * 2)}
    return [
        TopicPlan(settings.commands_topic, partitions, {**common, "retention.ms": str(7 * DAY_MS)}),
        TopicPlan(settings.events_topic, partitions, {**common, "retention.ms": str(7 * DAY_MS)}),
        TopicPlan(
            settings.dead_letter_topic, partitions, {**common, "retention.ms": str(30 * DAY_MS)}
        ),
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


async def partitions_of(connection: KafkaConnection, topic: str) -> list[int]:
    """The partition ids of an existing topic (readers assign all of them)."""
    admin = AIOKafkaAdminClient(**kafka_client_params(connection))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        if described.get("error_code", 0) != 0:
            raise LookupError(f"topic {topic!r} does not exist")
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()
