"""`session-worker get`: what Redis holds for one session, for a person at a terminal."""

import json
from dataclasses import dataclass

from worker.keys import KeySpace
from worker.redis_client import connect_redis
from worker.session_record import parse_record
from worker.settings import Settings
from worker.snapshot_codec import unpack_snapshot


@dataclass(frozen=True, slots=True)
class SessionReport:
    found: bool
    text: str


async def describe_session(settings: Settings, session_id: str) -> SessionReport:
    client = connect_redis(settings)
    try:
        keys = KeySpace(settings.key_prefix).session(session_id)
        pipe = client.pipeline(transaction=False)
        pipe.get(keys.live)
        pipe.pttl(keys.live)
        pipe.get(keys.record)
        pipe.hmget(keys.meta, "v", "st")  # as a worker before the record layout kept them
        snapshot, ttl_ms, record, legacy = await pipe.execute()
    finally:
        await client.aclose()
    version, status = legacy
    if record is not None:
        head = parse_record(record)
        version, status = head.version, head.status.encode()
    if snapshot is None:
        state = {b"deleted": "deleted", b"expired": "expired"}.get(status or b"")
        if state is None and status is not None:
            state = "expired, expiry not announced yet"
        why = f" ({state}, version {int(version)})" if state else ""
        return SessionReport(False, f"session {session_id!r} not found{why}")
    # The stored snapshot never holds secrets: they are redacted before it is built.
    pretty = json.dumps(json.loads(unpack_snapshot(snapshot)), indent=2, ensure_ascii=False)
    return SessionReport(
        True,
        f"{pretty}\nversion {int(version or 0)}, expires in {ttl_ms / 1000:.1f} s",
    )
