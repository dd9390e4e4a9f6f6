"""Kill, restart and starve real processes under a steady load, then count what arrived.

Each scenario sends valid commands from a ledger while it breaks something, waits until the
group has committed everything, and checks per session: one session.created, transitions in
command order with versions 1, 2, 3..., at most one terminal event and nothing after it, Redis
equal to the last applied command, duplicates only as repeats of the same eventId, every command
applied exactly once, and the lag back to zero. The table is printed at the end of the run.
"""

import asyncio
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.chaos.conftest import REPORTS, ChaosServices
from tests.chaos.load import LoadGenerator
from tests.chaos.verify import (
    RedisReader,
    Report,
    group_lag,
    longest_silence_s,
    redis_reader,
    verify,
)
from tests.factories import create_command
from tests.support import TopicReader, WorkerProcess
from worker.settings import Settings

pytestmark = [
    pytest.mark.asyncio(loop_scope="function"),
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

RATE_PER_S = 150  # steady, well under one worker's capacity, so faults are what we measure


class Chaos:
    """One scenario: workers as processes, a load, and the verification at the end."""

    def __init__(
        self, name: str, settings: Settings, redis_client: RedisReader, tmp_path: Path
    ) -> None:
        self.name = name
        self.settings = settings
        self.redis = redis_client  # flushed for this scenario by the fixture
        self.tmp_path = tmp_path
        self.workers: list[WorkerProcess] = []
        self.load = LoadGenerator(
            settings.kafka_bootstrap_servers,
            settings.commands_topic,
            rate_per_s=RATE_PER_S,
            seed=hash(name) & 0xFFFF,
        )
        self.events = TopicReader(settings.kafka_bootstrap_servers, settings.events_topic)
        self.dead_letters = TopicReader(
            settings.kafka_bootstrap_servers, settings.dead_letter_topic
        )
        self.started_ms = 0

    def spawn(self, **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            self.settings, self.tmp_path / f"worker-{len(self.workers)}.log", env
        )
        worker.start()
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.tmp_path.glob("worker-*.log")))

    async def run(self, seconds: float, faults: Callable[[], Awaitable[None]]) -> None:
        await self.load.start()
        self.started_ms = int(time.time() * 1000)
        try:
            await asyncio.gather(self.load.run(seconds), faults())
        finally:
            await self.load.stop()

    async def finish(self, *, expect_expired: set[str] | None = None) -> Report:
        """Waits for the lag to reach zero with the live workers, stops them, verifies."""
        load_end_ms = int(time.time() * 1000)
        if not any(w.alive for w in self.workers):
            self.spawn()
        deadline = time.monotonic() + 120
        lag = await group_lag(
            self.settings.kafka_bootstrap_servers,
            self.settings.group_id,
            self.settings.commands_topic,
        )
        while lag and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            lag = await group_lag(
                self.settings.kafka_bootstrap_servers,
                self.settings.group_id,
                self.settings.commands_topic,
            )
        await self.events.start()
        await self.dead_letters.start()
        try:
            records = await self.events.settle(3.0)
            dead = await self.dead_letters.settle(0.5)
        finally:
            await self.events.stop()
            await self.dead_letters.stop()
        for worker in self.workers:
            if worker.alive:
                assert worker.terminate() == 0, self.logs()[-3000:]
        # A fresh client: the fixture's connection may predate a Redis restart.
        redis_client = redis_reader(self.settings)
        try:
            report = await verify(
                self.name,
                self.load.ledger,
                records,
                redis_client,
                self.settings.key_prefix,
                expect_expired=expect_expired,
            )
        finally:
            await redis_client.aclose()
        report.lag = lag
        report.recovery_s = longest_silence_s(records, self.started_ms, load_end_ms)
        if lag:
            report.violations.append(f"lag {lag} after 120 s")
        if dead:
            report.violations.append(f"{len(dead)} dead letters for valid commands")
        REPORTS.append(report)
        return report

    def cleanup(self) -> None:
        for worker in self.workers:
            worker.ensure_stopped()


@pytest.fixture
def chaos_factory(
    chaos_settings: Settings, chaos_redis: aioredis.Redis, tmp_path: Path
) -> Iterator[Callable[[str], Chaos]]:
    made: list[Chaos] = []

    def make(name: str) -> Chaos:
        chaos = Chaos(name, chaos_settings, chaos_redis, tmp_path)
        made.append(chaos)
        return chaos

    yield make
    for chaos in made:
        chaos.cleanup()


def _assert_clean(report: Report) -> None:
    assert report.violations == [], report.violations[:20]
    assert report.lost == 0
    assert report.duplicated_transitions == 0
    assert report.applied == report.sent


async def test_kill_9_at_random_moments(chaos_factory: Callable[[str], Chaos]) -> None:
    chaos = chaos_factory("kill -9 x12, 2 replicas")
    chaos.spawn()
    chaos.spawn()
    rng = random.Random(7)
    kills = 0

    async def faults() -> None:
        nonlocal kills
        for _ in range(12):
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            victim = rng.choice([w for w in chaos.workers if w.alive])
            victim.kill()
            kills += 1
            chaos.spawn()

    await chaos.run(28, faults)
    report = await chaos.finish()
    assert kills >= 10
    _assert_clean(report)


@pytest.mark.parametrize("point", ["after_store", "after_publish"])
async def test_kill_at_the_worst_points(point: str, chaos_factory: Callable[[str], Chaos]) -> None:
    """SIGKILL after the Redis write but before delivery, and after delivery before the commit:
    each worker dies at its 1st to 3rd batch, and is replaced by another such worker."""
    chaos = chaos_factory(f"kill -9 {point.replace('_', ' ')}")
    rng = random.Random(point)
    crashes = 0
    loading = True

    def crashing() -> WorkerProcess:
        return chaos.spawn(SW_TEST_CRASH_AT=point, SW_TEST_CRASH_AFTER=str(rng.randint(1, 3)))

    current = crashing()

    async def faults() -> None:
        nonlocal crashes, current
        while loading:
            await asyncio.sleep(0.1)
            if not current.alive:
                assert current.returncode == -signal.SIGKILL, chaos.logs()[-2000:]
                crashes += 1
                current = crashing()

    async def faults_while_loading() -> None:
        nonlocal loading
        watcher = asyncio.create_task(faults())
        await asyncio.sleep(20)
        loading = False
        await watcher

    await chaos.run(20, faults_while_loading)
    current.kill()  # it may still be waiting for its crash point; a clean worker drains
    report = await chaos.finish()
    report.scenario += f" x{crashes}"
    assert crashes >= 3
    _assert_clean(report)


async def test_scaling_1_3_2_under_load(chaos_factory: Callable[[str], Chaos]) -> None:
    chaos = chaos_factory("replicas 1 -> 3 -> 2")
    chaos.spawn()

    async def faults() -> None:
        await asyncio.sleep(7)
        chaos.spawn()
        chaos.spawn()
        await asyncio.sleep(7)
        assert chaos.workers[0].terminate() == 0  # a scale-down drains and commits

    await chaos.run(21, faults)
    report = await chaos.finish()
    _assert_clean(report)
    # Rebalances drain and commit first: no commit fails for a handed-over partition.
    assert chaos.logs().count("commit failed") == 0


async def test_redis_killed_restarted_and_unreachable(
    chaos_factory: Callable[[str], Chaos], chaos_services: ChaosServices
) -> None:
    chaos = chaos_factory("Redis kill -9 + AOF restart, 15 s unreachable")
    chaos.spawn()
    chaos.spawn()
    expiring = LoadGenerator(
        chaos.settings.kafka_bootstrap_servers,
        chaos.settings.commands_topic,
        rate_per_s=1000,
        seed=1,
        expiration_s=60,
    )
    await expiring.start()
    for _ in range(40):
        await expiring.send(create_command(expirationSeconds=60))
    await expiring.stop()
    created = time.monotonic()
    redis_pid = chaos_services.redis.pid
    assert redis_pid is not None

    async def faults() -> None:
        await asyncio.sleep(15)
        await asyncio.to_thread(chaos_services.redis.kill)
        await asyncio.sleep(2)
        await asyncio.to_thread(chaos_services.redis.restart)
        pid = chaos_services.redis.pid
        assert pid is not None
        # Unreachable across the moment the 40 sessions expire (60 s after their creation).
        await asyncio.sleep(max(0.0, 50 - (time.monotonic() - created)))
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(15)
        finally:
            os.kill(pid, signal.SIGCONT)

    try:
        await chaos.run(70, faults)
    finally:
        pid = chaos_services.redis.pid
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
    for command in expiring.ledger.sent:
        chaos.load.ledger.add(command.command)
    report = await chaos.finish(expect_expired={c.session_id for c in expiring.ledger.sent})
    _assert_clean(report)
    assert all(w.returncode in (None, 0) for w in chaos.workers)  # paused, never crashed


async def test_kafka_broker_stopped_and_restarted(
    chaos_factory: Callable[[str], Chaos], chaos_services: ChaosServices
) -> None:
    chaos = chaos_factory("Kafka broker stop + restart")
    workers = [chaos.spawn(), chaos.spawn()]

    async def faults() -> None:
        await asyncio.sleep(8)
        await asyncio.to_thread(chaos_services.kafka.stop)
        await asyncio.sleep(5)
        await asyncio.to_thread(chaos_services.kafka.start)

    await chaos.run(25, faults)
    # Recovered by itself: the same processes are still running, and they drain the lag.
    assert all(w.alive for w in workers)
    report = await chaos.finish()
    _assert_clean(report)


async def test_a_handler_slower_than_the_poll_interval_rejoins_once(
    chaos_factory: Callable[[str], Chaos], chaos_settings: Settings
) -> None:
    chaos = chaos_factory("handler slower than max.poll.interval")
    chaos.settings = chaos_settings.replace(max_poll_interval_ms=3000)

    async def faults() -> None:
        await asyncio.sleep(6)  # a backlog of ~900 commands: the first batch takes ~5 s
        chaos.spawn(SW_TEST_SLOW_RECORD_MS="10")

    await chaos.run(20, faults)
    report = await chaos.finish()
    _assert_clean(report)
    logs = chaos.logs()
    assert logs.count("batch too slow") == 1
    # One rejoin, not a loop: the first assignment, the one forced rejoin, and nothing more.
    assert logs.count('"partitions assigned"') == 2, logs.count('"partitions assigned"')


async def test_sigterm_under_load_finishes_and_exits_0(
    chaos_factory: Callable[[str], Chaos],
) -> None:
    chaos = chaos_factory("SIGTERM under load")
    first = chaos.spawn()
    chaos.spawn()
    stop_s: list[float] = []

    async def faults() -> None:
        await asyncio.sleep(8)
        started = time.monotonic()
        code = await asyncio.to_thread(first.terminate, chaos.settings.shutdown_grace_s + 5)
        stop_s.append(time.monotonic() - started)
        assert code == 0
        await asyncio.sleep(3)
        chaos.spawn()

    await chaos.run(20, faults)
    report = await chaos.finish()
    _assert_clean(report)
    assert stop_s[0] < chaos.settings.shutdown_grace_s
