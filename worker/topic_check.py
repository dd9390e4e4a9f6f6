"""`session-worker topics --check`: do the three topics exist as `topics` would create them?

Compared: partition count, replication factor, and the configs `topics` sets (cleanup policy,
retention, maximum record size, min.insync.replicas). Each difference is said in one line.
"""

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from worker.kafka_connection import kafka_client_params
from worker.settings import Settings
from worker.topics import plan

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
