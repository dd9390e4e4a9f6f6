"""Redis key layout. Everything of one session, and its bucket's expiry index, shares one hash tag.

The tag is a bucket number computed from the session id (never the raw id, which may hold
braces), so a session's multi-key steps are single atomic scripts on Redis Cluster as well, and
the expiry index is split into `BUCKETS` parts that sweepers can share.
"""

import zlib

import msgspec

from worker.constants import BUCKETS


def bucket_of(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) % BUCKETS


class SessionKeys(msgspec.Struct, frozen=True, gc=False):
    live: str  # STRING: the snapshot (compressed, see snapshot_codec), TTL = expirationSeconds
    record: str  # STRING: version, owner, status, expiry, applied commandIds, and a copy of live
    #              kept past it until the expiry is announced (see session_record, lua/record.lua)
    outbox: str  # HASH: offset -> event bytes, until the offset is committed
    index: str  # ZSET: the bucket's expiry index, session id scored by expiresAt (ms)
    # What workers before the record layout kept instead of `record`, read until replaced.
    meta: str  # HASH: v, o, st, x, c:<commandId> (and 0.1's plain copy `a`)
    archive: str  # STRING: the copy of live


class KeySpace:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def bucket_base(self, bucket: int) -> str:
        """What every key of the bucket starts with (scripts derive session keys from it)."""
        return f"{self.prefix}:{{{bucket}}}:"

    def bucket_index(self, bucket: int) -> str:
        return self.bucket_base(bucket) + "x"

    def outbox(self, session_id: str) -> str:
        return f"{self.bucket_base(bucket_of(session_id))}o:{session_id}"

    def session(self, session_id: str) -> SessionKeys:
        base = self.bucket_base(bucket_of(session_id))
        return SessionKeys(
            live=f"{base}s:{session_id}",
            record=f"{base}r:{session_id}",
            outbox=f"{base}o:{session_id}",
            index=f"{base}x",
            meta=f"{base}m:{session_id}",
            archive=f"{base}a:{session_id}",
        )
