"""The metrics object on its own: names, labels, and what each observation moves."""

import platform
import random
import re
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry, Histogram, generate_latest

import worker.metrics
from contracts.rejection import Rejection
from worker.errors import ConcurrentChangeError, StoreUnavailableError
from worker.metrics import Metrics, observe_many
from worker.outcome import Outcome
from worker.session_record import RECORD_FORMAT
from worker.snapshot_codec import pack_snapshot

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
ROOT = Path(__file__).resolve().parents[2]


def exposed_names(metrics: Metrics) -> set[str]:
    """Every sample name the registry can expose, whether or not a label set exists yet."""
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@dataclass(frozen=True)
class FakeRecord:
    """A consumed record's fields, as aiokafka's ConsumerRecord has them."""

    topic: str = "sessions.commands"
    partition: int = 0
    offset: int = 0
    key: bytes | None = b"s-1"
    value: bytes | None = b"{}"
    timestamp: int = 1_000_000


def outcome(
    result: str, event_type: str | None, rejection: Rejection | None = None, timestamp: int = 0
) -> Outcome:
    return Outcome(
        FakeRecord(timestamp=timestamp),
        result,  # type: ignore[arg-type]
        (),
        b"s-1",
        event_type,
        None,
        rejection,
    )


def test_the_docstring_lists_every_metric_and_nothing_else() -> None:
    documented = set(
        re.findall(r"`((?:session_worker|process|python)_[a-z_]+)", worker.metrics.__doc__ or "")
    )
    public = {"counter": "_total", "info": "_info"}
    families = {f.name + public.get(f.type, "") for f in Metrics().registry.collect()}
    assert documented == families


def test_build_info_shows_the_version_file_and_the_record_format() -> None:
    # The installed metadata is made from VERSION; a difference means an install older than the
    # checkout (`make install` reinstalls when VERSION changes).
    release = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    m = Metrics()
    (family,) = [f for f in m.registry.collect() if f.name == "session_worker_build"]
    (sample,) = family.samples
    assert sample.labels == {"version": release, "record_format": RECORD_FORMAT}, (
        f"VERSION says {release}: an older install? `make install` reinstalls"
    )
    assert sample.value == 1


def test_the_version_falls_back_to_the_version_file_when_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(worker.metrics, "version", not_installed)
    release = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    assert worker.metrics.running_version() == release
    monkeypatch.setattr(worker.metrics, "VERSION_FILE", ROOT / "no-such-file")
    assert worker.metrics.running_version() == "unknown"


def test_the_changelog_names_this_release_and_its_record_format() -> None:
    # A new snapshot format byte or record layout is a new RECORD_FORMAT, a new minor release
    # (before 1.0) and a CHANGELOG entry saying what its upgrade needs.
    assert pack_snapshot(b"{}")[:1] == b"\x03"
    assert RECORD_FORMAT == "5"
    release = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)
    assert releases[0] == release, "the newest CHANGELOG entry is not the VERSION file's"
    newest = changelog.split(f"## [{release}]", 1)[1].split("\n## [", 1)[0]
    assert f"Writes record format {RECORD_FORMAT}" in newest
    assert "### Upgrading" in newest


def test_every_worker_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics(CollectorRegistry())
    first.observe_batch(10, 0.02)
    assert value(first, "session_worker_batch_records_count") == 1
    assert value(second, "session_worker_batch_records_count") == 0


def test_process_metrics_are_exposed_by_every_worker_s_registry() -> None:
    """The process collectors sit in each worker's own registry (not prometheus_client's
    global one): two workers in one process register without a clash and both expose them."""
    first, second = Metrics(), Metrics(CollectorRegistry())
    for metrics in (first, second):
        text = generate_latest(metrics.registry).decode()
        for name in (
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ):
            assert re.search(rf"^{name} \S+$", text, re.M), f"{name} is not exposed"
        assert value(metrics, "process_resident_memory_bytes") > 1_000_000
        assert value(metrics, "process_open_fds") >= 3
        started = value(metrics, "process_start_time_seconds")
        assert time.time() - 86_400 < started <= time.time()
        assert value(metrics, "python_info", **python_labels()) == 1
    assert value(first, "process_start_time_seconds") == value(second, "process_start_time_seconds")


def python_labels() -> dict[str, str]:
    v = sys.version_info
    return {
        "implementation": platform.python_implementation(),
        "major": str(v.major),
        "minor": str(v.minor),
        "patchlevel": str(v.micro),
        "version": platform.python_version(),
    }


def test_outcomes_count_by_type_and_outcome_with_dead_letters_and_latency() -> None:
    m = Metrics()
    m.observe_outcomes(
        [
            outcome("applied", "session.created", timestamp=1_000),
            outcome("applied", "session.created", timestamp=1_000),
            outcome("applied", "session.deleted", timestamp=1_500),
            outcome("duplicate", None, timestamp=1_500),
            outcome(
                "rejected",
                "command.rejected",
                Rejection("not_found", "session not found", "$.sessionId"),
                timestamp=1_900,
            ),
        ],
        now_ms=2_000,
    )
    assert value(m, "session_worker_commands_total", type="session.create", outcome="applied") == 2
    assert value(m, "session_worker_commands_total", type="session.delete", outcome="applied") == 1
    assert value(m, "session_worker_commands_total", type="unknown", outcome="duplicate") == 1
    assert value(m, "session_worker_commands_total", type="unknown", outcome="rejected") == 1
    assert value(m, "session_worker_dead_letters_total", code="not_found") == 1
    assert value(m, "session_worker_end_to_end_latency_seconds_count") == 5
    assert value(m, "session_worker_end_to_end_latency_seconds_sum") == pytest.approx(3.1)


def test_an_exact_command_type_on_the_outcome_wins() -> None:
    @dataclass(frozen=True)
    class Typed:
        record: FakeRecord
        result: str
        event_type: str | None
        rejection: Rejection | None
        command_type: str

    m = Metrics()
    completed = Typed(FakeRecord(), "applied", "session.completed", None, "session.update")
    m.observe_outcomes([completed], now_ms=1_000_000)
    assert value(m, "session_worker_commands_total", type="session.update", outcome="applied") == 1


def test_failed_batches_are_counted_by_reason_and_service() -> None:
    m = Metrics()
    assert m.batch_failed(StoreUnavailableError("Redis: gone")) == "redis"
    assert m.batch_failed(KafkaConnectionError()) == "kafka"
    assert m.batch_failed(ConcurrentChangeError("busy")) == "contention"
    assert m.batch_failed(OSError("reset")) == "other"
    assert value(m, "session_worker_batch_retries_total", reason="redis") == 1
    assert value(m, "session_worker_redis_errors_total", where="batch") == 1
    assert value(m, "session_worker_kafka_errors_total", where="batch") == 1


def test_lag_of_partitions_no_longer_owned_disappears() -> None:
    m = Metrics()
    m.set_lag({("c", 0): 5, ("c", 1): 0})
    m.set_lag({("c", 1): 7})
    assert (
        m.registry.get_sample_value("session_worker_consumer_lag", {"topic": "c", "partition": "0"})
        is None
    )
    assert value(m, "session_worker_consumer_lag", topic="c", partition="1") == 7


def test_rebalances_expiry_and_session_gauges() -> None:
    m = Metrics()
    m.observe_rebalance("assigned", 4)
    assert value(m, "session_worker_assigned_partitions") == 4
    m.observe_rebalance("revoked", 4)
    assert value(m, "session_worker_assigned_partitions") == 0
    assert value(m, "session_worker_rebalances_total", change="assigned") == 1
    m.observe_expired([200, 400])
    assert value(m, "session_worker_sessions_expired_total") == 2
    assert value(m, "session_worker_expiry_delay_seconds_sum") == pytest.approx(0.6)
    m.set_sessions(live=10, backlog=2, oldest_due_ms=1_000, now_ms=4_000)
    assert value(m, "session_worker_live_sessions") == 10
    assert value(m, "session_worker_expiry_backlog") == 2
    assert value(m, "session_worker_expiry_overdue_seconds") == 3
    m.set_sessions(live=10, backlog=0, oldest_due_ms=None, now_ms=5_000)
    assert value(m, "session_worker_expiry_overdue_seconds") == 0
    assert "session_worker_build_info" in exposed_names(m)


def test_observing_many_values_at_once_matches_observing_each() -> None:
    bounds = (0.005, 0.01, 0.1, 1.0)
    rng = random.Random(5)
    amounts = [*bounds, 0.0, 7.5, *(rng.uniform(0, 2) for _ in range(500))]  # edges included
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    each = Histogram("h", "latency", buckets=bounds, registry=one_by_one)
    for amount in amounts:
        each.observe(amount)
    observe_many(Histogram("h", "latency", buckets=bounds, registry=at_once), amounts)
    observe_many(Histogram("empty", "nothing", registry=at_once), [])

    def samples(registry: CollectorRegistry, name: str) -> dict[str, float]:
        return {
            f"{s.name}{sorted(s.labels.items())}": s.value
            for metric in registry.collect()
            if metric.name == name
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples(at_once, "h") == pytest.approx(samples(one_by_one, "h"))
    assert samples(at_once, "h")["h_count[]"] == len(amounts)
    assert samples(at_once, "empty")["empty_count[]"] == 0
