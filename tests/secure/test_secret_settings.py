"""Security settings, without services: what is accepted, what is refused and how the refusal
reads, and that a secret's value never shows in a repr, an error or `--help`."""

import argparse
import ssl
from pathlib import Path

import pytest
from aiokafka.abc import AbstractTokenProvider

from session_client.connection import (
    KafkaConnection,
    kafka_client_params,
    kafka_connection_from_env,
    token_provider,
)
from session_client.oauth import FileTokenProvider
from session_client.secret import MASK, Secret, masked_url, split_url_credentials
from tests.secure.access import leaks
from tests.secure.canary import ALL_SECRETS, KAFKA_PASSWORD, KEY_PASSWORD, REDIS_PASSWORD
from worker.cli import build_parser
from worker.errors import SettingsError
from worker.redis_client import (
    HiredisPackingConnection,
    connect_redis,
    redis_auth_params,
    uses_hiredis_packing,
)
from worker.settings import ENV, SECRET_FIELDS, Settings


def sasl_ssl_env(**extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": "broker:9096",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "worker",
        **extra,
    }


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return str(caught.value)


def test_every_secret_setting_can_come_from_a_file(tmp_path: Path) -> None:
    files = {}
    for name, value in {
        "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
        "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        "REDIS_PASSWORD": REDIS_PASSWORD,
    }.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")  # as `kubectl create secret --from-file` often leaves it
        files[name + "_FILE"] = str(path)
    key = tmp_path / "client.key"
    cert = tmp_path / "client.pem"
    key.write_text("not read until a client is made")
    cert.write_text("not read until a client is made")
    url = tmp_path / "redis_url"
    url.write_text("rediss://cache.internal:6380/0")
    env = sasl_ssl_env(
        **files,
        KAFKA_SSL_CERTFILE=str(cert),
        KAFKA_SSL_KEYFILE=str(key),
        REDIS_URL_FILE=str(url),
    )
    s = Settings.from_env(env)
    assert s.kafka_sasl_password == Secret(KAFKA_PASSWORD)
    assert s.kafka_ssl_key_password == Secret(KEY_PASSWORD)
    assert s.redis_password == Secret(REDIS_PASSWORD)
    assert s.redis_url == "rediss://cache.internal:6380/0"
    assert {ENV[name] for name in SECRET_FIELDS} == {
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_KEY_PASSWORD",
        "REDIS_PASSWORD",
        "REDIS_URL",
    }


def test_a_secret_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(KAFKA_PASSWORD)
    why = refusal(
        sasl_ssl_env(KAFKA_SASL_PASSWORD=KAFKA_PASSWORD, KAFKA_SASL_PASSWORD_FILE=str(path))
    )
    assert why == "KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set; set one of them"


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read it"), ("", "the file is empty")],
)
def test_an_unusable_secret_file_is_named(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "password"
    if content is not None:
        path.write_text(content)
    why = refusal({"REDIS_PASSWORD_FILE": str(path)})
    assert why.startswith(f"REDIS_PASSWORD_FILE={str(path)!r}: {expected}")


def test_a_password_in_redis_url_leaves_the_url() -> None:
    env = {
        "REDIS_URL": f"rediss://app:{REDIS_PASSWORD}@cache:6380/0",
        "SW_REDIS_CLUSTER": "true",
    }
    s = Settings.from_env(env)
    assert s.redis_url == "rediss://cache:6380/0"
    assert s.redis_username == "app"
    assert s.redis_password == Secret(REDIS_PASSWORD)
    assert REDIS_PASSWORD not in repr(s)
    assert REDIS_PASSWORD not in str(s)
    assert redis_auth_params(s)["password"] == REDIS_PASSWORD


def test_the_cluster_settings_error_shows_no_password() -> None:
    # The report: a cluster URL naming a database quoted the whole URL, password too.
    why = refusal(
        {"REDIS_URL": f"redis://app:{REDIS_PASSWORD}@cache:6379/3", "SW_REDIS_CLUSTER": "true"}
    )
    assert "only database 0" in why
    assert REDIS_PASSWORD not in why


def test_a_password_given_in_the_url_and_on_its_own_is_refused() -> None:
    why = refusal(
        {"REDIS_URL": f"redis://:{REDIS_PASSWORD}@cache:6379/0", "REDIS_PASSWORD": "other"}
    )
    assert why == "REDIS_PASSWORD and a password in REDIS_URL are both given; give it once"


def test_url_credentials_split_and_mask() -> None:
    url = f"redis://u%40x:{REDIS_PASSWORD}@h:1/0?ssl_min_version=3&password=q"
    assert split_url_credentials(url) == ("redis://h:1/0?ssl_min_version=3", "u@x", "q")
    shown = masked_url(url)
    assert REDIS_PASSWORD not in shown
    assert "password=q" not in shown
    assert shown.startswith(f"redis://u%40x:{MASK}@h:1/0")
    assert masked_url("redis://h:1/0") == "redis://h:1/0"


def test_secret_shows_only_the_mask() -> None:
    secret = Secret(KAFKA_PASSWORD)
    shown = [repr(secret), str(secret), f"{secret}", "%s" % (secret,), repr([secret])]  # noqa: UP031
    assert all(KAFKA_PASSWORD not in text for text in shown)
    assert secret.reveal() == KAFKA_PASSWORD
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "TLS"},
            "KAFKA_SECURITY_PROTOCOL='TLS': must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
            "SASL_SSL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_SASL_MECHANISM=None: with KAFKA_SECURITY_PROTOCOL=SASL_SSL must be one of "
            "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "KAFKA_SASL_MECHANISM=PLAIN needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD "
            "(or KAFKA_SASL_PASSWORD_FILE)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTH_TOKEN_PROVIDER "
            "(module:callable returning a token provider)",
        ),
        (
            {"KAFKA_SASL_USERNAME": "worker", "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD},
            "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD given, but "
            "KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL (SASL_SSL or SASL_PLAINTEXT "
            "does)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SSL_CAFILE": "/ca.pem"},
            "KAFKA_SASL_MECHANISM=None: with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT must be one "
            "of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER",
        ),
        (
            {"KAFKA_SSL_CAFILE": "/ca.pem"},
            "KAFKA_SSL_CAFILE given, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS "
            "(SSL or SASL_SSL does)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"},
            "KAFKA_SSL_CAFILE='/nowhere/ca.pem': no such file",
        ),
        (
            {"REDIS_SSL_CAFILE": "/ca.pem"},
            "REDIS_SSL_CAFILE='/ca.pem': only used with a rediss:// (TLS) REDIS_URL",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KAFKA_SASL_OAUTH_TOKEN_PROVIDER": "no_colon",
            },
            "KAFKA_SASL_OAUTH_TOKEN_PROVIDER='no_colon': must be module:callable",
        ),
    ],
)
def test_kafka_and_redis_combinations_that_cannot_work(env: dict[str, str], expected: str) -> None:
    assert refusal(env) == expected
    assert KAFKA_PASSWORD not in expected


def test_client_params_per_protocol(tmp_path: Path) -> None:
    plain = kafka_client_params(KafkaConnection("k:9092"))
    assert plain == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}

    scram = kafka_client_params(
        Settings.from_env(
            sasl_ssl_env(
                KAFKA_SASL_PASSWORD=KAFKA_PASSWORD, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT"
            )
        ).kafka
    )
    assert scram == {
        "bootstrap_servers": "broker:9096",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": KAFKA_PASSWORD,
    }

    tls = kafka_client_params(
        Settings.from_env(sasl_ssl_env(KAFKA_SASL_PASSWORD=KAFKA_PASSWORD)).kafka
    )
    context = tls["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_the_worker_clients_take_the_connection_keywords() -> None:
    s = Settings.from_env(sasl_ssl_env(KAFKA_SASL_PASSWORD=KAFKA_PASSWORD))
    for params in (s.to_consumer_params(), s.to_producer_params()):
        assert params["security_protocol"] == "SASL_SSL"
        assert params["sasl_mechanism"] == "SCRAM-SHA-512"
        assert params["sasl_plain_password"] == KAFKA_PASSWORD
        assert isinstance(params["ssl_context"], ssl.SSLContext)


def test_unloadable_tls_files_are_settings_errors(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    connection = KafkaConnection("k:9093", security_protocol="SSL", ssl_cafile=str(bad))
    with pytest.raises(SettingsError, match=r"KAFKA_SSL_CAFILE=.*cannot load CA certificates"):
        kafka_client_params(connection)


class StaticTokens(AbstractTokenProvider):  # type: ignore[misc]
    async def token(self) -> str:
        return "a.b.c"


def not_a_provider() -> object:
    return object()


def test_token_provider_is_loaded_from_module_and_callable(tmp_path: Path) -> None:
    provider = token_provider(f"{__name__}:StaticTokens")
    assert isinstance(provider, StaticTokens)
    assert token_provider(f"{__name__}:StaticTokens") is provider  # one per process
    params = kafka_client_params(
        KafkaConnection(
            "k:9092",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=f"{__name__}:StaticTokens",
        )
    )
    assert params["sasl_oauth_token_provider"] is provider
    assert params["sasl_mechanism"] == "OAUTHBEARER"
    for spec, why in [
        ("tests.no_such_module:x", "cannot import"),
        (f"{__name__}:missing", "has no callable 'missing'"),
        (f"{__name__}:not_a_provider", "not an aiokafka.abc.AbstractTokenProvider"),
    ]:
        with pytest.raises(SettingsError, match=why):
            token_provider(spec)


@pytest.mark.asyncio
async def test_the_file_token_provider_reads_the_file_at_each_call(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    provider = FileTokenProvider(path)
    assert await provider.token() == "first"
    path.write_text("second")
    assert await provider.token() == "second"
    with pytest.raises(SettingsError, match="KAFKA_SASL_OAUTH_TOKEN_FILE"):
        FileTokenProvider()


def test_the_client_kit_reads_the_same_kafka_settings() -> None:
    connection = kafka_connection_from_env(sasl_ssl_env(KAFKA_SASL_PASSWORD=KAFKA_PASSWORD))
    assert connection.security_protocol == "SASL_SSL"
    assert connection.sasl_password == Secret(KAFKA_PASSWORD)
    assert KAFKA_PASSWORD not in repr(connection)


def test_hiredis_packing_only_on_plain_tcp() -> None:
    # The packing connection is a TCP connection: on rediss:// it would drop TLS.
    assert uses_hiredis_packing("redis://h:6379/0")
    assert not uses_hiredis_packing("rediss://h:6380/0")
    assert not uses_hiredis_packing("unix:///run/redis.sock")
    with_auth = connect_redis(Settings(redis_url="redis://u:pw@h:6379/0"))
    pool = with_auth.connection_pool  # type: ignore[union-attr]
    assert pool.connection_class is HiredisPackingConnection
    assert pool.connection_kwargs["username"] == "u"
    assert pool.connection_kwargs["password"] == "pw"
    tls = connect_redis(Settings(redis_url="rediss://u:pw@h:6380/0"))
    tls_pool = tls.connection_pool  # type: ignore[union-attr]
    assert tls_pool.connection_class is not HiredisPackingConnection
    assert tls_pool.connection_class.__name__ == "SSLConnection"
    assert tls_pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert tls_pool.connection_kwargs["ssl_check_hostname"] is True


def test_help_offers_no_secret_flags_and_shows_no_secret_default() -> None:
    parser = build_parser()
    text = ""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            text = action.choices["run"].format_help()
    for flag in ("--kafka-sasl-password", "--kafka-ssl-key-password", "--redis-password"):
        assert flag not in text
    assert "--kafka-security-protocol" in text
    assert "--redis-ssl-cafile" in text


def test_the_canary_search_finds_a_leak() -> None:
    # The search below must be able to fail: it finds each canary where one is.
    for secret in ALL_SECRETS:
        assert leaks([f"error: password {secret} refused"]) == [secret]
        assert leaks([f"x{secret}x".encode()]) == [secret]
    assert leaks(["nothing to see"]) == []
