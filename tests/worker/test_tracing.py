"""The worker's spans, recorded by the real OpenTelemetry SDK (its in-memory exporter) while the
worker runs against real Kafka and Redis: the batch and command spans, their parents and links,
the Redis and publish children, the context each record carries, the expiry's own trace linked
to the command that set the TTL, and no secret or payload value in any attribute."""

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, format_span_id, format_trace_id

from tests.factories import (
    CANARY_API_SECRET,
    CANARY_AUTH_TOKEN,
    CANARY_SERVER_SECRET,
    create_command,
    update_command,
)
from tests.support import Record, WorkerHarness
from worker.clock import now_ms
from worker.keys import KeySpace
from worker.session_record import parse_record
from worker.tracing import Tracing

pytestmark = pytest.mark.asyncio
PAYLOAD_CANARY = "payload-name-canary-93c1"
SECRETS = (CANARY_AUTH_TOKEN, CANARY_API_SECRET, CANARY_SERVER_SECRET, PAYLOAD_CANARY)


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _traceparent(span: ReadableSpan | Span) -> bytes:
    ctx = span.get_span_context()
    assert ctx is not None
    trace_id, span_id = format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)
    return f"00-{trace_id}-{span_id}-{int(ctx.trace_flags):02x}".encode()


def _command_span(spans: Sequence[ReadableSpan], partition: int, offset: int) -> ReadableSpan:
    (found,) = [
        s
        for s in spans
        if s.attributes is not None
        and s.attributes.get("messaging.destination.partition.id") == str(partition)
        and s.attributes.get("messaging.kafka.offset") == offset
    ]
    return found


def _children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = parent.context.span_id
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent_id]


def _no_secret_in(spans: Sequence[ReadableSpan]) -> None:
    for span in spans:
        texts = [span.name, *(str(v) for v in (span.attributes or {}).values())]
        for event in span.events:
            texts += [str(v) for v in (event.attributes or {}).values()]
        for text in texts:
            assert not any(secret in text for secret in SECRETS), (span.name, text)


async def _commands_sent(harness: WorkerHarness) -> list[Record]:
    """The command records as Kafka holds them (their partitions and offsets)."""
    from tests.support import TopicReader

    reader = TopicReader(harness.settings.kafka, harness.settings.commands_topic)
    await reader.start()
    try:
        return await reader.settle()
    finally:
        await reader.stop()


async def test_a_batch_is_a_trace_and_each_command_continues_its_producers_trace(
    harness: WorkerHarness, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = exported
    client = provider.get_tracer("client").start_span("client: create session")
    client.end()
    parent = [("traceparent", _traceparent(client)), ("tracestate", b"vendor=opaque")]
    traced = create_command(name=PAYLOAD_CANARY)
    plain = create_command()
    await harness.send(traced, headers=parent)
    await harness.send(plain)
    await harness.send(update_command(traced["sessionId"], name="renamed"), headers=parent)
    await harness.send(update_command("s-never-created"), headers=parent)  # not_found
    await harness.send(b"{not json", key=b"k-1", headers=parent)  # invalid
    tracing = Tracing(provider, group_id=harness.settings.group_id, version="test")
    harness.start_worker(tracing=tracing)

    events = await harness.events.wait_count(4)
    dead = await harness.dead_letters.wait_count(2)
    await harness.stop_workers()
    spans = exporter.get_finished_spans()
    commands_topic = harness.settings.commands_topic
    sent = {(r.partition, r.offset): r for r in await _commands_sent(harness)}

    batches = [s for s in spans if s.attributes and "messaging.batch.message_count" in s.attributes]
    batch_spans = [s for s in batches if s.kind is SpanKind.CONSUMER]
    assert batch_spans
    assert all(s.parent is None for s in batch_spans)  # each a trace of its own
    assert sum(s.attributes["messaging.batch.message_count"] for s in batch_spans) == 5  # type: ignore[index,misc]
    client_ctx = client.get_span_context()
    for batch in batch_spans:
        assert batch.name == f"process {commands_topic}"
        assert batch.attributes is not None
        assert batch.attributes["messaging.system"] == "kafka"
        assert batch.attributes["messaging.consumer.group.name"] == harness.settings.group_id
        children = {s.name for s in _children(spans, batch)}
        assert f"send {harness.settings.events_topic}" in children
        assert "redis apply" in children or batch.attributes["messaging.batch.message_count"] == 1

    linked = [
        b for b in batch_spans if any(lk.context.span_id == client_ctx.span_id for lk in b.links)
    ]
    assert linked, "a batch span links to the producers of its commands"

    by_span: dict[bytes, ReadableSpan] = {}
    for (partition, offset), record in sent.items():
        span = _command_span(spans, partition, offset)
        assert span.kind is SpanKind.CONSUMER
        assert span.name == f"process {commands_topic}"
        assert span.attributes is not None
        assert span.attributes["messaging.consumer.group.name"] == harness.settings.group_id
        by_span[_traceparent(span)] = span
        if "traceparent" in record.headers:
            # In the producer's trace, under its span, linked to the batch that processed it.
            assert span.parent is not None
            assert span.parent.span_id == client_ctx.span_id
            assert span.context.trace_id == client_ctx.trace_id
            (batch_link,) = span.links
            assert batch_link.context.span_id in {b.context.span_id for b in batch_spans}
        else:
            # Without one: under the batch span, in the batch's trace.
            assert span.parent is not None
            assert span.parent.span_id in {b.context.span_id for b in batch_spans}

    # Every record written because of a command carries that command's span.
    for record in [*events, *dead]:
        carried = record.headers["traceparent"]
        assert carried in by_span, record.headers
        span = by_span[carried]
        assert span.attributes is not None
        body = record.json() if record in events else None
        if body is not None and body["type"] != "command.rejected":
            assert span.attributes["session_worker.outcome"] == "applied"
            assert span.attributes["session_worker.event.type"] == body["type"]
            assert span.attributes["messaging.kafka.message.key"] == body["sessionId"]
        else:
            assert span.attributes["session_worker.outcome"] == "rejected"
            assert span.attributes["error.type"] in {"invalid", "not_found"}
        if body is not None and body.get("sessionId") == traced["sessionId"]:
            assert record.headers["tracestate"] == b"vendor=opaque"
            assert span.context.trace_id == client_ctx.trace_id
    codes = sorted(
        str((by_span[r.headers["traceparent"]].attributes or {})["error.type"]) for r in dead
    )
    assert codes == ["invalid", "not_found"]
    plain_event = next(r for r in events if r.json().get("sessionId") == plain["sessionId"])
    assert by_span[plain_event.headers["traceparent"]].context.trace_id != client_ctx.trace_id
    _no_secret_in(spans)


async def test_an_expiry_starts_its_own_trace_linked_to_the_command_that_set_the_ttl(
    harness: WorkerHarness,
    redis_client: aioredis.Redis,
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A worker whose clock runs 59 s behind creates a session with the contract's least
    expirationSeconds (60): Redis drops it a second later. A worker on the real clock then
    finds and announces it, as a replica taking over would."""
    provider, exporter = exported
    client = provider.get_tracer("client").start_span("client: create session")
    client.end()
    command = create_command(expirationSeconds=60)
    sid = command["sessionId"]
    await harness.send(command, headers=[("traceparent", _traceparent(client))])
    tracing = Tracing(provider, group_id=harness.settings.group_id, version="test")
    harness.start_worker(tracing=tracing, clock=lambda: now_ms() - 59_000)
    (created,) = await harness.events.wait_count(1)
    await harness.stop_workers()
    command_span = next(
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == client.get_span_context().span_id
    )
    assert created.headers["traceparent"] == _traceparent(command_span)
    record_key = KeySpace(harness.settings.key_prefix).session(sid).record
    raw = await redis_client.get(record_key)
    assert isinstance(raw, bytes)
    assert parse_record(raw).trace == _traceparent(command_span).decode()  # kept for the expiry

    exporter.clear()
    harness.start_worker(tracing=tracing)
    expired = await _wait_for_event(harness, "session.expired", sid)
    await harness.stop_workers()
    spans = exporter.get_finished_spans()

    (expiry,) = [s for s in spans if s.name == f"create {harness.settings.events_topic}"]
    assert expiry.parent is None  # a new trace
    assert expiry.kind is SpanKind.PRODUCER
    assert expired.headers["traceparent"] == _traceparent(expiry)
    assert expiry.context.trace_id != command_span.context.trace_id
    assert expiry.attributes is not None
    assert expiry.attributes["messaging.kafka.message.key"] == sid
    links = {lk.attributes["session_worker.link"]: lk.context for lk in expiry.links}  # type: ignore[index]
    assert links["last command"].trace_id == command_span.context.trace_id
    assert links["last command"].span_id == command_span.context.span_id
    (sweep,) = [s for s in spans if s.name == "expiry sweep"]
    assert sweep.parent is None
    assert links["sweep"].span_id == sweep.context.span_id
    assert {s.name for s in _children(spans, sweep)} >= {
        "redis claim_expired",
        f"send {harness.settings.events_topic}",
        "redis finish_expired",
    }
    raw = await redis_client.get(record_key)
    assert isinstance(raw, bytes)
    assert parse_record(raw).trace is None  # a tombstone keeps no trace
    _no_secret_in(spans)


async def test_without_tracing_redis_keeps_no_trace_and_records_carry_the_commands_own(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    header = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    command = create_command()
    await harness.send(command, headers=[("traceparent", header)])
    harness.start_worker()
    (created,) = await harness.events.wait_count(1)
    assert created.headers["traceparent"] == header
    raw = await redis_client.get(
        KeySpace(harness.settings.key_prefix).session(command["sessionId"]).record
    )
    assert isinstance(raw, bytes)
    assert parse_record(raw).trace is None
    head = raw.partition(b"\x1e")[0]
    assert head.count(b"\x1f") == 4  # format 4's five fields: nothing added with tracing off


async def _wait_for_event(harness: WorkerHarness, event_type: str, sid: str) -> Record:
    def found(records: list[Record]) -> bool:
        return any(_is(r, event_type, sid) for r in records)

    records = await harness.events.wait_for(found, timeout_s=30)
    return next(r for r in records if _is(r, event_type, sid))


def _is(record: Record, event_type: str, sid: str) -> bool:
    body: dict[str, Any] = record.json()
    return body["type"] == event_type and body.get("sessionId") == sid
