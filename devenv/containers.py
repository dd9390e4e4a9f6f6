"""Kafka (KRaft) and Redis through testcontainers, for machines with a Docker engine.

testcontainers is imported only when a container is started, so the rest of
devenv works where neither Docker nor the dev extras are installed.
Published ports are bound to 127.0.0.1 of the Docker host (a local engine).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from devenv._proc import ServiceStartError, StartedService
from devenv.kafka_local import kafka_ready
from devenv.ports import LOOPBACK, free_port
from devenv.redis_local import redis_ready

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

# testcontainers' own KRaft default; override per machine with the env vars below.
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
DEFAULT_REDIS_IMAGE = "redis:7.2"


def _ping_unix_socket(path: str, timeout: float) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.") and b" 200 " in head


def docker_available(timeout: float = 5.0) -> bool:
    """Whether a Docker engine answers: its unix socket first, else ``docker info``.

    ``docker info`` covers tcp:// hosts and docker contexts, which testcontainers
    also follows.
    """
    host = os.environ.get("DOCKER_HOST", "")
    if not host or host.startswith("unix://"):
        path = host.removeprefix("unix://") or "/var/run/docker.sock"
        if os.path.exists(path) and _ping_unix_socket(path, timeout):
            return True
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(  # noqa: S603 - docker CLI from PATH, fixed argv
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _publish_on_loopback(container: DockerContainer, container_port: int, host_port: int) -> None:
    # with_bind_ports() only takes a port (Docker would bind 0.0.0.0); docker-py,
    # which receives this mapping as is, also takes (host_ip, host_port).
    ports = cast(dict[str, Any], container.ports)
    ports[str(container_port)] = (LOOPBACK, host_port)


def _poll(probe: Callable[[], bool], *, timeout: float, what: str, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() >= deadline:
            raise ServiceStartError(f"{what} was not ready after {timeout:.0f}s:\n{logs()}")
        time.sleep(0.1)


class _ContainerHandle(StartedService):
    """Shared lifecycle: a fixed loopback host port survives docker restarts."""

    _what = "container"

    def __init__(self, image: str, start_timeout: float) -> None:
        self.image = image
        self._start_timeout = start_timeout
        self._container: DockerContainer | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._port

    @property
    def pid(self) -> int | None:
        # The process lives in the engine's namespace; chaos tests use kill()/restart().
        return None

    @property
    def running(self) -> bool:
        if self._container is None:
            return False
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")

    def _create(self, host_port: int) -> DockerContainer:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _logs(self) -> str:
        if self._container is None:
            return ""
        out, err = self._container.get_logs()
        return (out + err).decode("utf-8", errors="replace")[-6000:]

    def _wait_ready(self) -> None:
        _poll(self._ready, timeout=self._start_timeout, what=self._what, logs=self._logs)

    def start(self) -> None:
        if self._container is None:
            port = free_port()
            container = self._create(port)
            with warnings.catch_warnings():
                # Deprecation notices inside testcontainers must not fail test runs
                # that turn warnings into errors.
                warnings.simplefilter("ignore", DeprecationWarning)
                container.start()
            self._container, self._port = container, port
        elif not self.running:
            self._container.get_wrapped_container().start()
        self._wait_ready()

    def stop(self) -> None:
        """Stop the container gracefully; it and its data stay for restart()."""
        if self._container is not None:
            self._container.get_wrapped_container().stop(timeout=30)

    def kill(self) -> None:
        if self._container is not None:
            self._container.get_wrapped_container().kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Remove the container and its data."""
        if self._container is not None:
            self._container.stop()
            self._container = None


class DockerKafka(_ContainerHandle):
    """Single-node KRaft Kafka in a container (testcontainers' KafkaContainer)."""

    _what = "Kafka container"

    def __init__(self, image: str | None = None, *, start_timeout: float = 120.0) -> None:
        super().__init__(
            image or os.environ.get("DEVENV_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE), start_timeout
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _create(self, host_port: int) -> DockerContainer:
        from testcontainers.community.kafka import KafkaContainer

        class _LoopbackKafka(KafkaContainer):
            # The advertised listener is built from this; match the loopback binding.
            def get_container_host_ip(self) -> str:
                return LOOPBACK

        container = _LoopbackKafka(self.image).with_kraft()
        # Same broker settings as LocalKafka where they matter to tests.
        for key, value in {
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "1",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
            "KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS": "500",
            "KAFKA_BROKER_HEARTBEAT_INTERVAL_MS": "500",
            "KAFKA_BROKER_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEAP_OPTS": "-Xmx512m",
        }.items():
            container.with_env(key, value)
        _publish_on_loopback(container, container.port, host_port)
        return container

    def _ready(self) -> bool:
        return kafka_ready(LOOPBACK, self.port)


class DockerRedis(_ContainerHandle):
    """Redis in a container, same flags as LocalRedis."""

    _what = "Redis container"

    def __init__(
        self,
        image: str | None = None,
        *,
        appendonly: bool = False,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            image or os.environ.get("DEVENV_REDIS_IMAGE", DEFAULT_REDIS_IMAGE), start_timeout
        )
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _create(self, host_port: int) -> DockerContainer:
        from testcontainers.community.redis import RedisContainer

        class _LoopbackRedis(RedisContainer):
            def get_container_host_ip(self) -> str:
                return LOOPBACK

        container = _LoopbackRedis(self.image)
        container.with_command(
            [
                "redis-server",
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--protected-mode", "no",
                "--notify-keyspace-events", "",
            ]
        )  # fmt: skip
        _publish_on_loopback(container, container.port, host_port)
        return container

    def _ready(self) -> bool:
        return redis_ready(LOOPBACK, self.port)
