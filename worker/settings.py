"""All settings, read once at start-up into one frozen object; a bad value fails loudly.

Each setting comes from the environment (the name in `ENV`) and may be overridden by a flag of
the same name (`--commands-topic` for `SW_COMMANDS_TOPIC`). Connection settings keep the
names operators and other clients know: `KAFKA_*`, `REDIS_*`.

Secrets (`SECRET_FIELDS`) are held as `Secret`, shown as `***` in every repr, error and log
line; each may instead be read from the file named by `<NAME>_FILE` (how Kubernetes and Docker
mount secrets), and none is a command-line flag (argv is visible to every user of the host).
A password in `REDIS_URL` is moved out of the URL into `redis_password` as the settings are
made, so the URL itself is safe to show.
"""

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlparse

from contracts import wire
from session_client.connection import KafkaConnection, kafka_client_params
from session_client.environment import read_variable
from session_client.secret import Secret, split_url_credentials
from worker import constants
from worker.errors import SettingsError


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    kafka_sasl_oauth_token_provider: str | None = None  # module:callable
    kafka_ssl_cafile: str | None = None  # None: the system's trust store
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_key_password: Secret | None = None
    redis_url: str = "redis://localhost:6379/0"
    redis_username: str | None = None
    redis_password: Secret | None = None
    redis_ssl_cafile: str | None = None  # rediss:// only; None: the system's trust store
    redis_ssl_certfile: str | None = None
    redis_ssl_keyfile: str | None = None
    redis_cluster: bool = constants.REDIS_CLUSTER  # REDIS_URL is then any one node of a cluster
    # Replicas of each primary that must hold a batch's writes before its offsets are committed
    # (worker/replication.py); 0: the primary's answer is enough, as before.
    redis_min_replicas: int = 0
    redis_replica_timeout_ms: int = constants.REDIS_REPLICA_TIMEOUT_MS
    redis_wait_aof: bool = False  # WAITAOF: the replicas also fsynced the writes (Redis 7.2+)
    commands_topic: str = wire.COMMANDS_TOPIC
    events_topic: str = wire.EVENTS_TOPIC
    dead_letter_topic: str = wire.DEAD_LETTER_TOPIC
    group_id: str = constants.GROUP_ID
    max_record_bytes: int = wire.MAX_RECORD_BYTES
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
        _hold_secrets(self)
        _check(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from the environment, then non-None `overrides` (command-line flags)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = read_env(source, f.name)
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

    def to_env(self) -> dict[str, str]:
        """These settings as the environment of a child process (`session-worker run`): what
        `from_env` reads back to equal settings. Secrets are revealed: an environment is where
        they are meant to go; unset settings are left out."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, Secret):
                value = value.reveal()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[ENV[f.name]] = str(value)  # a password from REDIS_URL goes as REDIS_PASSWORD
        return env

    @property
    def kafka(self) -> KafkaConnection:
        """How to reach and authenticate to Kafka: give it to `kafka_client_params`."""
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            sasl_oauth_token_provider=self.kafka_sasl_oauth_token_provider,
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
            ssl_key_password=self.kafka_ssl_key_password,
        )

    def to_consumer_params(self) -> dict[str, Any]:
        return {
            **kafka_client_params(self.kafka),
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
            **kafka_client_params(self.kafka),
            "enable_idempotence": True,  # broker drops retried duplicates, keeps order
            "acks": "all",
            "linger_ms": 0,  # send at once; records still batch while a request is in flight
            "max_batch_size": min(constants.PRODUCER_BATCH_BYTES, self.max_record_bytes),
            "max_request_size": max(self.max_record_bytes * 2, 1024 * 1024),
        }


# Connection settings are named as Kafka and Redis clients name them; the worker's own carry SW_.
_SW_REDIS_FIELDS = {
    "redis_cluster",
    "redis_min_replicas",
    "redis_replica_timeout_ms",
    "redis_wait_aof",
}
_CONNECTION_FIELDS = frozenset(
    f.name
    for f in fields(Settings)
    if f.name.startswith(("kafka_", "redis_")) and f.name not in _SW_REDIS_FIELDS
)
ENV: dict[str, str] = {
    f.name: f.name.upper() if f.name in _CONNECTION_FIELDS else f"SW_{f.name.upper()}"
    for f in fields(Settings)
}
# Settings that are (or, for REDIS_URL, may carry) secrets: masked everywhere, readable from the
# file named by <NAME>_FILE, never command-line flags.
SECRET_FIELDS = frozenset(
    {"kafka_sasl_password", "kafka_ssl_key_password", "redis_password", "redis_url"}
)


def read_env(source: Mapping[str, str], name: str) -> str | None:
    """The raw text of setting `name` (a field name): from its variable or, for a secret, from
    the file its `<NAME>_FILE` variable names (the rule the client kit follows too)."""
    return read_variable(source, ENV[name], secret=name in SECRET_FIELDS)


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


def _hold_secrets(s: Settings) -> None:
    """Secrets given as plain text become `Secret`; credentials leave `redis_url`."""
    for name in SECRET_FIELDS - {"redis_url"}:
        value = getattr(s, name)
        if isinstance(value, str):
            object.__setattr__(s, name, Secret(value) if value else None)
    if not isinstance(s.redis_url, str):
        raise SettingsError("REDIS_URL must be text")
    try:
        url, username, password = split_url_credentials(s.redis_url)
    except ValueError:
        # Not even a URL: not shown, as it may hold a password.
        raise SettingsError("REDIS_URL is not a URL (its value is not shown)") from None
    if password is not None:
        if s.redis_password is not None:
            raise SettingsError(
                "REDIS_PASSWORD and a password in REDIS_URL are both given; give it once"
            )
        object.__setattr__(s, "redis_password", Secret(password))
    if username:
        if s.redis_username and s.redis_username != username:
            raise SettingsError(
                f"REDIS_USERNAME={s.redis_username!r} and the user {username!r} in REDIS_URL "
                "differ; give it once"
            )
        object.__setattr__(s, "redis_username", username)
    object.__setattr__(s, "redis_url", url)


def _check(s: Settings) -> None:
    def fail(name: str, why: str) -> None:
        raise SettingsError(f"{ENV[name]}={getattr(s, name)!r}: {why}")

    s.kafka  # noqa: B018 - made to be checked: a KafkaConnection checks itself
    redis_url = urlparse(s.redis_url)
    if redis_url.scheme not in {"redis", "rediss", "unix"}:
        fail("redis_url", "must be a redis://, rediss:// or unix:// URL")
    for name in ("redis_ssl_cafile", "redis_ssl_certfile", "redis_ssl_keyfile"):
        if getattr(s, name) and redis_url.scheme != "rediss":
            fail(name, "only used with a rediss:// (TLS) REDIS_URL")
    if bool(s.redis_ssl_certfile) != bool(s.redis_ssl_keyfile):
        fail("redis_ssl_certfile", "REDIS_SSL_CERTFILE and REDIS_SSL_KEYFILE go together")
    for name in (
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "redis_ssl_cafile",
        "redis_ssl_certfile",
        "redis_ssl_keyfile",
    ):
        path = getattr(s, name)
        if path and not os.path.isfile(path):
            fail(name, "no such file")
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
    if s.redis_min_replicas < 0:
        fail("redis_min_replicas", "must be 0 (no waiting for replicas) or more")
    if s.redis_replica_timeout_ms <= 0:
        fail("redis_replica_timeout_ms", "must be greater than 0")
    if s.redis_wait_aof and not s.redis_min_replicas:
        fail("redis_wait_aof", "only used with SW_REDIS_MIN_REPLICAS of 1 or more")
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
