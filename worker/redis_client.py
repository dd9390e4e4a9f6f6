"""The one place the worker's Redis client is built: a single server or a Redis Cluster.

`SW_REDIS_CLUSTER=true` makes `REDIS_URL` the address of any one node of a cluster (a seed:
the client asks it for the slot map and connects to every primary itself); otherwise
`REDIS_URL` is the one Redis server. The worker's keys are laid out for both: every
multi-key step touches one hash tag (see `worker.keys`).

Security is the same for both: an ACL user and password (`REDIS_USERNAME`, `REDIS_PASSWORD`),
and with a `rediss://` URL TLS verified against `REDIS_SSL_CAFILE` (or the system's store),
hostname checked, with a client certificate when `REDIS_SSL_CERTFILE`/`REDIS_SSL_KEYFILE` are
given. The URL's own query parameters (`ssl_min_version`, ...) still apply and win.
"""

from typing import Any, TypeAlias

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_client.secret import reveal
from worker.settings import Settings

REDIS_TIMEOUT_S = 5.0  # longer than any healthy round trip; short enough to retry soon

# What `connect_redis` returns: both speak the same commands and pipelines for our key layout.
RedisClient: TypeAlias = aioredis.Redis | aioredis.RedisCluster


class HiredisPackingConnection(aioredis.Connection):
    """Commands packed by hiredis (C), as redis-py's synchronous client does when hiredis is
    installed; its asyncio connection packed every argument in Python before redis-py 8.2,
    ~12 us of a create's script call. Replies were already parsed by hiredis.

    The worker's commands (a one-word name; str, bytes and int arguments) go to hiredis
    as they are: redis-py's serializer first copies the arguments into a new tuple through a
    Python generator, which doubled the cost of packing a script run of 32 sessions (73 vs
    34 us). Anything else takes redis-py's own way (from redis-py 8.2 also through hiredis),
    which converts and reports bad arguments."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str) and name.isalpha():  # one word: no split needed
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass  # an argument hiredis does not take as it is (memoryview...)
        return super().pack_command(*args)


def _retry() -> Retry:
    # Reconnect once, quickly, after a restart; every script is safe to run again.
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2)


def connect_redis(
    settings: Settings, *, timeout_s: float = REDIS_TIMEOUT_S, socket_timeouts: bool = True
) -> RedisClient:
    """A client for `settings.redis_url`; a cluster client when `settings.redis_cluster`.

    No connection is made here: the first command connects (a cluster client then reads the
    slot map from the seed node).

    `socket_timeouts=False` leaves every write and reply without a deadline of its own, for a
    caller that puts one around each round trip (the session store does): with one, redis-py
    runs every write as a task of its own (`asyncio.wait_for`) and reads every reply of a
    pipeline under a timeout of its own, about 9% of the worker's CPU at 1,600 commands/s.
    Connecting keeps its deadline either way.
    """
    common: dict[str, Any] = {
        "decode_responses": False,
        # A Redis that stops answering must fail the batch (to be retried), not hang it.
        "socket_timeout": timeout_s if socket_timeouts else None,
        "socket_connect_timeout": timeout_s,
        "retry": _retry(),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        **redis_auth_params(settings),
    }
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(settings.redis_url, **common)
    if uses_hiredis_packing(settings.redis_url):
        common["connection_class"] = HiredisPackingConnection
    return aioredis.Redis.from_url(settings.redis_url, **common)


def uses_hiredis_packing(redis_url: str) -> bool:
    """Only plain TCP: the packing connection is a TCP `Connection`, so giving it to a
    `rediss://` client would replace its `SSLConnection` and talk to Redis unencrypted."""
    return redis_url.startswith("redis://")


def redis_auth_params(settings: Settings) -> dict[str, Any]:
    """The ACL user and password, and for `rediss://` the TLS files, as redis-py keywords."""
    params: dict[str, Any] = {}
    if settings.redis_username:
        params["username"] = settings.redis_username
    if settings.redis_password is not None:
        params["password"] = reveal(settings.redis_password)
    if settings.redis_url.startswith("rediss://"):
        params["ssl_cert_reqs"] = "required"
        params["ssl_check_hostname"] = True
        if settings.redis_ssl_cafile:
            params["ssl_ca_certs"] = settings.redis_ssl_cafile
        if settings.redis_ssl_certfile:
            params["ssl_certfile"] = settings.redis_ssl_certfile
            params["ssl_keyfile"] = settings.redis_ssl_keyfile
    return params
