"""The self-started services are real: Kafka takes idempotent writes, Redis keeps AOF data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from devenv import LocalKafka, LocalRedis, ServiceStartError, open_services


@pytest.fixture(scope="module")
def kafka() -> Iterator[LocalKafka]:
    with LocalKafka() as broker:
        yield broker


@pytest.fixture(scope="module")
def redis_server() -> Iterator[LocalRedis]:
    with LocalRedis(appendonly=True) as server:
        yield server


async def _create_topic(bootstrap: str) -> str:
    # The broker runs with auto.create.topics.enable=false, like production should.
    topic = f"devenv-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return topic


def _idempotent_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")


async def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    # A group id exercises the group coordinator and __consumer_offsets too.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < count:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
            assert record.value is not None
            values.append(record.value)
        await consumer.commit()
        return values
    finally:
        await consumer.stop()


@pytest.mark.asyncio
async def test_kafka_idempotent_produce_and_consume(kafka: LocalKafka) -> None:
    topic = await _create_topic(kafka.bootstrap_servers)
    producer = _idempotent_producer(kafka.bootstrap_servers)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()
    assert meta.offset == 0

    assert await _consume(kafka.bootstrap_servers, topic, 1) == [b"hello"]


@pytest.mark.asyncio
async def test_redis_set_get(redis_server: LocalRedis) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set("devenv:greeting", "hi")
        assert await client.get("devenv:greeting") == b"hi"
    finally:
        await client.aclose()


@pytest.mark.chaos
@pytest.mark.asyncio
async def test_redis_aof_survives_kill(redis_server: LocalRedis) -> None:
    # from_url() clients get no retry policy in redis-py 8 (Redis(host=...) does):
    # without one, the first command after the restart fails on the dead socket.
    client = aioredis.Redis.from_url(
        redis_server.url, retry=Retry(ExponentialWithJitterBackoff(), retries=3)
    )
    try:
        await client.set("devenv:durable", "kept")
        old_pid = redis_server.pid
        redis_server.kill()
        redis_server.restart()
        assert redis_server.pid not in (None, old_pid)
        # Same port after the restart, so the same client reconnects.
        assert await client.get("devenv:durable") == b"kept"
    finally:
        await client.aclose()


@pytest.mark.chaos
@pytest.mark.asyncio
async def test_kafka_restart_keeps_address_and_data(kafka: LocalKafka) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = await _create_topic(bootstrap)
    producer = _idempotent_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        # In a thread, so the producer's connection tasks see the broker go away.
        await asyncio.to_thread(kafka.restart)
        assert kafka.bootstrap_servers == bootstrap
        await producer.send_and_wait(topic, b"after")
    finally:
        await producer.stop()

    assert await _consume(bootstrap, topic, 2) == [b"before", b"after"]


def test_missing_redis_server_says_how_to_install() -> None:
    with (
        pytest.raises(ServiceStartError, match="apt-get install -y redis-server"),
        LocalRedis(executable="redis-server-that-is-not-there"),
    ):
        pass


def test_external_services_start_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:2/0")
    with open_services() as services:
        assert services.source == "external"
        assert services.kafka is None
        assert services.redis is None
        assert services.bootstrap_servers == "127.0.0.1:1"
        assert services.redis_url == "redis://127.0.0.1:2/0"
