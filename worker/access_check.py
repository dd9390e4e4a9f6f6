"""First contact with Kafka and Redis: an answer that means "no" becomes one clear failure.

aiokafka's bootstrap logs each host's error and raises only "Unable to bootstrap", and on a
later failure it keeps retrying; redis-py reports a TLS failure as a connection error like any
other. So when the clients cannot start, `run` and `check --deep` open one connection of their
own and sort what comes back (Redis, which connects only on first use, is asked at start):
wrong credentials, an untrusted or missing certificate, a mechanism or protocol the service
does not speak raise `AccessDeniedError` naming the settings to look at. Anything else (a
service not up yet) is left to the clients' own retries, as before.
"""

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.admin import SaslHandShakeRequest
from redis.exceptions import AuthenticationError, ConnectionError, RedisError, ResponseError

from session_client.connection import KafkaConnection, kafka_client_params
from worker.errors import AccessDeniedError
from worker.redis_client import RedisClient
from worker.settings import Settings

CONNECT_TIMEOUT_S = 10.0
RECHECK_AFTER_CLOSE_S = 0.5
PLAIN_PROBE_TIMEOUT_S = 1.0

_SASL_REFUSED = (SaslAuthenticationFailed, IllegalSaslStateError, AuthenticationFailedError)
_CREDENTIALS = ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
_CLIENT_CERT = ("KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")
# What OpenSSL says when the other side refused our certificate, or sent none we could use.
_CERT_REFUSED = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN")


async def verify_kafka(connection: KafkaConnection, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Connects to the bootstrap servers in turn as the clients would (TLS, SASL) and returns
    at the first that accepts; raises `AccessDeniedError` at the first that refuses."""
    params = kafka_client_params(connection)
    del params["bootstrap_servers"]
    for host, port in _hosts(connection.bootstrap_servers):
        for attempt in range(2):
            try:
                conn = await asyncio.wait_for(
                    create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **params),
                    timeout_s,
                )
            except (OSError, KafkaError, TimeoutError) as exc:
                denied = _kafka_denial(connection, exc)
                if isinstance(exc, UnsupportedSaslMechanismError):
                    denied = await _mechanism_denial(connection, host, port, params)
                if denied is None:
                    break  # not reachable: the clients' own bootstrap reports it
                if _closed_early(exc) and attempt == 0:
                    # A broker going down closes connections too; one that refuses closes
                    # them again, while one going down no longer accepts any.
                    await asyncio.sleep(RECHECK_AFTER_CLOSE_S)
                    continue
                raise denied from None
            conn.close()
            return


async def _mechanism_denial(
    c: KafkaConnection, host: str, port: int, params: dict[str, Any]
) -> AccessDeniedError:
    """Names the mechanisms the listener does enable: it says so in answer to a handshake,
    which aiokafka's error leaves out."""
    offered = "the ones it enables could not be read"
    try:
        conn = await create_conn(
            host,
            port,
            security_protocol="SSL" if c.uses_tls else "PLAINTEXT",
            ssl_context=params.get("ssl_context"),
        )
        try:
            answer = await conn.send(SaslHandShakeRequest(str(c.sasl_mechanism)))
        finally:
            conn.close()
        offered = "it enables " + ", ".join(answer.enabled_mechanisms)
    except (OSError, KafkaError, TimeoutError):
        pass  # the refusal stands on its own
    return AccessDeniedError(
        "kafka",
        ("KAFKA_SASL_MECHANISM",),
        f"the listener does not enable {c.sasl_mechanism}; {offered}",
    )


def _hosts(bootstrap_servers: str) -> Iterator[tuple[str, int]]:
    for entry in bootstrap_servers.split(","):
        host, _, port = entry.strip().rpartition(":")
        if host and port.isdigit():
            yield host.strip("[]"), int(port)


def _kafka_denial(c: KafkaConnection, exc: BaseException) -> AccessDeniedError | None:
    def denied(settings: tuple[str, ...], answer: str) -> AccessDeniedError:
        return AccessDeniedError("kafka", settings, answer)

    if isinstance(exc, _SASL_REFUSED):
        settings = (
            ("KAFKA_SASL_OAUTH_TOKEN_PROVIDER",)
            if c.sasl_mechanism == "OAUTHBEARER"
            else _CREDENTIALS
        )
        return denied(settings, f"authentication failed: {_kafka_message(exc)}")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return denied(("KAFKA_SASL_MECHANISM",), f"the listener does not enable {c.sasl_mechanism}")
    if c.uses_tls and isinstance(exc, ConnectionResetError | ssl.SSLEOFError):
        return denied(
            ("KAFKA_SECURITY_PROTOCOL",),
            "the broker closed the connection during the TLS handshake: the listener does not "
            "speak TLS",
        )
    tls = _ssl_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        return denied(
            ("KAFKA_SSL_CAFILE",),
            f"the broker's certificate is not trusted: {tls.verify_message}",
        )
    if tls is not None:
        reason = str(tls.reason or tls)
        if any(mark in reason.upper() for mark in _CERT_REFUSED):
            return denied(_CLIENT_CERT, f"the broker refused the client certificate ({reason})")
        if "WRONG_VERSION_NUMBER" in reason.upper():
            return denied(
                ("KAFKA_SECURITY_PROTOCOL",),
                f"TLS handshake failed ({reason}): the listener does not speak TLS",
            )
        return denied(("KAFKA_SECURITY_PROTOCOL", "KAFKA_SSL_CAFILE"), f"TLS failed: {reason}")
    if isinstance(exc, KafkaConnectionError) and c.uses_tls and c.ssl_certfile is None:
        # TLS 1.3: a broker that wants a client certificate closes the connection after a
        # handshake that looked complete to the client.
        return denied(
            _CLIENT_CERT,
            f"the broker closed the TLS connection ({_kafka_message(exc)}); it may require a "
            "client certificate",
        )
    if _closed_early(exc):
        return denied(
            ("KAFKA_SECURITY_PROTOCOL",),
            f"the broker closed the connection before answering ({_kafka_message(exc)}); "
            f"does this listener speak {c.security_protocol}?",
        )
    return None


def _closed_early(exc: BaseException) -> bool:
    """The connection was closed by the other side before an answer."""
    if isinstance(exc, ConnectionResetError | ssl.SSLEOFError):
        return True
    return isinstance(exc, KafkaConnectionError) and "closed" in str(exc).lower()


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `exc` (itself, or its cause or context), if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _kafka_message(exc: BaseException) -> str:
    if isinstance(exc, KafkaError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


async def verify_redis(
    client: RedisClient, settings: Settings, timeout_s: float, *, strict: bool = False
) -> None:
    """PING with the worker's own client; raises `AccessDeniedError` when Redis refused us.
    Any other failure (Redis not up yet) is left to the caller's retries, or with `strict`
    raised as it is."""
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except (RedisError, OSError, TimeoutError) as exc:
        denied = _redis_denial(settings, exc)
        if denied is None and settings.redis_url.startswith("rediss://"):
            # A plain Redis never answers a TLS handshake: the client just times out.
            denied = await _plain_redis_behind_tls_url(settings.redis_url)
        if denied is not None:
            raise denied from None
        if strict:
            raise


async def _plain_redis_behind_tls_url(url: str) -> AccessDeniedError | None:
    parts = urlsplit(url)
    if parts.hostname is None:
        return None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 6379), PLAIN_PROBE_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(b"PING\r\n")
        answer = await asyncio.wait_for(reader.read(64), PLAIN_PROBE_TIMEOUT_S)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    if not answer.startswith((b"+", b"-")):
        return None
    return AccessDeniedError(
        "redis",
        ("REDIS_URL",),
        "the server speaks plain Redis, not TLS: is this port rediss:// or redis://?",
    )


def _redis_denial(s: Settings, exc: BaseException) -> AccessDeniedError | None:
    def denied(settings: tuple[str, ...], answer: str) -> AccessDeniedError:
        return AccessDeniedError("redis", settings, answer)

    text = str(exc)
    if isinstance(exc, AuthenticationError) or (
        isinstance(exc, ResponseError) and text.startswith(("NOAUTH", "WRONGPASS"))
    ):
        return denied(("REDIS_USERNAME", "REDIS_PASSWORD"), text)
    if not isinstance(exc, ConnectionError | OSError):
        return None
    upper = text.upper()
    if "CERTIFICATE_VERIFY_FAILED" in upper:
        return denied(("REDIS_SSL_CAFILE",), f"the server's certificate is not trusted: {text}")
    if any(mark in upper for mark in _CERT_REFUSED):
        return denied(
            ("REDIS_SSL_CERTFILE", "REDIS_SSL_KEYFILE"),
            f"the server refused the client certificate: {text}",
        )
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
        return denied(("REDIS_URL",), f"TLS failed ({text}): is this port rediss:// or redis://?")
    return None
