"""Redis Cluster failovers under a steady load: what asynchronous replication loses, and what
`SW_REDIS_MIN_REPLICAS` keeps.

A Redis primary acknowledges a write before its replica has it. If the primary dies and a
replica that lacks the write is promoted, the write is gone, although the worker was told it
was stored, announced its event and committed its offset. With `SW_REDIS_MIN_REPLICAS=1` the
worker commits a batch only once a replica of every primary it wrote to has the batch's writes
(`WAIT`), so whatever it announced survives the failover.

Each scenario runs the workers as processes against a cluster of three primaries with one
replica each (`tests/chaos/conftest.py`), sends the chaos suite's load, breaks a primary and
verifies as the other chaos scenarios do, plus: every session announced as created is still in
Redis, or deleted or expired with its event. Rows are added to the chaos table.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from devenv.redis_cluster import LocalRedisCluster
from tests.chaos.load import LoadGenerator
from tests.chaos.test_chaos import Chaos, _assert_clean
from tests.chaos.verify import Report
from tests.factories import create_command
from worker.constants import BUCKETS
from worker.keys import KeySpace
from worker.settings import Settings

pytestmark = [
    pytest.mark.asyncio(loop_scope="function"),
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

EXPIRING = 40  # sessions created first with the shortest expiry Vapi allows (60 s)
EXPIRATION_S = 60
PAUSE_S = 6.0  # how long the replica falls behind before its primary is killed: its primary
#               drops it after REPL_TIMEOUT_S and acknowledges the rest alone
EXPIRY_LEASE_MS = 5000  # a sweep cut short by the failover is announced again within the run


FailoverFactory = Callable[[str, int], Chaos]


@pytest.fixture
def failover_factory(
    chaos_cluster_settings: Settings,
    chaos_cluster_client: aioredis.RedisCluster,
    chaos_cluster: LocalRedisCluster,
    tmp_path: Path,
) -> Iterator[FailoverFactory]:
    """Makes a scenario whose workers use the replicated cluster with the given
    `SW_REDIS_MIN_REPLICAS`; afterwards the workers are stopped and no node stays paused."""
    made: list[Chaos] = []

    def make(name: str, min_replicas: int) -> Chaos:
        settings = chaos_cluster_settings.replace(
            redis_min_replicas=min_replicas, expiry_lease_ms=EXPIRY_LEASE_MS
        )
        chaos = Chaos(name, settings, chaos_cluster_client, tmp_path)
        made.append(chaos)
        return chaos

    yield make
    for chaos in made:
        chaos.cleanup()
    for index in range(len(chaos_cluster.nodes)):
        chaos_cluster.resume(index)


def pick_victim(cluster: LocalRedisCluster, key_prefix: str) -> tuple[int, int, float]:
    """The primary holding the largest share of the session buckets, and its replica, neither
    of them node 0 (the workers' seed address, which a worker may need to reconnect); with
    that share."""
    topology = cluster.topology()
    keys = KeySpace(key_prefix)
    buckets: dict[int, int] = {}
    for bucket in range(BUCKETS):
        slot = key_slot(keys.bucket_index(bucket).encode())
        owner = next(n.index for n in topology if n.primary and n.serves(slot))
        buckets[owner] = buckets.get(owner, 0) + 1
    candidates = [
        (count, primary, cluster.replica_of(primary))
        for primary, count in buckets.items()
        if primary != 0 and cluster.replica_of(primary) != 0
    ]
    count, primary, replica = max(candidates)
    return primary, replica, count / BUCKETS


async def send_expiring(chaos: Chaos) -> set[str]:
    """Sessions that fall due a minute from now, on every primary, the victim's included."""
    sender = LoadGenerator(
        chaos.settings.kafka_bootstrap_servers,
        chaos.settings.commands_topic,
        rate_per_s=1000,
        seed=1,
        expiration_s=EXPIRATION_S,
    )
    await sender.start()
    try:
        for _ in range(EXPIRING):
            await sender.send(create_command(expirationSeconds=EXPIRATION_S))
    finally:
        await sender.stop()
    for sent in sender.ledger.sent:
        chaos.load.ledger.add(sent.command)
    return {sent.session_id for sent in sender.ledger.sent}


def violation_kinds(report: Report) -> list[tuple[str, int]]:
    """How many violations of each kind (the message without its session or event id)."""
    return Counter(v.split(": ", 1)[-1] for v in report.violations).most_common()


def setting(min_replicas: int) -> str:
    return f"min replicas {min_replicas} ({'on' if min_replicas else 'off'})"


@pytest.mark.parametrize("min_replicas", [1, 0], ids=["setting-on", "setting-off"])
async def test_replica_falls_behind_then_its_primary_is_killed(
    min_replicas: int, failover_factory: FailoverFactory, chaos_cluster: LocalRedisCluster
) -> None:
    """The replica is paused (it falls behind while its primary acknowledges writes), the
    primary is killed while the replica is still paused, then the replica is resumed and
    promoted with what it has, and the old primary restarts as its replica. The sessions
    created a minute before fall due while the replica is paused.

    Setting on: nothing is lost. Setting off: sessions announced as created are gone."""
    chaos = failover_factory(
        f"Redis failover: replica {PAUSE_S:.0f} s behind, primary kill -9, {setting(min_replicas)}",
        min_replicas,
    )
    primary, replica, share = pick_victim(chaos_cluster, chaos.settings.key_prefix)
    chaos.spawn()
    chaos.spawn()
    expiring = await send_expiring(chaos)
    due = time.monotonic() + EXPIRATION_S
    measured: dict[str, float] = {}

    async def faults() -> None:
        # The replica stops reading shortly before the sessions fall due; its primary is killed
        # after their expiry was announced (the sweeper polls every 0.5 s).
        await asyncio.sleep(max(0.0, due - PAUSE_S + 2.0 - time.monotonic()))
        chaos_cluster.pause(replica)
        await asyncio.sleep(PAUSE_S)
        measured["primary offset"] = float(
            chaos_cluster.replication_info(primary).get("master_repl_offset", "0")
        )
        chaos_cluster.kill(primary)
        killed = time.monotonic()
        await asyncio.sleep(0.5)
        chaos_cluster.resume(replica)
        await asyncio.to_thread(chaos_cluster.wait_promoted, replica, 30.0)
        measured["promoted after s"] = time.monotonic() - killed
        taken_over = chaos_cluster.replication_info(replica).get("second_repl_offset", "0")
        measured["replica had"] = float(taken_over) - 1
        await asyncio.to_thread(chaos_cluster.start)  # the old primary rejoins as a replica
        measured["whole again after s"] = time.monotonic() - killed

    await chaos.run(EXPIRATION_S + 16, faults)
    assert chaos_cluster.role(primary) == "slave"
    assert chaos_cluster.replica_of(replica) == primary
    report = await chaos.finish(expect_expired=expiring)
    lost_bytes = measured["primary offset"] - measured["replica had"]
    print(
        f"\n{chaos.name}: victim node {primary} ({share:.0%} of the buckets), replica {replica}; "
        f"{lost_bytes:.0f} bytes of the replication stream never reached the replica; "
        f"promoted {measured['promoted after s']:.1f} s after the kill, whole again after "
        f"{measured['whole again after s']:.1f} s; {report.missing_sessions} sessions announced "
        f"as created missing; {report.lost} commands lost; violations: {len(report.violations)}, "
        f"by kind: {violation_kinds(report)}"
    )
    if min_replicas:
        _assert_clean(report)
        assert report.missing_sessions == 0
        logs = chaos.logs()
        assert "batch failed, will retry" in logs  # the paused replica held the batches back
    else:
        # What the setting is for: acknowledged, announced, committed, and gone.
        report.scenario += f": {report.missing_sessions} announced sessions missing"
        assert lost_bytes > 0
        assert report.missing_sessions > 0, report.violations[:20]


async def test_forced_failover_to_a_caught_up_replica(
    failover_factory: FailoverFactory, chaos_cluster: LocalRedisCluster
) -> None:
    """`CLUSTER FAILOVER FORCE` on a replica in sync, under load, with the setting on: the
    replica takes over without a handshake, the old primary turns into its replica; nothing
    the workers were told is stored is lost on the way."""
    chaos = failover_factory(f"Redis CLUSTER FAILOVER FORCE under load, {setting(1)}", 1)
    primary, replica, _ = pick_victim(chaos_cluster, chaos.settings.key_prefix)
    chaos.spawn()
    chaos.spawn()
    measured: dict[str, float] = {}

    async def faults() -> None:
        await asyncio.sleep(8)
        info = chaos_cluster.replication_info(replica)
        assert info.get("master_link_status") == "up", info
        began = time.monotonic()
        chaos_cluster.force_failover(replica)
        await asyncio.to_thread(chaos_cluster.wait_promoted, replica, 30.0)
        await asyncio.to_thread(chaos_cluster.wait_replicas_in_sync, 30.0)
        measured["whole again after s"] = time.monotonic() - began

    await chaos.run(22, faults)
    assert chaos_cluster.role(primary) == "slave"
    assert chaos_cluster.replica_of(replica) == primary
    report = await chaos.finish()
    print(
        f"\n{chaos.name}: node {replica} took over from node {primary}, whole again after "
        f"{measured['whole again after s']:.1f} s; violations by kind: {violation_kinds(report)}"
    )
    _assert_clean(report)
    assert report.missing_sessions == 0
