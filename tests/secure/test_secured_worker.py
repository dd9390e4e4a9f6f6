"""The worker and its commands against secured Kafka and Redis, end to end, with every password
given through `<NAME>_FILE`; then a search of everything they printed or wrote for the
passwords (the canaries in tests/secure/canary.py)."""

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from contracts.commands import CreateSession
from contracts.payloads import CreateSessionDTO
from devenv.kafka_secured import SecuredKafka
from devenv.pki import Pki
from devenv.ports import free_port
from devenv.redis_cluster import LocalRedisCluster
from devenv.redis_local import LocalRedis
from session_client import CommandPublisher, kafka_connection_from_env
from session_client.example_view import SessionView, follow
from tests.factories import create_command, new_id
from tests.ops.helpers import http_get
from tests.secure.access import (
    PARTITIONS,
    clean_environ,
    cli,
    leaks,
    mutual_tls_kafka,
    sasl_ssl_kafka,
    settings_with_topics,
    tls_acl_redis,
    topics_env,
)
from tests.secure.canary import KAFKA_PASSWORD, REDIS_PASSWORD
from tests.support import Record, TopicReader, WorkerHarness
from worker.ops.get import describe_session
from worker.redis_client import HiredisPackingConnection, connect_redis
from worker.settings import Settings

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def created(session_id: str) -> Callable[[list[Record]], bool]:
    def seen(records: list[Record]) -> bool:
        return any(
            r.json().get("type") == "session.created" and r.json().get("sessionId") == session_id
            for r in records
        )

    return seen


async def test_every_command_through_sasl_ssl_kafka_and_tls_acl_redis(
    secured_kafka: SecuredKafka, secured_redis: LocalRedis, pki: Pki, tmp_path: Path
) -> None:
    env = {
        **sasl_ssl_kafka(secured_kafka, pki, tmp_path),
        **tls_acl_redis(secured_redis.url, pki, tmp_path),
        **topics_env(),
    }
    outputs: list[str | bytes] = []

    async def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = await cli(env, *args, stdin=stdin)
        outputs.extend([done.stdout, done.stderr])
        return done

    topics = await run("topics", "--partitions", str(PARTITIONS))
    assert topics.returncode == 0, topics.stderr
    assert "created" in topics.stdout
    checked = await run("topics", "--check", "--partitions", str(PARTITIONS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    deep = await run("check", "--deep")
    assert deep.returncode == 0, deep.stdout + deep.stderr
    assert "kafka: ok" in deep.stdout
    assert "(SASL_SSL)" in deep.stdout
    assert "redis: ok PING answered" in deep.stdout

    port = free_port()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(  # noqa: ASYNC220 - started once, not waited on here
            [sys.executable, "-m", "worker", "run"],
            # Every span, as the console exporter prints it, goes to the log the canaries are
            # looked for in.
            env={
                **clean_environ(),
                **env,
                "SW_HTTP_PORT": str(port),
                "OTEL_TRACES_EXPORTER": "console",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        command = create_command()
        session_id = command["sessionId"]
        lines = json.dumps(command) + "\n" + "not json\n"
        published = await run("publish", stdin=lines)
        assert published.returncode == 1  # the second line is not a command: reported, not sent
        assert "line 2" in published.stderr

        settings = Settings.from_env(env)
        events = TopicReader(settings.kafka, settings.events_topic)
        await events.start()
        try:
            await events.wait_for(created(session_id), timeout_s=60)
        finally:
            await events.stop()
        # A record that is not a command, sent past `publish`'s check, is dead-lettered.
        await run_producer_of_garbage(settings)
        dead = TopicReader(settings.kafka, settings.dead_letter_topic)
        await dead.start()
        try:
            dead_letters = await dead.wait_for(lambda records: len(records) >= 1, timeout_s=60)
        finally:
            await dead.stop()

        report = await describe_session(settings, session_id)
        assert report.found, report.text
        got = await run("get", session_id)
        assert got.returncode == 0, got.stderr
        tail = await run("tail", "--from-beginning", "--limit", "2")
        assert tail.returncode == 0, tail.stderr
        assert session_id in tail.stdout
        listed = await run("dlq", "list")
        assert listed.returncode == 0, listed.stderr
        assert "1 dead letter(s)" in listed.stderr
        replayed = await run("dlq", "replay", "--all")
        assert replayed.returncode == 0, replayed.stderr
        assert "1 dead letter(s) replayed" in replayed.stdout
        status, metrics = await http_get(port, "/metrics")
        assert status == 200
        assert "session_worker_build_info" in metrics
        outputs.append(metrics)
        for record in [*events.records, *dead_letters]:
            outputs.append(record.value or b"")
            outputs.extend(record.headers.values())
            outputs.extend(name.encode() for name in record.headers)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
    assert code == 0
    worker_log = log_path.read_bytes()
    assert b'"worker started"' in worker_log
    assert b'"name": "process ' in worker_log  # the spans were exported
    outputs.append(worker_log)
    assert leaks(outputs) == []


async def run_producer_of_garbage(settings: Settings) -> None:
    async with WorkerHarness(settings) as harness:
        await harness.send(b"{not json", key=b"garbage")


async def test_a_create_through_the_mutual_tls_listener(
    secured_kafka: SecuredKafka, secured_redis: LocalRedis, pki: Pki, tmp_path: Path
) -> None:
    env = {
        **mutual_tls_kafka(secured_kafka, pki, tmp_path),
        **tls_acl_redis(secured_redis.url, pki, tmp_path),
        **topics_env(),
    }
    settings = await settings_with_topics(env)
    assert settings.kafka_ssl_key_password is not None  # the key is encrypted: read from a file
    async with WorkerHarness(settings) as harness:
        harness.start_worker()
        command = create_command()
        await harness.send(command)
        await harness.events.wait_for(created(command["sessionId"]), timeout_s=60)
    assert (await describe_session(settings, command["sessionId"])).found


async def test_a_create_with_oauthbearer_tokens_from_a_file(
    secured_kafka: SecuredKafka,
    secured_redis: LocalRedis,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = tmp_path / "token"
    token.write_text(unsigned_jwt("sw-oauth-client"))
    monkeypatch.setenv("KAFKA_SASL_OAUTH_TOKEN_FILE", str(token))  # the example provider's
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": secured_kafka.sasl_plaintext_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "KAFKA_SASL_OAUTH_TOKEN_PROVIDER": "session_client.oauth:FileTokenProvider",
        **tls_acl_redis(secured_redis.url, pki, tmp_path),
        **topics_env(),
    }
    settings = await settings_with_topics(env)
    async with WorkerHarness(settings) as harness:
        harness.start_worker()
        command = create_command()
        await harness.send(command)
        await harness.events.wait_for(created(command["sessionId"]), timeout_s=60)


def unsigned_jwt(subject: str) -> str:
    """What Kafka's unsecured OAUTHBEARER validator accepts: `alg: none`, a subject, a lifetime."""
    import base64
    import time

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + 3600})}."


async def test_a_create_on_a_tls_redis_cluster_with_an_acl_user(
    secured_kafka: SecuredKafka,
    secured_redis_cluster: LocalRedisCluster,
    pki: Pki,
    tmp_path: Path,
) -> None:
    env = {
        **sasl_ssl_kafka(secured_kafka, pki, tmp_path),
        **tls_acl_redis(secured_redis_cluster.url, pki, tmp_path),
        "SW_REDIS_CLUSTER": "true",
        **topics_env(),
    }
    settings = await settings_with_topics(env)
    client = connect_redis(settings)
    assert isinstance(client, aioredis.RedisCluster)
    await client.aclose()
    commands = [create_command() for _ in range(12)]  # spread over the three primaries
    async with WorkerHarness(settings) as harness:
        harness.start_worker()
        for command in commands:
            await harness.send(command)
        for command in commands:
            await harness.events.wait_for(created(command["sessionId"]), timeout_s=60)
    for command in commands:
        assert (await describe_session(settings, command["sessionId"])).found


async def test_the_hiredis_fast_path_with_an_acl_user_on_plain_tcp(
    secured_kafka: SecuredKafka, plain_acl_redis: LocalRedis, pki: Pki, tmp_path: Path
) -> None:
    env = {
        **sasl_ssl_kafka(secured_kafka, pki, tmp_path),
        "REDIS_URL": plain_acl_redis.url,
        "REDIS_USERNAME": "sw-redis-user",
        "REDIS_PASSWORD": REDIS_PASSWORD,
        **topics_env(),
    }
    settings = await settings_with_topics(env)
    client = connect_redis(settings)
    assert isinstance(client, aioredis.Redis)
    assert client.connection_pool.connection_class is HiredisPackingConnection
    await client.aclose()
    async with WorkerHarness(settings) as harness:
        harness.start_worker()
        command = create_command()
        await harness.send(command)
        await harness.events.wait_for(created(command["sessionId"]), timeout_s=60)
    assert (await describe_session(settings, command["sessionId"])).found
    assert KAFKA_PASSWORD not in repr(settings)


async def test_the_client_kit_and_its_example_view_over_sasl_ssl(
    secured_kafka: SecuredKafka, secured_redis: LocalRedis, pki: Pki, tmp_path: Path
) -> None:
    env = {
        **sasl_ssl_kafka(secured_kafka, pki, tmp_path),
        **tls_acl_redis(secured_redis.url, pki, tmp_path),
        **topics_env(),
    }
    settings = await settings_with_topics(env)
    connection = kafka_connection_from_env(env)  # what a client team's service would read
    assert connection == settings.kafka
    with pytest.raises(ValueError, match="security_protocol"):
        CommandPublisher(connection, security_protocol="PLAINTEXT")  # no half-secured client
    session_id = new_id("s")
    command = CreateSession(
        command_id=new_id("c"),
        org_id="org-42",
        session_id=session_id,
        payload=CreateSessionDTO(name="over TLS"),
    )
    async with WorkerHarness(settings) as harness:
        harness.start_worker()
        async with CommandPublisher(connection, topic=settings.commands_topic) as publisher:
            await publisher.publish(command)
        await harness.events.wait_for(created(session_id), timeout_s=60)
    view = SessionView()
    await follow(connection, settings.events_topic, view, stop=asyncio.Event(), idle_s=1.0)
    assert session_id in view.sessions
