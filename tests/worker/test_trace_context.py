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
