"""Kafka + Redis for tests, the quick start and benchmarks, wherever they come from.

Per service, in this order:
1. external: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL is set -> used as is, nothing started;
2. docker: a Docker engine answers -> testcontainers;
3. local: processes on this machine (LocalKafka via Maven jars, redis-server from PATH).
DEVENV_BACKEND=local|docker skips the Docker probe and forces one of the last two.
In auto mode a container that fails to start (e.g. its image cannot be pulled)
falls back to the local process, with a warning in the log.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from devenv.containers import DockerKafka, DockerRedis, docker_available
from devenv.kafka_local import LocalKafka
from devenv.redis_local import LocalRedis

BACKEND_ENV = "DEVENV_BACKEND"

log = logging.getLogger(__name__)


class ServiceHandle(Protocol):
    """What chaos tests may do to a service this module started."""

    @property
    def pid(self) -> int | None: ...  # None for containers

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def restart(self) -> None: ...


@dataclass(frozen=True)
class Services:
    bootstrap_servers: str
    redis_url: str
    kafka: ServiceHandle | None  # None when external: chaos tests skip then
    redis: ServiceHandle | None
    source: str  # "local", "docker", "external", or "kafka=<s>,redis=<s>" when mixed


@functools.cache
def _docker_reachable() -> bool:
    # Once per process: the answer does not change within a test run.
    return docker_available()


def _backend() -> tuple[str, bool]:
    """The backend to start services with, and whether a failed container may fall back."""
    wanted = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if wanted not in ("auto", "docker", "local"):
        raise ValueError(f"{BACKEND_ENV} must be auto, docker or local, not {wanted!r}")
    if wanted == "auto":
        return ("docker" if _docker_reachable() else "local"), True
    return wanted, False


def _start_kafka(
    stack: contextlib.ExitStack, backend: str, fallback: bool
) -> tuple[LocalKafka | DockerKafka, str]:
    if backend == "docker":
        try:
            return stack.enter_context(DockerKafka()), "docker"
        except Exception:
            if not fallback:
                raise
            log.warning("Kafka container failed to start; using a local broker", exc_info=True)
    return stack.enter_context(LocalKafka()), "local"


def _start_redis(
    stack: contextlib.ExitStack, backend: str, fallback: bool, appendonly: bool
) -> tuple[LocalRedis | DockerRedis, str]:
    if backend == "docker":
        try:
            return stack.enter_context(DockerRedis(appendonly=appendonly)), "docker"
        except Exception:
            if not fallback:
                raise
            log.warning("Redis container failed to start; using a local server", exc_info=True)
    return stack.enter_context(LocalRedis(appendonly=appendonly)), "local"


@contextlib.contextmanager
def open_services(*, appendonly: bool = False) -> Iterator[Services]:
    """Start (or find) Kafka and Redis; stop what was started on exit.

    ``appendonly`` turns on Redis' AOF for a Redis started here.
    """
    external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    external_redis = os.environ.get("REDIS_URL", "").strip()
    # Probe Docker only if something has to be started.
    backend, fallback = ("external", False) if external_kafka and external_redis else _backend()

    with contextlib.ExitStack() as stack:
        kafka: LocalKafka | DockerKafka | None = None
        redis: LocalRedis | DockerRedis | None = None
        if external_kafka:
            bootstrap, kafka_source = external_kafka, "external"
        else:
            kafka, kafka_source = _start_kafka(stack, backend, fallback)
            bootstrap = kafka.bootstrap_servers
        if external_redis:
            redis_url, redis_source = external_redis, "external"
        else:
            redis, redis_source = _start_redis(stack, backend, fallback, appendonly)
            redis_url = redis.url
        source = (
            kafka_source
            if kafka_source == redis_source
            else f"kafka={kafka_source},redis={redis_source}"
        )
        yield Services(
            bootstrap_servers=bootstrap,
            redis_url=redis_url,
            kafka=kafka,
            redis=redis,
            source=source,
        )
