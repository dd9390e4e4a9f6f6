"""The secured services are real: each listener takes its own kind of credential and refuses the
rest. Raw aiokafka / redis-py clients, so a failure here is about the services, not the worker."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import redis.exceptions
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context

from devenv.kafka_secured import SecuredKafka
from devenv.pki import Pki
from devenv.redis_cluster import LocalRedisCluster
from devenv.redis_local import LocalRedis
from tests.secure.canary import (
    ALL_SECRETS,
    KAFKA_PASSWORD,
    KAFKA_USER,
    KEY_PASSWORD,
    REDIS_PASSWORD,
    REDIS_USER,
    WRONG_PASSWORD,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")


# --------------------------------------------------------------------------- Kafka helpers


class UnsecuredJwt(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """Unsigned (``alg: none``) JWTs, which the broker's built-in unsecured validator accepts."""

    def __init__(self, subject: str) -> None:
        self.subject = subject

    async def token(self) -> str:
        def part(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        now = int(time.time())
        claims = {"sub": self.subject, "iat": now, "exp": now + 3600}
        return f"{part({'alg': 'none'})}.{part(claims)}."  # empty signature


def _ca_only(pki: Pki) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(cafile=str(pki.ca_file))
    return context


def _sasl_ssl(kafka: SecuredKafka, mechanism: str, password: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": kafka.sasl_ssl_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": KAFKA_USER,
        "sasl_plain_password": password,
        "ssl_context": _ca_only(kafka.pki),
    }


async def _create_topic(kafka: SecuredKafka) -> str:
    # Setup through the PLAINTEXT listener; the listener under test does the round trip.
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.plaintext_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def _round_trip(kafka: SecuredKafka, **client: Any) -> None:
    """Produce one record and read it back in a consumer group, all through ``client``'s
    listener (the group coordinator's address is that listener's too)."""
    topic = await _create_topic(kafka)
    value = uuid.uuid4().bytes
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **client)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, group_id=f"g-{topic}", auto_offset_reset="earliest", **client
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert record.value == value


async def _refused(caplog: pytest.LogCaptureFixture, **client: Any) -> tuple[str, str]:
    """Start a producer that must be refused; return the error and what aiokafka logged.

    aiokafka's bootstrap swallows the real reason into "Unable to bootstrap from [...]" and
    only logs it (logger "aiokafka", ERROR: 'Unable connect to "host:port": <reason>').
    """
    producer = AIOKafkaProducer(request_timeout_ms=10_000, **client)
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        try:
            with pytest.raises(KafkaConnectionError, match="Unable to bootstrap from") as info:
                await producer.start()
        finally:
            await producer.stop()
    error, logged = str(info.value), caplog.text
    for secret in ALL_SECRETS:
        assert secret not in error
        assert secret not in logged
    return error, logged


# --------------------------------------------------------------------------- Kafka


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
async def test_sasl_ssl_round_trip(secured_kafka: SecuredKafka, mechanism: str) -> None:
    await _round_trip(secured_kafka, **_sasl_ssl(secured_kafka, mechanism, KAFKA_PASSWORD))


@pytest.mark.parametrize("encrypted_key", [False, True], ids=["key", "encrypted-key"])
async def test_ssl_round_trip_with_client_certificate(
    secured_kafka: SecuredKafka, pki: Pki, encrypted_key: bool
) -> None:
    context = create_ssl_context(
        cafile=str(pki.ca_file),
        certfile=str(pki.client_cert_file),
        keyfile=str(pki.client_key_encrypted_file if encrypted_key else pki.client_key_file),
        password=KEY_PASSWORD if encrypted_key else None,
    )
    await _round_trip(
        secured_kafka,
        bootstrap_servers=secured_kafka.ssl_bootstrap,
        security_protocol="SSL",
        ssl_context=context,
    )


async def test_sasl_plaintext_oauthbearer_round_trip(secured_kafka: SecuredKafka) -> None:
    await _round_trip(
        secured_kafka,
        bootstrap_servers=secured_kafka.sasl_plaintext_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=UnsecuredJwt(KAFKA_USER),
    )


async def test_sasl_plaintext_scram_round_trip(secured_kafka: SecuredKafka) -> None:
    await _round_trip(
        secured_kafka,
        bootstrap_servers=secured_kafka.sasl_plaintext_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=KAFKA_USER,
        sasl_plain_password=KAFKA_PASSWORD,
    )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
async def test_wrong_password_is_refused(
    secured_kafka: SecuredKafka, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, logged = await _refused(caplog, **_sasl_ssl(secured_kafka, mechanism, WRONG_PASSWORD))
    assert "SaslAuthenticationFailed" in logged


async def test_ssl_listener_refuses_a_client_without_certificate(
    secured_kafka: SecuredKafka, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    # TLS 1.3: the client's handshake completes before the broker checks for a certificate,
    # so the client only sees the connection closed.
    _, logged = await _refused(
        caplog,
        bootstrap_servers=secured_kafka.ssl_bootstrap,
        security_protocol="SSL",
        ssl_context=_ca_only(pki),
    )
    assert "closed" in logged


async def test_a_client_trusting_another_ca_is_refused(
    secured_kafka: SecuredKafka, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    client = _sasl_ssl(secured_kafka, "SCRAM-SHA-512", KAFKA_PASSWORD)
    client["ssl_context"] = create_ssl_context(cafile=str(pki.other_ca_file))
    _, logged = await _refused(caplog, **client)
    assert "CERTIFICATE_VERIFY_FAILED" in logged


# --------------------------------------------------------------------------- Redis


def _redis_tls(pki: Pki) -> dict[str, Any]:
    return {
        "ssl_ca_certs": str(pki.ca_file),
        "ssl_certfile": str(pki.client_cert_file),
        "ssl_keyfile": str(pki.client_key_file),
    }


async def _ping(url: str, **kwargs: Any) -> object:
    client = aioredis.Redis.from_url(url, **kwargs)
    try:
        return await client.ping()
    finally:
        await client.aclose()


def _sync_ping(url: str, **kwargs: Any) -> object:
    """For connections that must be refused. redis.asyncio sometimes leaves the socket of a TLS
    connection refused at AUTH/HELLO unclosed when the test's event loop ends (a ResourceWarning,
    an error under filterwarnings=error): the sync client closes it at once."""
    with redis.Redis.from_url(url, **kwargs) as client:
        return client.ping()


async def test_tls_redis_serves_the_acl_user_only(secured_redis: LocalRedis, pki: Pki) -> None:
    assert secured_redis.url == f"rediss://127.0.0.1:{secured_redis.port}/0"
    tls = _redis_tls(pki)
    assert await _ping(secured_redis.url, username=REDIS_USER, password=REDIS_PASSWORD, **tls)
    with pytest.raises(redis.exceptions.AuthenticationError):
        await asyncio.to_thread(_sync_ping, secured_redis.url, **tls)  # default user: off
    with pytest.raises(redis.exceptions.AuthenticationError):
        await asyncio.to_thread(
            _sync_ping, secured_redis.url, username=REDIS_USER, password=WRONG_PASSWORD, **tls
        )


async def test_tls_redis_takes_an_encrypted_client_key(secured_redis: LocalRedis, pki: Pki) -> None:
    assert await _ping(
        secured_redis.url,
        username=REDIS_USER,
        password=REDIS_PASSWORD,
        ssl_ca_certs=str(pki.ca_file),
        ssl_certfile=str(pki.client_cert_file),
        ssl_keyfile=str(pki.client_key_encrypted_file),
        ssl_password=KEY_PASSWORD,
    )


async def test_tls_redis_refuses_a_client_without_certificate(
    secured_redis: LocalRedis, pki: Pki
) -> None:
    with pytest.raises(redis.exceptions.ConnectionError):
        await asyncio.to_thread(
            _sync_ping,
            secured_redis.url,
            username=REDIS_USER,
            password=REDIS_PASSWORD,
            ssl_ca_certs=str(pki.ca_file),
        )


async def test_plain_acl_redis_serves_the_acl_user_only(plain_acl_redis: LocalRedis) -> None:
    assert plain_acl_redis.url.startswith("redis://")
    assert await _ping(plain_acl_redis.url, username=REDIS_USER, password=REDIS_PASSWORD)
    with pytest.raises(redis.exceptions.AuthenticationError):
        await _ping(plain_acl_redis.url)  # plain TCP: the async client closes cleanly


async def test_tls_cluster_is_ok_for_the_acl_user(
    secured_redis_cluster: LocalRedisCluster, pki: Pki
) -> None:
    assert secured_redis_cluster.url.startswith("rediss://")
    assert secured_redis_cluster.cluster_info()["cluster_state"] == "ok"
    client = aioredis.RedisCluster.from_url(
        secured_redis_cluster.url, username=REDIS_USER, password=REDIS_PASSWORD, **_redis_tls(pki)
    )
    try:
        info = await client.cluster_info()
        assert info["cluster_state"] == "ok"
        # Keys on every primary: each node serves TLS to clients (the slot map's addresses).
        for i in range(12):
            await client.set(f"secure:{i}", i)
        assert len(client.get_primaries()) == 3
        assert [await client.get(f"secure:{i}") for i in range(12)] == [
            str(i).encode() for i in range(12)
        ]
    finally:
        await client.aclose()
