"""SW_REDIS_CLUSTER: parsed like every boolean setting, checked against REDIS_URL."""

import pytest
import redis.asyncio as aioredis

from tests.support import settings_env
from worker.errors import SettingsError
from worker.redis_client import REDIS_TIMEOUT_S, connect_redis
from worker.settings import Settings, parse_bool

NODE = "redis://10.0.0.7:7000"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("yes", True), (" Yes ", True)],
        *[("false", False), ("False", False), ("0", False), ("no", False), ("NO", False)],
    ],
)
def test_booleans_are_read_from_the_environment(raw: str, value: bool) -> None:
    env = {"SW_REDIS_CLUSTER": raw, "REDIS_URL": NODE}
    assert Settings.from_env(env).redis_cluster is value
    assert parse_bool(raw) is value


@pytest.mark.parametrize("raw", ["on", "2", "truthy", "y", "enabled"])
def test_anything_else_is_a_clear_error(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"SW_REDIS_CLUSTER=.*not a boolean \(true/false"):
        Settings.from_env({"SW_REDIS_CLUSTER": raw})


def test_off_by_default_and_a_flag_given_as_text_is_parsed_too() -> None:
    assert Settings.from_env({}).redis_cluster is False
    assert Settings.from_env({}, redis_cluster="yes", redis_url=NODE).redis_cluster is True
    assert Settings.from_env({"SW_REDIS_CLUSTER": "1"}, redis_cluster="no").redis_cluster is False


def test_a_worker_process_gets_the_setting_back_from_its_environment() -> None:
    settings = Settings(redis_url=NODE, redis_cluster=True)
    assert Settings.from_env(settings_env(settings)).redis_cluster is True


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("unix:///run/redis.sock", "cluster node"),
        ("redis://10.0.0.7:7000/3", "only database 0"),
    ],
)
def test_a_cluster_needs_a_node_address_and_database_0(url: str, why: str) -> None:
    with pytest.raises(SettingsError, match=why):
        Settings(redis_url=url, redis_cluster=True)
    Settings(redis_url=url)  # fine for a single server


@pytest.mark.asyncio(loop_scope="function")
async def test_the_client_kind_follows_the_setting_with_the_same_timeouts() -> None:
    single = connect_redis(Settings(redis_url="redis://10.0.0.7:6379/2"))
    cluster = connect_redis(Settings(redis_url=NODE, redis_cluster=True))
    try:
        assert isinstance(single, aioredis.Redis)
        assert isinstance(cluster, aioredis.RedisCluster)
        kwargs = single.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == REDIS_TIMEOUT_S
        assert kwargs["db"] == 2
        (seed,) = cluster.startup_nodes  # no connection yet: the slot map is read on first use
        assert (seed.host, seed.port) == ("10.0.0.7", 7000)
        assert seed.connection_kwargs["socket_timeout"] == REDIS_TIMEOUT_S
        assert seed.connection_kwargs["socket_connect_timeout"] == REDIS_TIMEOUT_S
        retry = single.get_retry()
        assert retry is not None
        assert cluster.retry.get_retries() == retry.get_retries() == 2
    finally:
        await single.aclose()
        await cluster.aclose()
