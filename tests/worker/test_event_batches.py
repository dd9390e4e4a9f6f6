"""The publisher builds one record batch per partition itself: every event must still land on
the partition Kafka's default partitioner gives its key, in order, once."""

import os

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from contracts.rejection import Rejection
from session_client.connection import partitions_of
from tests.factories import new_id
from tests.support import CommandRecord, TopicReader
from worker.outcome import Outcome
from worker.partitioning import murmur2, partition_of
from worker.sending import EventPublisher
from worker.settings import Settings

# Kafka's own test vectors (UtilsTest.testMurmur2), as signed 32-bit Java ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_the_java_client() -> None:
    for data, expected in JAVA_MURMUR2.items():
        assert murmur2(data) == expected & 0xFFFFFFFF


def test_murmur2_matches_aiokafka_for_every_length() -> None:
    for length in range(80):
        for _ in range(50):
            data = os.urandom(length)
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_partition_of_matches_the_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for count in (1, 3, 12, 50):
        every = list(range(count))
        for _ in range(200):
            key = new_id("s").encode()
            assert partition_of(key, count) == partitioner(key, every, every)


def _outcome(offset: int, sid: str, events: int) -> Outcome:
    payloads = tuple(f'{{"s":"{sid}","n":{n},"pad":"{"x" * 300}"}}'.encode() for n in range(events))
    return Outcome(
        CommandRecord(sid.encode(), b"{}", offset),
        "applied",
        payloads,
        sid.encode(),
        "t",
        "e",
        None,
    )


@pytest.mark.asyncio(loop_scope="function")
async def test_events_land_on_their_keys_partition_in_order(settings: Settings) -> None:
    sids = [new_id("s") for _ in range(40)]
    # Each session twice (two batches' worth of its events), some outcomes with two events.
    outcomes = [_outcome(i, sid, 1 + i % 2) for i, sid in enumerate(sids + sids)]
    rejected = Outcome(
        CommandRecord(b"k", b"not json", 99), "rejected", (b'{"r":1}',), b"k", "command.rejected",
        "e", Rejection("invalid", "not JSON", "$"),
    )  # fmt: skip
    # Small batches: every partition's events need several.
    params = {**settings.to_producer_params(), "max_batch_size": 2048}
    producer = AIOKafkaProducer(**params)
    await producer.start()
    try:
        publisher = EventPublisher(producer, settings.events_topic, settings.dead_letter_topic)
        await publisher.publish(outcomes[:40])
        await publisher.publish([*outcomes[40:], rejected])
    finally:
        await producer.stop()

    sent = [e for o in outcomes for e in o.events] + [b'{"r":1}']
    reader = TopicReader(settings.kafka_bootstrap_servers, settings.events_topic)
    await reader.start()
    try:
        await reader.wait_count(len(sent))
        got = await reader.settle()
    finally:
        await reader.stop()
    assert sorted(r.value or b"" for r in got) == sorted(sent)  # each once
    partitions = len(await partitions_of(settings.kafka, settings.events_topic))
    assert partitions > 1
    for sid in sids:
        mine = [r for r in got if r.key == sid.encode()]
        assert {r.partition for r in mine} == {partition_of(sid.encode(), partitions)}
        expected = [e for o in outcomes if o.event_key == sid.encode() for e in o.events]
        assert [r.value for r in sorted(mine, key=lambda r: r.offset)] == expected
    dead = TopicReader(settings.kafka_bootstrap_servers, settings.dead_letter_topic)
    await dead.start()
    try:
        (letter,) = await dead.wait_count(1)
    finally:
        await dead.stop()
    assert letter.value == b"not json"
