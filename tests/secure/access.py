"""What the secured tests share: the environment a process gets for each way of connecting
(secrets always through `<NAME>_FILE`), the CLI run against it, and the canary search."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from devenv.kafka_secured import SecuredKafka
from devenv.pki import Pki
from tests.secure.canary import (
    ALL_SECRETS,
    KAFKA_PASSWORD,
    KAFKA_USER,
    KEY_PASSWORD,
    REDIS_PASSWORD,
    REDIS_USER,
)
from worker.ops.topics import ensure_topics
from worker.settings import Settings

PARTITIONS = 3


def secret_file(directory: Path, name: str, value: str) -> str:
    path = directory / f"{name}-{uuid.uuid4().hex[:8]}"
    path.write_text(value + "\n")  # a trailing newline, as secret files often have
    path.chmod(0o600)
    return str(path)


def topics_env() -> dict[str, str]:
    """A topic set and consumer group of the test's own."""
    run = uuid.uuid4().hex[:10]
    return {
        "SW_COMMANDS_TOPIC": f"s{run}.commands",
        "SW_EVENTS_TOPIC": f"s{run}.events",
        "SW_DEAD_LETTER_TOPIC": f"s{run}.commands.dlq",
        "SW_GROUP_ID": f"s{run}",
        "SW_POLL_TIMEOUT_MS": "100",
        "SW_HTTP_PORT": "0",
        "SW_SHUTDOWN_GRACE_S": "10",
        "SW_LOG_FORMAT": "json",
    }


def sasl_ssl_kafka(
    kafka: SecuredKafka, pki: Pki, directory: Path, *, password: str = KAFKA_PASSWORD
) -> dict[str, str]:
    """SCRAM-SHA-512 over TLS, the server checked against the test CA."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.sasl_ssl_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": KAFKA_USER,
        "KAFKA_SASL_PASSWORD_FILE": secret_file(directory, "kafka-password", password),
        "KAFKA_SSL_CAFILE": str(pki.ca_file),
    }


def mutual_tls_kafka(kafka: SecuredKafka, pki: Pki, directory: Path) -> dict[str, str]:
    """The listener that requires a client certificate; the key is encrypted."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.ssl_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CAFILE": str(pki.ca_file),
        "KAFKA_SSL_CERTFILE": str(pki.client_cert_file),
        "KAFKA_SSL_KEYFILE": str(pki.client_key_encrypted_file),
        "KAFKA_SSL_KEY_PASSWORD_FILE": secret_file(directory, "key-password", KEY_PASSWORD),
    }


def tls_acl_redis(
    url: str, pki: Pki, directory: Path, *, password: str = REDIS_PASSWORD
) -> dict[str, str]:
    """TLS with a client certificate (the servers require one) and the ACL user."""
    return {
        "REDIS_URL": url,
        "REDIS_USERNAME": REDIS_USER,
        "REDIS_PASSWORD_FILE": secret_file(directory, "redis-password", password),
        "REDIS_SSL_CAFILE": str(pki.ca_file),
        "REDIS_SSL_CERTFILE": str(pki.client_cert_file),
        "REDIS_SSL_KEYFILE": str(pki.client_key_file),
    }


def clean_environ() -> dict[str, str]:
    """This process' environment without any connection or worker setting of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "REDIS_", "SW_"))}


async def settings_with_topics(env: Mapping[str, str]) -> Settings:
    """The worker's settings read from `env` as the process would, the topics created (through
    the secured connection)."""
    settings = Settings.from_env(env)
    await ensure_topics(settings, partitions=PARTITIONS, replication_factor=1)
    return settings


async def cli(
    env: Mapping[str, str], *args: str, stdin: str | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """`session-worker ARGS` in a fresh process with exactly these settings."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "worker", *args],
        env={**clean_environ(), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in a process' stderr (other lines are skipped)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def leaks(texts: Iterable[str | bytes]) -> list[str]:
    """Which canary secrets appear anywhere in `texts`."""
    found: set[str] = set()
    for text in texts:
        raw = text.encode() if isinstance(text, str) else text
        found.update(s for s in ALL_SECRETS if s.encode() in raw)
    return sorted(found)
