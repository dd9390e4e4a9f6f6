"""session.expired on a cluster: one per session with two replicas sweeping every bucket index
on all three primaries, on time, never for a deleted session. Waits for real TTLs (60 s is the
contract's minimum)."""

from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.factories import create_command, delete_command
from tests.support import Record, WorkerHarness
from worker.keys import KeySpace

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow]

EXPIRATION_S = 60
BOUND_MS = 2000  # announced within 2 s of expiresAt
SESSIONS = 12


def _expired(records: list[Record]) -> list[tuple[dict[str, Any], int]]:
    """(event, ms between expiresAt and the event reaching Kafka) per session.expired."""
    found = []
    for r in records:
        event = r.json()
        if event["type"] == "session.expired":
            expires = datetime.fromisoformat(event["session"]["expiresAt"].replace("Z", "+00:00"))
            found.append((event, r.timestamp_ms - int(expires.timestamp() * 1000)))
    return found


@pytest.mark.timeout(200)
async def test_two_replicas_announce_each_expiry_once_and_on_time(
    harness: WorkerHarness, redis_client: aioredis.RedisCluster
) -> None:
    harness.start_worker()
    harness.start_worker()
    expiring = [create_command(expirationSeconds=EXPIRATION_S) for _ in range(SESSIONS)]
    doomed = [create_command(expirationSeconds=EXPIRATION_S) for _ in range(3)]
    for command in expiring + doomed:
        await harness.send(command)
    await harness.events.wait_count(SESSIONS + 3, timeout_s=60)
    for command in doomed:
        await harness.send(delete_command(command["sessionId"]))

    await harness.events.wait_for(
        lambda rs: len(_expired(rs)) >= SESSIONS, timeout_s=EXPIRATION_S + 30
    )
    records = await harness.events.settle(3.0)  # anything late or doubled shows up now
    await harness.stop_workers()

    expired = _expired(records)
    assert len({e["eventId"] for e, _ in expired}) == len(expired) == SESSIONS
    assert {e["sessionId"] for e, _ in expired} == {c["sessionId"] for c in expiring}
    for event, _ in expired:
        assert event["version"] == 2
        assert event["session"]["name"] == "Support chat"  # the last snapshot
    delays = [d for _, d in expired]
    assert min(delays) >= 0
    assert max(delays) <= BOUND_MS, sorted(delays)
    keys = KeySpace(harness.settings.key_prefix)
    homes = [redis_client.get_node_from_key(keys.session(c["sessionId"]).index) for c in expiring]
    assert len({node.name for node in homes if node}) > 1  # expiries from several primaries
    indexes = [k async for k in redis_client.scan_iter(match=f"{keys.prefix}:*:x")]
    assert [k for k in indexes if await redis_client.zcard(k)] == []
    print(f"\nexpiry delay over {len(delays)} sessions on a cluster: max {max(delays)} ms")
