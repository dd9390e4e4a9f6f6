"""Real Kafka and Redis for tests, the quick start and benchmarks, with or without Docker.

Start here: ``open_services()`` (see services.py for how it chooses).
CLI: ``python -m devenv resolve`` / ``python -m devenv up``.
"""

from devenv._proc import ServiceStartError
from devenv.containers import DockerKafka, DockerRedis, docker_available
from devenv.kafka_local import LocalKafka, kafka_version_of, resolve_classpath
from devenv.ports import LOOPBACK, free_port, free_ports
from devenv.redis_local import LocalRedis
from devenv.services import ServiceHandle, Services, open_services

__all__ = [
    "LOOPBACK",
    "DockerKafka",
    "DockerRedis",
    "LocalKafka",
    "LocalRedis",
    "ServiceHandle",
    "ServiceStartError",
    "Services",
    "docker_available",
    "free_port",
    "free_ports",
    "kafka_version_of",
    "open_services",
    "resolve_classpath",
]
