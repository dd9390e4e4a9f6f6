"""Which partition of the events topic a key goes to: Kafka's default partitioner, exactly.

The same murmur2 as the Java client (and aiokafka's DefaultPartitioner), so a session's events
land where any other Kafka producer would put that key. aiokafka's own version reads the key a
byte at a time in Python, ~6 us per key; this one reads it four bytes at a time through
`struct`, about a quarter of that. Tests compare both on random keys and Kafka's own vectors.
"""

import random
import struct
from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@lru_cache(maxsize=256)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """MurmurHash2 of `data` as the Java client computes it (Utils.murmur2), unsigned 32-bit."""
    length = len(data)
    h = _SEED ^ length
    whole = length // 4
    for k in _words(whole).unpack_from(data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length - whole * 4
    if tail:
        rest = data[whole * 4 :]
        if tail == 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h = ((h ^ rest[0]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes | None, partitions: int) -> int:
    """The partition (0-based, of `partitions`) Kafka's default partitioner picks for `key`;
    a record without a key goes to any partition."""
    if key is None:
        return random.randrange(partitions)  # noqa: S311 - spreading load, not a secret
    return (murmur2(key) & 0x7FFFFFFF) % partitions
