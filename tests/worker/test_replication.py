"""SW_REDIS_MIN_REPLICAS against a real primary and replica (two redis-server processes): a
batch is announced and committed only once the replica holds its writes; a replica that stops
answering makes batches fail and retry, never announce or commit, and the work resumes when it
is back."""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from devenv.redis_local import LocalRedis
from devenv.replica_sync import until_replica_in_sync
from tests.factories import create_command
from tests.support import Services, WorkerHarness, fresh_settings
from worker.errors import StoreUnavailableError
from worker.keys import KeySpace
from worker.metrics import Metrics
from worker.replication import ReplicaBarrier
from worker.settings import Settings

SHORT_MS = 200  # where no replica will answer: fail soon
# Where the replica will answer: it normally does in well under a millisecond, but this machine's
# two cores may be busy with other suites' brokers.
PATIENT_MS = 5000


@dataclass(frozen=True)
class Replicated:
    primary: LocalRedis
    replica: LocalRedis


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    primary = LocalRedis(tmp_path_factory.mktemp("primary"))
    with primary:
        replica = LocalRedis(
            tmp_path_factory.mktemp("replica"),
            extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
        )
        with replica:
            yield Replicated(primary, replica)


@pytest_asyncio.fixture
async def primary_client(replicated: Replicated) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(replicated.primary.url)
    await client.flushdb()
    await until_replica_in_sync(client, 10)
    yield client
    await client.aclose()


class Paused:
    """SIGSTOP: the replica is there but answers nothing, as one that fell behind."""

    def __init__(self, server: LocalRedis) -> None:
        assert server.pid is not None
        self.pid = server.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *_: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def barrier(
    client: aioredis.Redis, min_replicas: int, metrics: Metrics, timeout_ms: int = PATIENT_MS
) -> ReplicaBarrier:
    return ReplicaBarrier(
        client, KeySpace("t"), min_replicas=min_replicas, timeout_ms=timeout_ms, metrics=metrics
    )


def waits(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "session_worker_replica_waits_total", {"result": result}
    )
    return value or 0.0


@pytest.mark.asyncio
async def test_the_barrier_passes_with_the_replica_and_fails_without(
    replicated: Replicated, primary_client: aioredis.Redis
) -> None:
    metrics = Metrics()
    one = barrier(primary_client, 1, metrics)
    await primary_client.set("t:{1}:data", b"x")
    await one.replicated(["s-1", "s-2"])
    assert waits(metrics, "ok") == 1

    with Paused(replicated.replica):
        await primary_client.set("t:{1}:data", b"y")  # the primary still answers writes
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"0 of 1 replica\(s\) acknowledged"):
            await barrier(primary_client, 1, metrics, SHORT_MS).replicated(["s-1"])
        assert time.monotonic() - began < SHORT_MS / 1000 + 1
    assert waits(metrics, "short") == 1

    with pytest.raises(StoreUnavailableError, match=r"1 of 2 replica\(s\)"):
        await barrier(primary_client, 2, metrics, SHORT_MS).replicated(["s-1"])
    await barrier(primary_client, 0, metrics).replicated(["s-1"])  # off: nothing sent
    assert waits(metrics, "ok") == 1


@pytest.mark.asyncio
async def test_waitaof_is_refused_at_start_where_redis_lacks_it(
    primary_client: aioredis.Redis,
) -> None:
    info = await primary_client.info("server")
    aof = ReplicaBarrier(
        primary_client, KeySpace("t"), min_replicas=1, timeout_ms=SHORT_MS, wait_aof=True
    )
    if tuple(int(p) for p in str(info["redis_version"]).split(".")[:2]) >= (7, 2):
        await aof.check()
    else:
        with pytest.raises(StoreUnavailableError, match="no WAITAOF"):
            await aof.check()


def test_settings_of_the_replica_wait() -> None:
    s = Settings.from_env({"SW_REDIS_MIN_REPLICAS": "1", "SW_REDIS_REPLICA_TIMEOUT_MS": "250"})
    assert (s.redis_min_replicas, s.redis_replica_timeout_ms, s.redis_wait_aof) == (1, 250, False)
    with pytest.raises(ValueError, match="SW_REDIS_WAIT_AOF"):
        Settings.from_env({"SW_REDIS_WAIT_AOF": "true"})
    with pytest.raises(ValueError, match="SW_REDIS_MIN_REPLICAS"):
        Settings.from_env({"SW_REDIS_MIN_REPLICAS": "-1"})


@pytest.mark.asyncio
async def test_a_worker_commits_only_what_the_replica_holds(
    services: Services, replicated: Replicated, primary_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = await fresh_settings(
        services.bootstrap_servers,
        replicated.primary.url,
        partitions=1,
        redis_min_replicas=1,
        redis_replica_timeout_ms=1000,
    )
    async with WorkerHarness(settings) as harness:
        worker = harness.start_worker()
        first = create_command()
        await harness.send(first)
        await harness.events.wait_count(1)
        await _until(lambda: worker.loop is not None and worker.loop.batches >= 1)

        with Paused(replicated.replica):
            second = create_command()
            await harness.send(second)
            committed_before = worker.loop.batches if worker.loop else 0
            await asyncio.sleep(2.5)  # longer than the wait: at least one batch came up short
            assert worker.loop is not None
            assert worker.loop.batches == committed_before  # not committed
            assert waits(worker.metrics, "short") >= 1
            # Nor announced: its event waits for the replicas, so a failover now could not
            # take back a session already announced.
            await harness.events.settle(0.3)
            assert [r.json()["sessionId"] for r in harness.events.records] == [first["sessionId"]]
        # Back: the batch is retried, its replay sends the same event, and it is committed.
        await _until(lambda: worker.loop is not None and worker.loop.batches > committed_before)
        await harness.events.wait_for(
            lambda records: any(r.json()["sessionId"] == second["sessionId"] for r in records)
        )
        events = [r.json() for r in await harness.events.settle(0.5)]
        created = {e["sessionId"] for e in events if e["type"] == "session.created"}
        assert created == {first["sessionId"], second["sessionId"]}
        assert len(events) == 2  # each announced once, after its replica held it
        assert (
            await primary_client.exists(
                *[
                    KeySpace(settings.key_prefix).session(c["sessionId"]).live
                    for c in (first, second)
                ]
            )
            == 2
        )


async def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
