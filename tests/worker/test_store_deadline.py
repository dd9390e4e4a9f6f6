"""The store's client has no deadline per reply (see `connect_redis`); the store bounds each
round trip itself, so a Redis that stops answering fails the batch instead of hanging it."""

import os
import signal
import time

import pytest

from devenv.redis_local import LocalRedis
from worker import store as store_module
from worker.errors import StoreUnavailableError
from worker.keys import KeySpace
from worker.redis_client import connect_redis
from worker.settings import Settings
from worker.store import ReadRequest, SessionStore

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_a_hung_redis_fails_the_round_trip_at_its_deadline_and_the_next_one_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_module, "ROUND_TRIP_TIMEOUT_S", 0.5)
    with LocalRedis() as server:
        client = connect_redis(Settings(redis_url=server.url), socket_timeouts=False)
        store = SessionStore(client, KeySpace("deadline"), outbox_ttl_ms=60_000)
        request = ReadRequest("s-1", ["0:1"], ["c-1"])
        try:
            (state,) = await store.read([request])  # connected, scripts loaded
            assert state.version == 0
            pid = server.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)  # answers nothing; the connection stays open
            try:
                started = time.monotonic()
                with pytest.raises(StoreUnavailableError, match=r"no answer within 0\.5 s"):
                    await store.read([request])
                assert 0.4 < time.monotonic() - started < 3.0
            finally:
                os.kill(pid, signal.SIGCONT)
            # The interrupted connection was dropped: no late reply is read as this one's.
            (state,) = await store.read([request])
            assert state.version == 0
            assert state.replays == [None]
        finally:
            await client.aclose()
