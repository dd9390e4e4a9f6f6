"""The store's connection packs commands with hiredis directly: byte for byte what redis-py's
own packer writes, for every kind of argument the worker sends and for those it falls back on."""

import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT

from tests.support import Services
from worker.redis_client import HiredisPackingConnection, connect_redis
from worker.settings import Settings

COMMANDS = [
    ("EVALSHA", "a" * 40, 2, "k:{7}:s:x", b"\x00\xffbinary", -5, 604800000, "ünïcode"),
    ("SET", b"key", b"", "PXAT", 4102444800000),
    ("HDEL", "o:{1}:s", "0:1", "0:2"),
    ("CLIENT SETNAME", "worker"),  # two words: redis-py's way
    ("SET", "k", memoryview(b"view")),  # not taken by hiredis as it is: redis-py's way
    ("SET", "k", bytearray(b"array")),
    ("SET", "k", 1.5),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[str(c[0]) for c in COMMANDS])
def test_packs_as_redis_py_does(command: tuple[EncodableT, ...]) -> None:
    ours = b"".join(HiredisPackingConnection().pack_command(*command))
    theirs = b"".join(aioredis.Connection().pack_command(*command))
    assert ours == theirs


@pytest.mark.asyncio(loop_scope="function")
async def test_round_trip_through_the_store_client(services: Services) -> None:
    client = connect_redis(Settings(redis_url=services.redis_url), socket_timeouts=False)
    try:
        value = bytes(range(256)) * 10
        assert await client.set("packing:binary", value)
        assert await client.get("packing:binary") == value
        assert await client.eval("return ARGV[1] .. ARGV[2]", 0, "ü", 42) == "ü42".encode()
    finally:
        await client.aclose()
