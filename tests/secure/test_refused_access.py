"""A service that says no makes `run` stop at once with one line naming the settings and the
service's answer, and `check --deep` exit 1 with the same words; no password in either."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devenv.kafka_secured import SecuredKafka
from devenv.pki import Pki
from devenv.redis_local import LocalRedis
from tests.secure.access import (
    cli,
    leaks,
    log_lines,
    mutual_tls_kafka,
    sasl_ssl_kafka,
    tls_acl_redis,
    topics_env,
)
from tests.secure.canary import WRONG_PASSWORD

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

RUN_GIVES_UP_WITHIN_S = 30.0  # not a retry loop: the first refusal ends the start


@dataclass(frozen=True)
class Case:
    service: str
    settings: str  # what the line names, as it names it
    answer: str  # a part of the service's answer the line must carry
    env: Callable[["Secured"], dict[str, str]]


@dataclass(frozen=True)
class Secured:
    kafka: SecuredKafka
    redis: LocalRedis  # TLS (client certificates required) and an ACL user
    plain_redis: LocalRedis  # plain TCP and an ACL user
    pki: Pki
    tmp: Path


def good(s: Secured) -> dict[str, str]:
    return {**sasl_ssl_kafka(s.kafka, s.pki, s.tmp), **tls_acl_redis(s.redis.url, s.pki, s.tmp)}


CASES = {
    "wrong Kafka password": Case(
        "kafka",
        "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD",
        "Authentication failed",
        lambda s: {
            **good(s),
            **sasl_ssl_kafka(s.kafka, s.pki, s.tmp, password=WRONG_PASSWORD),
        },
    ),
    "wrong Redis password": Case(
        "redis",
        "REDIS_USERNAME, REDIS_PASSWORD",
        "invalid username-password pair",
        lambda s: {
            **good(s),
            **tls_acl_redis(s.redis.url, s.pki, s.tmp, password=WRONG_PASSWORD),
        },
    ),
    "Kafka certificate from an untrusted CA": Case(
        "kafka",
        "KAFKA_SSL_CAFILE",
        "certificate is not trusted",
        lambda s: {**good(s), "KAFKA_SSL_CAFILE": str(s.pki.other_ca_file)},
    ),
    "Redis certificate from an untrusted CA": Case(
        "redis",
        "REDIS_SSL_CAFILE",
        "certificate is not trusted",
        lambda s: {**good(s), "REDIS_SSL_CAFILE": str(s.pki.other_ca_file)},
    ),
    "a SASL mechanism the listener does not enable": Case(
        "kafka",
        "KAFKA_SASL_MECHANISM",
        "does not enable PLAIN; it enables SCRAM-SHA-512, OAUTHBEARER",
        lambda s: {
            **good(s),
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka.sasl_plaintext_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SSL_CAFILE": "",
        },
    ),
    "no client certificate where the broker requires one": Case(
        "kafka",
        "KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE",
        "client certificate",
        lambda s: {
            **good(s),
            **{
                name: value
                for name, value in mutual_tls_kafka(s.kafka, s.pki, s.tmp).items()
                if name
                in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SSL_CAFILE")
            },
            "KAFKA_SASL_MECHANISM": "",
            "KAFKA_SASL_USERNAME": "",
            "KAFKA_SASL_PASSWORD_FILE": "",
        },
    ),
    "TLS against a plaintext listener": Case(
        "kafka",
        "KAFKA_SECURITY_PROTOCOL",
        "does not speak TLS",
        lambda s: {
            **good(s),
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka.plaintext_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SASL_MECHANISM": "",
            "KAFKA_SASL_USERNAME": "",
            "KAFKA_SASL_PASSWORD_FILE": "",
        },
    ),
    "plaintext against a TLS listener": Case(
        "kafka",
        "KAFKA_SECURITY_PROTOCOL",
        "does this listener speak PLAINTEXT?",
        lambda s: {
            **good(s),
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka.ssl_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "",
            "KAFKA_SASL_USERNAME": "",
            "KAFKA_SASL_PASSWORD_FILE": "",
            "KAFKA_SSL_CAFILE": "",
        },
    ),
    "rediss:// against a plaintext port": Case(
        "redis",
        "REDIS_URL",
        "is this port rediss:// or redis://?",
        lambda s: {
            **good(s),
            "REDIS_URL": s.plain_redis.url.replace("redis://", "rediss://"),
        },
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_refused_access_is_one_clear_line(
    case: Case,
    secured_kafka: SecuredKafka,
    secured_redis: LocalRedis,
    plain_acl_redis: LocalRedis,
    pki: Pki,
    tmp_path: Path,
) -> None:
    secured = Secured(secured_kafka, secured_redis, plain_acl_redis, pki, tmp_path)
    env = {**case.env(secured), **topics_env()}
    env = {name: value for name, value in env.items() if value != ""}

    began = time.monotonic()
    run = await cli(env, "run", timeout_s=RUN_GIVES_UP_WITHIN_S + 30)
    took = time.monotonic() - began
    assert run.returncode == 1, run.stderr
    assert took < RUN_GIVES_UP_WITHIN_S
    refusals = [line for line in log_lines(run.stderr) if line.get("event") == "cannot connect"]
    assert len(refusals) == 1, run.stderr
    (line,) = refusals
    assert line["level"] == "error"
    assert line["service"] == case.service
    assert line["settings"] == case.settings
    assert case.answer in line["answer"], line["answer"]

    check = await cli(env, "check", "--deep")
    assert check.returncode == 1
    failed = [row for row in check.stderr.splitlines() if row.startswith(f"{case.service}: FAIL")]
    assert len(failed) == 1, check.stdout + check.stderr
    assert line["answer"] in failed[0]  # the same words as the log line
    assert f"(check {case.settings})" in failed[0]

    assert leaks([run.stdout, run.stderr, check.stdout, check.stderr]) == []
