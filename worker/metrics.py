"""Prometheus metrics of one worker, served at `/metrics` (worker/probes.py).

Every metric, its labels and what it means:

Counters (exposed with a `_total` suffix):
- `session_worker_commands_total{type, outcome}`: command records processed and committed.
  `type`: `session.create`, `session.update`, `session.delete`, or `unknown` (unreadable or
  unsupported record); `outcome`: `applied`, `rejected`, `duplicate` or `replayed`.
- `session_worker_dead_letters_total{code}`: records sent to the dead-letter topic, by rejection
  code (`invalid`, `too_large`, `unsupported`, `not_found`, `conflict`).
- `session_worker_batch_retries_total{reason}`: failed batches, rewound and retried after a
  back-off; `reason`: `redis`, `kafka`, `contention` (sessions kept changing) or `other`.
- `session_worker_rebalances_total{change}`: partition changes seen, `assigned` or `revoked`.
- `session_worker_sessions_expired_total`: `session.expired` events sent by this replica.
- `session_worker_replica_waits_total{result}`: with `SW_REDIS_MIN_REPLICAS`, the waits for
  replicas to hold a batch's (or a sweep's) writes: `ok`, `short` (fewer replicas than asked
  within the deadline: the batch is retried) or `error` (Redis did not answer).
- `session_worker_redis_errors_total{where}`, `session_worker_kafka_errors_total{where}`:
  failures talking to Redis / Kafka; `where`: `batch`, `sweep`, `sample` or `probe`.

Histograms (`_bucket`, `_sum`, `_count`):
- `session_worker_batch_duration_seconds`: processing latency, from a batch's fetch to its
  offsets committed (decide, one Redis round trip, events delivered, commit).
- `session_worker_end_to_end_latency_seconds`: per record, from its timestamp in the commands
  topic to its batch committed (includes time waiting in the topic).
- `session_worker_batch_records`: records per batch.
- `session_worker_expiry_delay_seconds`: per `session.expired` sent, from `expiresAt` to the
  event.
- `session_worker_replica_wait_seconds`: per successful wait for replicas (one per primary
  written to), the barrier write and WAIT round trip.

Gauges:
- `session_worker_consumer_lag{topic, partition}`: records in an assigned partition not yet
  read by this replica (high watermark minus position); sampled.
- `session_worker_assigned_partitions`: commands partitions this replica owns now.
- `session_worker_live_sessions`: sessions whose TTL has not run out (expiry-index entries due
  in the future, all replicas together); sampled from Redis.
- `session_worker_expiry_backlog`: sessions past `expiresAt` whose `session.expired` is not
  sent yet; sampled.
- `session_worker_expiry_overdue_seconds`: how long ago the oldest of that backlog was due
  (0 when there is none); sampled.
- `session_worker_build_info{version, record_format}`: always 1; the running version (the
  `VERSION` file it was built from) and the Redis record format it writes
  (`worker.session_record.RECORD_FORMAT`; CHANGELOG.md says which release wrote which).

The process (prometheus_client's `ProcessCollector` and `PlatformCollector`, read from
`/proc/self` at each scrape; Linux only, absent elsewhere):
- `process_resident_memory_bytes`, `process_virtual_memory_bytes`: the process' memory (RSS is
  what the pod's memory limit counts; ~110 MiB under full load, deploy/OPERATIONS.md).
- `process_cpu_seconds_total`: user and system CPU time; its rate is the cores used (one
  replica uses up to one).
- `process_open_fds`, `process_max_fds`: open file descriptors (sockets to Kafka and Redis
  included) and the limit.
- `process_start_time_seconds`: when the process started (a change is a restart).
- `python_info{implementation, major, minor, patchlevel, version}`: always 1; the Python
  running the worker.

Sampled gauges are refreshed by `worker.sampling.run_samplers` (lag every few seconds, Redis
counts every `SW_SAMPLE_INTERVAL_S`). Every `Metrics` has its own `CollectorRegistry`, so several
workers in one process (tests) do not share counts; each registry has its own process collectors
(the same process, so the same values), and prometheus_client's global registry is not used.
"""

import bisect
import collections
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

from aiokafka.errors import KafkaError
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from redis.exceptions import RedisError

from worker.errors import ConcurrentChangeError, StoreUnavailableError
from worker.session_record import RECORD_FORMAT

# Buckets in seconds. A batch is milliseconds when healthy and seconds under load or retries.
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# End to end includes time waiting in the topic: up to minutes when a backlog drains.
END_TO_END_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_RECORDS_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000)
# Expiry is announced within ~0.5 s when healthy; hours after an outage.
EXPIRY_DELAY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
# A WAIT on loopback answers in well under a millisecond; across zones in a few.
REPLICA_WAIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# The command a session event answers; `session.completed` can answer a create or an update.
_TYPE_OF_EVENT = {
    "session.created": "session.create",
    "session.updated": "session.update",
    "session.deleted": "session.delete",
}


class RecordLike(Protocol):
    @property
    def timestamp(self) -> int: ...  # ms since the epoch, as Kafka stamps it


class RejectionLike(Protocol):
    @property
    def code(self) -> str: ...


class OutcomeLike(Protocol):
    """What the metrics read of a `worker.processor.Outcome`."""

    @property
    def record(self) -> RecordLike: ...
    @property
    def result(self) -> str: ...
    @property
    def event_type(self) -> str | None: ...
    @property
    def rejection(self) -> RejectionLike | None: ...


class Metrics:
    """The metrics of one worker, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "session_worker_commands",
            "Command records processed and committed, by command type and outcome.",
            ["type", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "session_worker_dead_letters",
            "Records sent to the dead-letter topic, by rejection code.",
            ["code"],
            registry=r,
        )
        self.batch_duration = Histogram(
            "session_worker_batch_duration_seconds",
            "From a batch's fetch to its offsets committed.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "session_worker_end_to_end_latency_seconds",
            "Per record, from its timestamp in the commands topic to its batch committed.",
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self.batch_records = Histogram(
            "session_worker_batch_records",
            "Records per batch.",
            buckets=BATCH_RECORDS_BUCKETS,
            registry=r,
        )
        self.batch_retries = Counter(
            "session_worker_batch_retries",
            "Failed batches, rewound and retried, by reason.",
            ["reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "session_worker_consumer_lag",
            "Records in an assigned partition not yet read (high watermark minus position).",
            ["topic", "partition"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "session_worker_assigned_partitions",
            "Commands partitions this replica owns.",
            registry=r,
        )
        self.rebalances = Counter(
            "session_worker_rebalances",
            "Partition assignments and revocations seen.",
            ["change"],
            registry=r,
        )
        self.live_sessions = Gauge(
            "session_worker_live_sessions",
            "Sessions whose TTL has not run out (sampled from Redis).",
            registry=r,
        )
        self.expiry_backlog = Gauge(
            "session_worker_expiry_backlog",
            "Sessions past their expiresAt whose session.expired is not sent yet (sampled).",
            registry=r,
        )
        self.expiry_overdue = Gauge(
            "session_worker_expiry_overdue_seconds",
            "How long ago the oldest unannounced expiry was due; 0 when none is (sampled).",
            registry=r,
        )
        self.expiry_delay = Histogram(
            "session_worker_expiry_delay_seconds",
            "Per session.expired sent, the time from expiresAt to the event.",
            buckets=EXPIRY_DELAY_BUCKETS,
            registry=r,
        )
        self.expired = Counter(
            "session_worker_sessions_expired",
            "session.expired events sent by this replica.",
            registry=r,
        )
        self.replica_waits = Counter(
            "session_worker_replica_waits",
            "Waits for replicas to hold the writes (SW_REDIS_MIN_REPLICAS), by result.",
            ["result"],
            registry=r,
        )
        self.replica_wait = Histogram(
            "session_worker_replica_wait_seconds",
            "Per successful wait for replicas, the barrier write and WAIT round trip.",
            buckets=REPLICA_WAIT_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "session_worker_redis_errors",
            "Redis failures, by where they happened.",
            ["where"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "session_worker_kafka_errors",
            "Kafka failures, by where they happened.",
            ["where"],
            registry=r,
        )
        self.build = Info(
            "session_worker_build",
            "The running version and the Redis record format it writes.",
            registry=r,
        )
        self.build.info({"version": running_version(), "record_format": RECORD_FORMAT})
        # process_* and python_info: memory, CPU, file descriptors, start time (the docstring).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self._lag_labels: set[tuple[str, str]] = set()

    # -- the command loop --------------------------------------------------------------------

    def observe_batch(self, records: int, seconds: float) -> None:
        """One committed batch: its size and how long it took from fetch to commit."""
        self.batch_records.observe(records)
        self.batch_duration.observe(seconds)

    def observe_outcomes(self, outcomes: Iterable[OutcomeLike], now_ms: int) -> None:
        """The outcomes of a committed batch: counts, dead letters, end-to-end latency."""
        # Counted per label set, then added once each: a labelled child lookup and a locked
        # increment per outcome were ~2% of the worker's CPU at full speed.
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        codes: collections.Counter[str] = collections.Counter()
        latencies = []
        for o in outcomes:
            counts[command_type(o), o.result] += 1
            if o.rejection is not None:
                codes[o.rejection.code] += 1
            latencies.append(max(0, now_ms - o.record.timestamp) / 1000)
        observe_many(self.end_to_end, latencies)
        for (kind, result), n in counts.items():
            self.commands.labels(type=kind, outcome=result).inc(n)
        for code, n in codes.items():
            self.dead_letters.labels(code=code).inc(n)

    def observe_replica_wait(self, result: str, seconds: float | None = None) -> None:
        self.replica_waits.labels(result=result).inc()
        if seconds is not None:
            self.replica_wait.observe(seconds)

    def batch_failed(self, exc: BaseException) -> str:
        """A batch that failed and will be retried; returns the reason it was counted under."""
        reason = _service_of(exc)
        if isinstance(exc, ConcurrentChangeError):
            reason = "contention"
        self.batch_retries.labels(reason=reason).inc()
        self.count_error(exc, "batch")
        return reason

    # -- rebalances, expiry, errors ----------------------------------------------------------

    def observe_rebalance(self, change: str, partitions: int) -> None:
        """`change` is `assigned` or `revoked`; `partitions` the count in that change."""
        self.rebalances.labels(change=change).inc()
        self.assigned_partitions.set(partitions if change == "assigned" else 0)

    def observe_expired(self, delays_ms: Sequence[int]) -> None:
        """Expiry events sent: for each, milliseconds from `expiresAt` to now."""
        self.expired.inc(len(delays_ms))
        observe_many(self.expiry_delay, [max(0, delay_ms) / 1000 for delay_ms in delays_ms])

    def count_error(self, exc: BaseException, where: str) -> None:
        """Counts a Redis or Kafka failure (anything else is not counted here)."""
        match _service_of(exc):
            case "redis":
                self.redis_errors.labels(where=where).inc()
            case "kafka":
                self.kafka_errors.labels(where=where).inc()

    # -- sampled gauges ----------------------------------------------------------------------

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """Replaces the lag of every partition; partitions no longer owned disappear."""
        labels = {(topic, str(partition)) for topic, partition in lag}
        for gone in self._lag_labels - labels:
            self.consumer_lag.remove(*gone)
        for (topic, partition), value in lag.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(value)
        self._lag_labels = labels

    def set_sessions(
        self, *, live: int, backlog: int, oldest_due_ms: int | None, now_ms: int
    ) -> None:
        self.live_sessions.set(live)
        self.expiry_backlog.set(backlog)
        overdue_ms = 0 if oldest_due_ms is None else max(0, now_ms - oldest_due_ms)
        self.expiry_overdue.set(overdue_ms / 1000)


def command_type(outcome: OutcomeLike) -> str:
    """The command's type: `outcome.command_type` when the outcome carries it, otherwise read
    from the event it produced; `unknown` when neither tells (unreadable records)."""
    exact = getattr(outcome, "command_type", None)
    if isinstance(exact, str) and exact:
        return exact
    return _TYPE_OF_EVENT.get(outcome.event_type or "", "unknown")


def _service_of(exc: BaseException) -> str:
    if isinstance(exc, StoreUnavailableError | RedisError):
        return "redis"
    if isinstance(exc, KafkaError):
        return "kafka"
    return "other"


# The one source of the version, at the root of a source tree; an installed package carries it
# in its metadata (pyproject.toml reads this file).
VERSION_FILE = Path(__file__).resolve().parent.parent / "VERSION"


def running_version() -> str:
    """The installed session-worker's version; from a source tree that was not installed, its
    VERSION file; "unknown" when neither is there."""
    try:
        return version("session-worker")
    except PackageNotFoundError:
        pass
    try:
        return VERSION_FILE.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe(a)` for each of `amounts` (no exemplars): one locked add per bucket
    touched and one for the sum, instead of two per value. Observing each record's latency on
    its own was ~2% of the worker's CPU at full speed. Uses the bounds and bucket values that
    prometheus_client's own `observe` uses; a test checks both give the same exposition."""
    if not amounts:
        return
    bounds = histogram._upper_bounds  # ascending, the last is +Inf
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect.bisect_left(bounds, amount)] += 1  # the first bound >= amount
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(sum(amounts))
