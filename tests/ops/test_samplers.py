"""The sampled gauges against real Kafka and Redis."""

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.factories import create_command
from tests.support import WorkerHarness
from worker.clock import now_ms
from worker.metrics import Metrics
from worker.sampling import sample_lag, sample_sessions
from worker.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_live_sessions_and_the_expiry_backlog_come_from_the_bucket_indexes(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    for _ in range(3):
        await harness.send(create_command(expirationSeconds=60))
    await harness.run_until_idle()
    metrics = Metrics()
    prefix = harness.settings.key_prefix

    now = await sample_sessions(redis_client, prefix, metrics, now_ms())
    assert (now.live, now.backlog, now.oldest_due_ms) == (3, 0, None)
    assert metrics.registry.get_sample_value("session_worker_live_sessions") == 3

    later_ms = now_ms() + 120_000  # as a sampler two minutes from now sees it
    later = await sample_sessions(redis_client, prefix, metrics, later_ms)
    assert (later.live, later.backlog) == (0, 3)
    assert later.oldest_due_ms is not None
    overdue = metrics.registry.get_sample_value("session_worker_expiry_overdue_seconds")
    assert overdue is not None
    assert 60 <= overdue < 70  # due 60 s after the create, seen 120 s after the sample


async def test_lag_is_the_high_watermark_minus_the_position(settings: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(settings.commands_topic, b"{}", partition=0, key=b"%d" % i)
    finally:
        await producer.stop()
    tp = TopicPartition(settings.commands_topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        read = 0
        while read < 4:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=4 - read)
            read += len(batch.get(tp, []))
        metrics = Metrics()
        assert await sample_lag(consumer, metrics) == {(settings.commands_topic, 0): 6}
        labels = {"topic": settings.commands_topic, "partition": "0"}
        assert metrics.registry.get_sample_value("session_worker_consumer_lag", labels) == 6
    finally:
        await consumer.stop()
