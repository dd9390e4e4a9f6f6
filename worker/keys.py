"""Redis key layout. Everything of one session, and its bucket's expiry index, shares one hash tag.

The tag is a bucket number computed from the session id (never the raw id, which may hold
braces), so a session's multi-key steps are single atomic scripts on Redis Cluster as well, and
the expiry index is split into `BUCKETS` parts that sweepers can share.
"""

import zlib
from dataclasses import dataclass

from worker.constants import BUCKETS


def bucket_of(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) % BUCKETS


@dataclass(frozen=True, slots=True)
class SessionKeys:
    live: str  # STRING: the snapshot (compressed, see snapshot_codec), TTL = expirationSeconds
    meta: str  # HASH: version, owner, status, expiry, commandId marks
    archive: str  # STRING: the same bytes as live, kept past it until the expiry is announced
    outbox: str  # HASH: offset -> event bytes, until the offset is committed
    index: str  # ZSET: the bucket's expiry index, session id scored by expiresAt (ms)


class KeySpace:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def bucket_base(self, bucket: int) -> str:
        """What every key of the bucket starts with (scripts derive session keys from it)."""
        return f"{self.prefix}:{{{bucket}}}:"

    def bucket_index(self, bucket: int) -> str:
        return self.bucket_base(bucket) + "x"

    def session(self, session_id: str) -> SessionKeys:
        base = self.bucket_base(bucket_of(session_id))
        return SessionKeys(
            live=f"{base}s:{session_id}",
            meta=f"{base}m:{session_id}",
            archive=f"{base}a:{session_id}",
            outbox=f"{base}o:{session_id}",
            index=f"{base}x",
        )
