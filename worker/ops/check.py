"""`session-worker check`: an exec probe. Exit code 0 when healthy, 1 when not.

By default it asks the running worker's own `/readyz` (or `/healthz` with `--live`) on this
host; `--deep` checks what the worker depends on directly, with the same settings: Kafka answers
and has the three topics, Redis answers PING.
"""

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from session_client.connection import kafka_client_params
from worker.access_check import verify_kafka, verify_redis
from worker.redis_client import REDIS_TIMEOUT_S, connect_redis
from worker.settings import Settings

WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - recognised, not bound


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAIL'} {self.detail}".rstrip()


def probe_host(settings: Settings) -> str:
    """Where the worker's HTTP server is reached from this host."""
    host = settings.http_host
    return "127.0.0.1" if host in WILDCARD_HOSTS else host.strip("[]")


async def check_http(host: str, port: int, path: str, timeout_s: float) -> Result:
    """GET `path`; ok on 200."""
    name = f"http://{host}:{port}{path}"
    try:
        status, body = await asyncio.wait_for(_get(host, port, path), timeout_s)
    except TimeoutError:
        return Result(name, False, f"no answer within {timeout_s} s")
    except OSError as exc:
        return Result(name, False, f"cannot connect: {exc.strerror or exc}")
    return Result(name, status == 200, f"{status} {body.strip()}")


async def _get(host: str, port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError(f"not an HTTP response: {head[:40]!r}") from None
    return status, body.decode("utf-8", "replace")


async def check_deep(settings: Settings, timeout_s: float) -> list[Result]:
    kafka, redis = await asyncio.gather(
        _bounded("kafka", _kafka(settings), timeout_s),
        _bounded("redis", _redis(settings, timeout_s), timeout_s),
    )
    return [kafka, redis]


async def _bounded(name: str, check: Awaitable[str], timeout_s: float) -> Result:
    try:
        detail = await asyncio.wait_for(check, timeout_s)
    except TimeoutError:
        return Result(name, False, f"no answer within {timeout_s} s")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer, reported as such
        return Result(name, False, str(exc) or type(exc).__name__)
    return Result(name, True, detail)


async def _kafka(settings: Settings) -> str:
    admin = AIOKafkaAdminClient(**kafka_client_params(settings.kafka))
    try:
        await admin.start()
    except KafkaError:
        await verify_kafka(settings.kafka)  # a refusal, said in words; otherwise as it was
        raise
    try:
        names = [settings.commands_topic, settings.events_topic, settings.dead_letter_topic]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    missing = [t["topic"] for t in described if t.get("error_code") != 0 or not t["partitions"]]
    if missing:
        raise LookupError(f"topics missing: {', '.join(missing)}")
    return (
        f"{settings.kafka_bootstrap_servers} ({settings.kafka_security_protocol}), topics present"
    )


async def _redis(settings: Settings, timeout_s: float) -> str:
    client = connect_redis(settings)
    try:
        # Half the time for PING, so that a refusal can still be told from silence.
        await verify_redis(client, settings, min(REDIS_TIMEOUT_S, timeout_s / 2), strict=True)
    finally:
        await client.aclose()
    return "PING answered"
