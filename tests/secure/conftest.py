"""Secured Kafka and Redis (TLS, SASL, mutual TLS, ACL users), started once per test session and
only when a test asks for them. The certificates are made at test time in a temporary dir; the
credentials are the canaries in tests/secure/canary.py."""

from collections.abc import Iterator

import pytest

from devenv.kafka_secured import SecuredKafka
from devenv.pki import Pki, make_pki
from devenv.redis_cluster import LocalRedisCluster
from devenv.redis_local import LocalRedis
from tests.secure.canary import KAFKA_PASSWORD, KAFKA_USER, KEY_PASSWORD, REDIS_PASSWORD, REDIS_USER


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A fresh CA with server (127.0.0.1, localhost) and client certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"), client_key_password=KEY_PASSWORD)


@pytest.fixture(scope="session")
def secured_kafka(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    """A broker with PLAINTEXT, SASL_SSL (SCRAM-SHA-512/256, PLAIN), SSL (mutual TLS) and
    SASL_PLAINTEXT (unsecured OAUTHBEARER, SCRAM-SHA-512) listeners; one user, KAFKA_USER."""
    users = {KAFKA_USER: KAFKA_PASSWORD}
    with SecuredKafka(tmp_path_factory.mktemp("secured-kafka"), pki=pki, users=users) as kafka:
        yield kafka


@pytest.fixture(scope="session")
def secured_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """Redis over mutual TLS only, with the ACL user REDIS_USER; the default user is off."""
    with LocalRedis(
        tmp_path_factory.mktemp("secured-redis"), tls=pki, users={REDIS_USER: REDIS_PASSWORD}
    ) as server:
        yield server


@pytest.fixture(scope="session")
def plain_acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """Redis over plain TCP with the ACL user REDIS_USER; the default user is off."""
    with LocalRedis(
        tmp_path_factory.mktemp("plain-acl-redis"), users={REDIS_USER: REDIS_PASSWORD}
    ) as server:
        yield server


@pytest.fixture(scope="session")
def secured_redis_cluster(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRedisCluster]:
    """Three primaries over mutual TLS (clients, bus and replication), with the ACL user
    REDIS_USER; the default user is off."""
    with LocalRedisCluster(
        tmp_path_factory.mktemp("secured-redis-cluster"),
        tls=pki,
        users={REDIS_USER: REDIS_PASSWORD},
    ) as cluster:
        yield cluster
