"""All settings, read once at start-up into one frozen object; a bad value fails loudly.

Each setting comes from the environment (the name in `ENV`) and may be overridden by a flag of
the same name (`--commands-topic` for `SW_COMMANDS_TOPIC`). Connection settings keep the
contract's names: `KAFKA_BOOTSTRAP_SERVERS`, `REDIS_URL`.
"""

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlparse

from worker import constants
from worker.errors import SettingsError


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap_servers: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    redis_cluster: bool = constants.REDIS_CLUSTER  # REDIS_URL is then any one node of a cluster
    commands_topic: str = constants.COMMANDS_TOPIC
    events_topic: str = constants.EVENTS_TOPIC
    dead_letter_topic: str = constants.DEAD_LETTER_TOPIC
    group_id: str = constants.GROUP_ID
    max_record_bytes: int = constants.MAX_RECORD_BYTES
    batch_max_records: int = constants.BATCH_MAX_RECORDS
    poll_timeout_ms: int = constants.POLL_TIMEOUT_MS
    session_cache_size: int = constants.SESSION_CACHE_SIZE  # 0 turns the cache off
    max_poll_interval_ms: int = constants.MAX_POLL_INTERVAL_MS
    session_timeout_ms: int = constants.SESSION_TIMEOUT_MS
    shutdown_grace_s: float = constants.SHUTDOWN_GRACE_S
    liveness_timeout_s: float = constants.LIVENESS_TIMEOUT_S
    sweep_interval_ms: int = constants.SWEEP_INTERVAL_MS
    expiry_batch_max: int = constants.EXPIRY_BATCH_MAX
    expiry_lease_ms: int = constants.EXPIRY_LEASE_MS
    key_prefix: str = constants.KEY_PREFIX
    expired_retention_ms: int = constants.EXPIRED_RETENTION_MS
    tombstone_ttl_ms: int = constants.TOMBSTONE_TTL_MS
    outbox_ttl_ms: int = constants.OUTBOX_TTL_MS
    http_host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod
    http_port: int = constants.HTTP_PORT  # /metrics, /healthz, /readyz; 0 turns the server off
    sample_interval_s: float = constants.SAMPLE_INTERVAL_S  # Redis-sampled gauges refresh
    log_level: str = "info"
    log_format: str = "auto"  # auto: console on a terminal, JSON otherwise
    event_loop: str = "uvloop"  # uvloop, or asyncio's own loop

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from the environment, then non-None `overrides` (command-line flags)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = source.get(ENV[f.name])
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, f.type, raw)
        kinds = {f.name: f.type for f in fields(cls)}
        for name, value in overrides.items():
            if value is None:
                continue
            # Flags arrive as text; a boolean flag is parsed like its environment variable.
            is_text_bool = kinds.get(name) in (bool, "bool") and isinstance(value, str)
            values[name] = _parse(name, bool, value) if is_text_bool else value
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_consumer_params(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "group_id": self.group_id,
            "enable_auto_commit": False,  # offsets are committed only after the work is durable
            "auto_offset_reset": "earliest",  # a new group must not skip commands already sent
            "isolation_level": "read_committed",
            "max_poll_records": self.batch_max_records,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": max(1000, self.session_timeout_ms // 3),
            "fetch_max_bytes": 64 * 1024 * 1024,
            "max_partition_fetch_bytes": max(self.max_record_bytes * 2, 1024 * 1024),
        }

    def to_producer_params(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "enable_idempotence": True,  # broker drops retried duplicates, keeps order
            "acks": "all",
            "linger_ms": 0,  # send at once; records still batch while a request is in flight
            "max_batch_size": min(constants.PRODUCER_BATCH_BYTES, self.max_record_bytes),
            "max_request_size": max(self.max_record_bytes * 2, 1024 * 1024),
        }


ENV: dict[str, str] = {
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "redis_url": "REDIS_URL",
    **{
        f.name: f"SW_{f.name.upper()}"
        for f in fields(Settings)
        if f.name not in {"kafka_bootstrap_servers", "redis_url"}
    },
}

_LOG_LEVELS = {"debug", "info", "warning", "error"}
_LOG_FORMATS = {"auto", "json", "console"}
_EVENT_LOOPS = {"uvloop", "asyncio"}


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_bool(raw: str) -> bool:
    """`true/false`, `1/0`, `yes/no`, in any case; anything else is a ValueError."""
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean")


def _parse(name: str, kind: object, raw: str) -> Any:
    if kind in (bool, "bool"):
        try:
            return parse_bool(raw)
        except ValueError:
            raise SettingsError(
                f"{ENV[name]}={raw!r} is not a boolean (true/false, 1/0, yes/no)"
            ) from None
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
    except ValueError:
        raise SettingsError(f"{ENV[name]}={raw!r} is not a number") from None
    return raw


def _check(s: Settings) -> None:
    def fail(name: str, why: str) -> None:
        raise SettingsError(f"{ENV[name]}={getattr(s, name)!r}: {why}")

    if not s.kafka_bootstrap_servers.strip():
        fail("kafka_bootstrap_servers", "must list at least one host:port")
    redis_url = urlparse(s.redis_url)
    if redis_url.scheme not in {"redis", "rediss", "unix"}:
        fail("redis_url", "must be a redis://, rediss:// or unix:// URL")
    if not isinstance(s.redis_cluster, bool):
        fail("redis_cluster", "must be true or false")
    if s.redis_cluster:
        if redis_url.scheme == "unix" or not redis_url.hostname:
            fail("redis_url", "with SW_REDIS_CLUSTER, must be redis://host:port of a cluster node")
        if redis_url.path.strip("/") not in {"", "0"}:
            fail("redis_url", "a Redis Cluster has only database 0")
    for name in ("commands_topic", "events_topic", "dead_letter_topic", "group_id", "key_prefix"):
        if not getattr(s, name):
            fail(name, "must not be empty")
    if len({s.commands_topic, s.events_topic, s.dead_letter_topic}) != 3:
        fail("events_topic", "commands, events and dead-letter topics must differ")
    positive = (
        "max_record_bytes",
        "batch_max_records",
        "poll_timeout_ms",
        "expired_retention_ms",
        "tombstone_ttl_ms",
        "outbox_ttl_ms",
    )
    for name in positive:
        if getattr(s, name) <= 0:
            fail(name, "must be greater than 0")
    if s.session_cache_size < 0:
        fail("session_cache_size", "must be 0 (no cache) or more")
    for name in ("shutdown_grace_s", "liveness_timeout_s", "sample_interval_s"):
        if getattr(s, name) <= 0:
            fail(name, "must be greater than 0")
    if not 0 <= s.http_port <= 65535:
        fail("http_port", "must be a TCP port (0 turns the HTTP server off)")
    if s.log_level.lower() not in _LOG_LEVELS:
        fail("log_level", f"must be one of {', '.join(sorted(_LOG_LEVELS))}")
    if s.log_format not in _LOG_FORMATS:
        fail("log_format", f"must be one of {', '.join(sorted(_LOG_FORMATS))}")
    if s.event_loop not in _EVENT_LOOPS:
        fail("event_loop", f"must be one of {', '.join(sorted(_EVENT_LOOPS))}")
