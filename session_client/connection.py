"""How every Kafka client the project builds connects: one value, one function.

`KafkaConnection` holds the bootstrap servers and the security settings (`KAFKA_*`);
`kafka_client_params` turns it into the keywords that `AIOKafkaConsumer`, `AIOKafkaProducer`
and `AIOKafkaAdminClient` take. Every construction site passes `**kafka_client_params(...)`, and
tests/secure/test_construction_sites.py fails for one that does not, so a new command cannot
quietly connect in plaintext.
"""

import importlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from session_client.environment import read_variable
from session_client.errors import SettingsError
from session_client.secret import Secret, reveal

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
PASSWORD_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them. Checked when made: a combination
    that cannot work (a SASL protocol without a mechanism, a client key without a certificate,
    ...) is a `SettingsError` naming the settings, never showing a secret."""

    bootstrap_servers: str = "localhost:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    sasl_oauth_token_provider: str | None = None  # "module:callable"
    ssl_cafile: str | None = None  # None: the system's trust store
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: Secret | None = None

    def __post_init__(self) -> None:
        for name in ("sasl_password", "ssl_key_password"):
            value = getattr(self, name)
            if isinstance(value, str):  # a caller's plain string is kept masked from here on
                object.__setattr__(self, name, Secret(value))
        _check(self)

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")


def _check(c: KafkaConnection) -> None:
    def fail(why: str) -> None:
        raise SettingsError(why)

    if not c.bootstrap_servers.strip():
        fail(f"KAFKA_BOOTSTRAP_SERVERS={c.bootstrap_servers!r}: must list at least one host:port")
    if c.security_protocol not in SECURITY_PROTOCOLS:
        fail(
            f"KAFKA_SECURITY_PROTOCOL={c.security_protocol!r}: must be one of "
            + ", ".join(SECURITY_PROTOCOLS)
        )
    if c.uses_sasl:
        if c.sasl_mechanism not in SASL_MECHANISMS:
            fail(
                f"KAFKA_SASL_MECHANISM={c.sasl_mechanism!r}: with "
                f"KAFKA_SECURITY_PROTOCOL={c.security_protocol} must be one of "
                + ", ".join(SASL_MECHANISMS)
            )
        if c.sasl_mechanism in PASSWORD_MECHANISMS and not (c.sasl_username and c.sasl_password):
            fail(
                f"KAFKA_SASL_MECHANISM={c.sasl_mechanism} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
        if c.sasl_mechanism == "OAUTHBEARER" and not c.sasl_oauth_token_provider:
            fail(
                "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTH_TOKEN_PROVIDER "
                "(module:callable returning a token provider)"
            )
    else:
        given = [
            env
            for env, value in (
                ("KAFKA_SASL_MECHANISM", c.sasl_mechanism),
                ("KAFKA_SASL_USERNAME", c.sasl_username),
                ("KAFKA_SASL_PASSWORD", c.sasl_password),
                ("KAFKA_SASL_OAUTH_TOKEN_PROVIDER", c.sasl_oauth_token_provider),
            )
            if value
        ]
        if given:
            fail(
                f"{', '.join(given)} given, but KAFKA_SECURITY_PROTOCOL={c.security_protocol} "
                "does not use SASL (SASL_SSL or SASL_PLAINTEXT does)"
            )
    tls_given = [
        env
        for env, value in (
            ("KAFKA_SSL_CAFILE", c.ssl_cafile),
            ("KAFKA_SSL_CERTFILE", c.ssl_certfile),
            ("KAFKA_SSL_KEYFILE", c.ssl_keyfile),
            ("KAFKA_SSL_KEY_PASSWORD", c.ssl_key_password),
        )
        if value
    ]
    if tls_given and not c.uses_tls:
        fail(
            f"{', '.join(tls_given)} given, but KAFKA_SECURITY_PROTOCOL={c.security_protocol} "
            "does not use TLS (SSL or SASL_SSL does)"
        )
    if bool(c.ssl_certfile) != bool(c.ssl_keyfile):
        fail("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (a certificate and its key)")
    if c.ssl_key_password and not c.ssl_keyfile:
        fail("KAFKA_SSL_KEY_PASSWORD given without KAFKA_SSL_KEYFILE")
    if c.sasl_oauth_token_provider and c.sasl_mechanism != "OAUTHBEARER":
        fail("KAFKA_SASL_OAUTH_TOKEN_PROVIDER is only used with KAFKA_SASL_MECHANISM=OAUTHBEARER")
    if c.sasl_oauth_token_provider and ":" not in c.sasl_oauth_token_provider:
        fail(
            f"KAFKA_SASL_OAUTH_TOKEN_PROVIDER={c.sasl_oauth_token_provider!r}: must be "
            "module:callable"
        )


_SECRETS = frozenset({"sasl_password", "ssl_key_password"})


def kafka_connection_from_env(env: Mapping[str, str] | None = None) -> KafkaConnection:
    """A connection from the worker's own variables: `KAFKA_BOOTSTRAP_SERVERS`,
    `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_*`, passwords also from `*_FILE`."""
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name in KafkaConnection.__dataclass_fields__:
        raw = read_variable(source, "KAFKA_" + name.upper(), secret=name in _SECRETS)
        if raw:
            values[name] = raw
    return KafkaConnection(**values)


def kafka_client_params(connection: KafkaConnection) -> dict[str, Any]:
    """The connection keywords of an aiokafka consumer, producer or admin client."""
    params: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap_servers,
        "security_protocol": connection.security_protocol,
    }
    if connection.uses_tls:
        params["ssl_context"] = ssl_context(connection)
    if connection.uses_sasl:
        params["sasl_mechanism"] = connection.sasl_mechanism
        if connection.sasl_mechanism == "OAUTHBEARER":
            assert connection.sasl_oauth_token_provider is not None  # noqa: S101 - checked
            params["sasl_oauth_token_provider"] = token_provider(
                connection.sasl_oauth_token_provider
            )
        else:
            params["sasl_plain_username"] = connection.sasl_username
            params["sasl_plain_password"] = reveal(connection.sasl_password)
    return params


@lru_cache(maxsize=8)
def ssl_context(connection: KafkaConnection) -> ssl.SSLContext:
    """Server verification against `ssl_cafile` (or the system's store), hostname checked;
    the client certificate for mutual TLS when given. One per connection settings."""
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=connection.ssl_cafile)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"KAFKA_SSL_CAFILE={connection.ssl_cafile!r}: cannot load CA certificates "
            f"({_reason(exc)})"
        ) from None
    if connection.ssl_certfile:
        try:
            context.load_cert_chain(
                connection.ssl_certfile,
                connection.ssl_keyfile,
                password=reveal(connection.ssl_key_password),
            )
        except (OSError, ssl.SSLError) as exc:
            hint = (
                "wrong KAFKA_SSL_KEY_PASSWORD, or the key does not match the certificate"
                if connection.ssl_key_password
                else "an encrypted key needs KAFKA_SSL_KEY_PASSWORD"
            )
            raise SettingsError(
                f"KAFKA_SSL_CERTFILE={connection.ssl_certfile!r}, "
                f"KAFKA_SSL_KEYFILE={connection.ssl_keyfile!r}: cannot load the client "
                f"certificate ({_reason(exc)}; {hint})"
            ) from None
    return context


@lru_cache(maxsize=8)
def token_provider(spec: str) -> AbstractTokenProvider:
    """The operator's OAUTHBEARER token provider: `module:callable`, called once with no
    arguments (a provider class, or a factory), shared by every client of the process."""
    module_name, _, attribute = spec.partition(":")
    where = f"KAFKA_SASL_OAUTH_TOKEN_PROVIDER={spec!r}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(f"{where}: cannot import {module_name!r} ({exc})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SettingsError(f"{where}: {module_name} has no callable {attribute!r}")
    try:
        provider = factory()
    except Exception as exc:  # noqa: BLE001 - any failure of the operator's code is reported
        raise SettingsError(f"{where}: calling it failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(provider, AbstractTokenProvider):
        raise SettingsError(
            f"{where}: returned {type(provider).__name__}, not an "
            "aiokafka.abc.AbstractTokenProvider"
        )
    return provider


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


async def partitions_of(connection: KafkaConnection, topic: str) -> list[int]:
    """The partition ids of an existing topic (readers assign all of them)."""
    admin = AIOKafkaAdminClient(**kafka_client_params(connection))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        if described.get("error_code", 0) != 0:
            raise LookupError(f"topic {topic!r} does not exist")
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()
