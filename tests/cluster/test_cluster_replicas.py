"""Worker processes sharing one Redis Cluster: a few thousand valid commands, every one applied
exactly once (checked like the chaos suite), and the throughput printed.

The same run with 1, 2 and 3 replicas gives the figures of docs/capacity.md. Kafka, the three
Redis nodes, the load and the workers all share this machine's two cores, so the numbers say
how the worker scales here, not what it does on its own cores."""

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from devenv.ports import free_port
from devenv.redis_cluster import LocalRedisCluster
from tests.chaos.load import Ledger
from tests.chaos.verify import group_lag, verify
from tests.cluster.conftest import require_wiring
from tests.factories import create_command, delete_command, update_command
from tests.ops.helpers import http_get
from tests.support import Services, TopicReader, WorkerProcess, fresh_settings
from worker.settings import Settings

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow]

# A few thousand by default; SW_TEST_CLUSTER_COMMANDS=12000 for a longer measurement.
COMMANDS = int(os.environ.get("SW_TEST_CLUSTER_COMMANDS", "4000"))
PARTITIONS = 6  # room for three replicas with two partitions each


def _load(count: int, seed: int) -> list[dict[str, Any]]:
    """Creates, updates, completions and deletes, each valid in the order sent."""
    rng = random.Random(seed)
    active: list[str] = []
    commands: list[dict[str, Any]] = []
    while len(commands) < count:
        r = rng.random()
        if not active or r < 0.35:
            command = create_command()
            active.append(command["sessionId"])
        else:
            sid = rng.choice(active)
            if r < 0.80:
                command = update_command(sid, name=f"n{rng.randrange(10**6)}")
            else:
                active.remove(sid)
                command = (
                    update_command(sid, status="completed") if r < 0.88 else delete_command(sid)
                )
        commands.append(command)
    return commands


async def _wait_ready(ports: list[int], timeout_s: float = 60.0) -> None:
    """Until every worker's /readyz says yes: each owns partitions, so the group is settled."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = []
        for port in ports:
            try:
                statuses.append((await http_get(port, "/readyz"))[0])
            except OSError:
                statuses.append(0)
        if all(s == 200 for s in statuses):
            return
        assert time.monotonic() < deadline, f"workers not ready: {statuses}"
        await asyncio.sleep(0.2)


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (0 if unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _redis_cpu_s(client: aioredis.RedisCluster) -> float:
    """CPU seconds used by all primaries so far."""
    total = 0.0
    for node in client.get_primaries():
        info = await client.info("cpu", target_nodes=node)
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


async def _publish(settings: Settings, commands: list[dict[str, Any]], ledger: Ledger) -> None:
    """Sends every command as fast as the producer can (encoded beforehand, awaited at once)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5
    )
    encoded = [(json.dumps(c).encode(), c["sessionId"].encode()) for c in commands]
    await producer.start()
    try:
        sent = [
            await producer.send(settings.commands_topic, value, key=key) for value, key in encoded
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    for command in commands:
        ledger.add(command)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("replicas", [1, 2, 3])
async def test_replicas_on_a_cluster_apply_every_command_once(
    replicas: int,
    services: Services,
    redis_cluster: LocalRedisCluster,
    redis_client: aioredis.RedisCluster,
    tmp_path: Path,
) -> None:
    require_wiring()
    settings = await fresh_settings(
        services.bootstrap_servers,
        redis_cluster.url,
        partitions=PARTITIONS,
        redis_cluster=True,
        http_host="127.0.0.1",
    )
    ports = [free_port() for _ in range(replicas)]
    workers = [
        WorkerProcess(settings.replace(http_port=port), tmp_path / f"worker-{i}.log")
        for i, port in enumerate(ports)
    ]
    events = TopicReader(settings.kafka_bootstrap_servers, settings.events_topic)
    dead_letters = TopicReader(settings.kafka_bootstrap_servers, settings.dead_letter_topic)
    await events.start()
    await dead_letters.start()
    commands = _load(COMMANDS, seed=replicas)
    ledger = Ledger()
    try:
        for w in workers:
            w.start()
        await _wait_ready(ports)
        pids = [w._proc.pid if w._proc else None for w in workers]
        kafka_pid = services.kafka.pid if services.kafka else None
        cpu_before = [sum(_cpu_s(p) for p in pids), await _redis_cpu_s(redis_client)]
        cpu_before.append(_cpu_s(kafka_pid))
        started = time.time()
        await _publish(settings, commands, ledger)
        published_s = time.time() - started
        records = await events.wait_count(COMMANDS, timeout_s=180)
        elapsed_s = max(r.timestamp_ms for r in records) / 1000 - started
        cpu_after = [sum(_cpu_s(p) for p in pids), await _redis_cpu_s(redis_client)]
        cpu_after.append(_cpu_s(kafka_pid))
        records = await events.settle(2.0)  # anything doubled shows up now
        assert await dead_letters.settle(0.5) == []
    finally:
        codes = []
        for w in workers:
            codes.append(w.terminate() if w.alive else w.returncode)
            w.ensure_stopped()
        await events.stop()
        await dead_letters.stop()
    assert codes == [0] * replicas

    # verify() only reads session keys one by one, which a cluster client routes by key.
    store = cast("aioredis.Redis", redis_client)
    report = await verify(
        f"{replicas} replicas on Redis Cluster", ledger, records, store, settings.key_prefix
    )
    assert report.violations == []
    assert report.sent == report.applied == report.distinct_ids == len(records) == COMMANDS
    assert report.lost == report.duplicated_transitions == 0
    lag = await group_lag(
        settings.kafka_bootstrap_servers, settings.group_id, settings.commands_topic
    )
    assert lag == 0
    rate = COMMANDS / elapsed_s
    command_bytes = sum(len(json.dumps(c)) for c in commands) / COMMANDS
    event_bytes = sum(len(r.value or b"") for r in records) / len(records)
    print(
        f"\n{replicas} replica(s), Redis Cluster (3 primaries), {PARTITIONS} partitions: "
        f"{COMMANDS} commands in {elapsed_s:.2f} s = {rate:.0f} commands/s "
        f"({rate / replicas:.0f} per replica; publishing took {published_s:.2f} s); "
        f"mean command {command_bytes:.0f} B, event {event_bytes:.0f} B; "
        "CPU ms per command: "
        + ", ".join(
            f"{name} {(after - before) * 1000 / COMMANDS:.3f}"
            for name, before, after in zip(
                ("workers", "redis", "kafka"), cpu_before, cpu_after, strict=True
            )
        )
    )
