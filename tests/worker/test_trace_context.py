"""A command's W3C trace context reaches every record written because of it, through real
Kafka: its event, its `command.rejected` event and its dead letter. A record without one, or
with a malformed one, is handled as before and passes nothing on."""

from dataclasses import dataclass

import pytest

from tests.factories import create_command
from tests.support import WorkerHarness
from worker.sending import trace_headers

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = b"vendor=opaque-value"


@dataclass
class _Record:
    headers: list[tuple[str, bytes]]


@pytest.mark.parametrize(
    ("headers", "carried"),
    [
        ([("traceparent", TRACEPARENT)], [("traceparent", TRACEPARENT)]),
        (
            [("x", b"1"), ("tracestate", TRACESTATE), ("traceparent", TRACEPARENT)],
            [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)],
        ),
        ([("tracestate", TRACESTATE)], []),  # no traceparent: nothing to belong to
        ([("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")], []),  # zero trace id
        ([("traceparent", b"not a trace")], []),
        (
            [("traceparent", TRACEPARENT), ("tracestate", b"x" * 513)],
            [("traceparent", TRACEPARENT)],
        ),
        ([], []),
    ],
)
def test_what_trace_context_is_passed_on(
    headers: list[tuple[str, bytes]], carried: list[tuple[str, bytes]]
) -> None:
    assert trace_headers(_Record(headers)) == carried


def traced(record_headers: dict[str, bytes]) -> bytes | None:
    return record_headers.get("traceparent")


@pytest.mark.asyncio
async def test_events_rejections_and_dead_letters_carry_the_commands_trace(
    harness: WorkerHarness,
) -> None:
    context = [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]
    traced_create = create_command()
    plain_create = create_command()
    await harness.send(traced_create, headers=context)
    await harness.send(plain_create)
    await harness.send(b"{not json", key=b"k-1", headers=context)
    harness.start_worker()

    events = await harness.events.wait_count(3)
    (dead,) = await harness.dead_letters.wait_count(1)
    by_type = {}
    for record in events:
        body = record.json()
        by_type[(body["type"], body.get("sessionId"))] = record
    created = by_type[("session.created", traced_create["sessionId"])]
    assert created.headers == dict(context)
    untraced = by_type[("session.created", plain_create["sessionId"])]
    assert traced(untraced.headers) is None
    (rejected,) = [r for r in events if r.json()["type"] == "command.rejected"]
    assert traced(rejected.headers) == TRACEPARENT
    assert traced(dead.headers) == TRACEPARENT
    assert dead.headers["tracestate"] == TRACESTATE
    assert dead.headers["error.code"] == b"invalid"  # beside the dead letter's own headers


@pytest.mark.asyncio
async def test_the_kit_sends_the_callers_trace_and_reads_it_back_from_the_event(
    harness: WorkerHarness,
) -> None:
    # The real OpenTelemetry SDK: a span is active while the kit publishes.
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import format_span_id, format_trace_id, use_span

    from contracts.commands import CreateSession
    from contracts.payloads import CreateSessionDTO
    from session_client import CommandPublisher, trace_context

    settings = harness.settings
    span = TracerProvider().get_tracer("client").start_span("publish create")
    ids = span.get_span_context()
    command = CreateSession(
        command_id="c-traced-1",
        org_id="org-42",
        session_id="s-traced-1",
        payload=CreateSessionDTO(name="traced"),
    )
    async with CommandPublisher(settings.kafka, topic=settings.commands_topic) as publisher:
        with use_span(span, end_on_exit=True):
            record = publisher.encode(command)
            await publisher.publish(command)
        untraced = publisher.encode(command)  # outside the span: no context to send
    trace, parent = format_trace_id(ids.trace_id), format_span_id(ids.span_id)
    expected = f"00-{trace}-{parent}-{int(ids.trace_flags):02x}"
    assert trace_context(record.headers) == {"traceparent": expected}
    assert trace_context(untraced.headers) == {}

    harness.start_worker()
    (event,) = await harness.events.wait_count(1)
    assert trace_context(event.headers.items()) == {"traceparent": expected}
