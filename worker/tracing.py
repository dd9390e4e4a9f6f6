"""The worker's OpenTelemetry spans; imported only when tracing is configured (`worker.telemetry`).

A batch of commands is one trace of its own: a `process` span (kind CONSUMER) linked to every
command's producer, with children for each Redis round trip and for the publish. Each command
gets a `process` span in the trace of the producer that sent it (its `traceparent` header), or
under the batch span when it came without one, linked to the batch span; its events, its
`command.rejected` event and its dead letter carry that span's context. The spans of a batch end
when Kafka has acknowledged its events. An expiry sweep is a trace of its own; each expiry event
starts a new trace, linked to the command that last set the session's TTL and to the sweep.

Attributes follow OpenTelemetry's messaging conventions. They name topics, partitions, offsets,
the consumer group, session ids (the record key) and outcomes, never a payload value.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from contracts.wire import HEADER_TRACEPARENT, HEADER_TRACESTATE
from worker.outcome import Outcome
from worker.sending import Headers, trace_headers

SYSTEM = "kafka"
# Links on a batch span, one per traced command; the SDK's own default limit.
MAX_BATCH_LINKS = 128
_propagator = TraceContextTextMapPropagator()
AttributeValue = str | int | bool


def traceparent(context: SpanContext) -> str:
    """The W3C `traceparent` of a span: what its records carry and what Redis keeps."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def remote_context(headers: Headers) -> Context | None:
    """The producer's context from a record's (already checked) trace headers."""
    if not headers:
        return None
    carrier = {name: value.decode("ascii") for name, value in headers}
    context = _propagator.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def _span_context_of(value: str) -> SpanContext | None:
    """A stored `traceparent` as a span context to link to; None when it does not parse."""
    context = remote_context([(HEADER_TRACEPARENT, value.encode("ascii", "replace"))])
    return None if context is None else trace.get_current_span(context).get_span_context()


def _messaging(topic: str, operation: str) -> dict[str, AttributeValue]:
    """The messaging conventions' attributes every Kafka span of the worker carries."""
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }


def _redis_attributes(step: str) -> dict[str, AttributeValue]:
    """A pipeline of the worker's scripts (`worker/lua`), one run per up to 64 sessions."""
    return {
        "db.system.name": "redis",
        "db.operation.name": "EVALSHA",
        "session_worker.redis.step": step,
    }


class BatchTrace:
    """The spans of one batch of commands, from the fetch to Kafka's acknowledgement."""

    def __init__(self, tracer: Tracer, records: Sequence[Any], topic: str, group_id: str) -> None:
        self._tracer = tracer
        self._common: dict[str, AttributeValue] = {
            **_messaging(topic, "process"),
            "messaging.consumer.group.name": group_id,
        }
        carried = [trace_headers(r) for r in records]
        producers = [remote_context(h) for h in carried]
        links = [
            Link(trace.get_current_span(p).get_span_context())
            for p in producers[:MAX_BATCH_LINKS]
            if p is not None
        ]
        self.span = tracer.start_span(
            f"process {topic}",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={**self._common, "messaging.batch.message_count": len(records)},
        )
        self._context = trace.set_span_in_context(self.span)
        batch_link = [Link(self.span.get_span_context())]
        self.commands: list[Span] = []
        self._headers: list[Headers] = []
        for record, producer, headers in zip(records, producers, carried, strict=True):
            span = tracer.start_span(
                f"process {topic}",
                context=producer if producer is not None else self._context,
                kind=SpanKind.CONSUMER,
                links=batch_link if producer is not None else None,
                attributes={
                    **self._common,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                },
            )
            self.commands.append(span)
            own: Headers = [(HEADER_TRACEPARENT, traceparent(span.get_span_context()).encode())]
            self._headers.append(own + [h for h in headers if h[0] == HEADER_TRACESTATE])
        self._publish: Span | None = None
        self._ended = False

    def headers(self) -> list[Headers]:
        """Per record, the trace headers of everything written because of it."""
        return self._headers

    def stored(self) -> list[str]:
        """Per record, the `traceparent` Redis keeps for the session's expiry to link to."""
        return [traceparent(span.get_span_context()) for span in self.commands]

    @contextmanager
    def active(self) -> Iterator[None]:
        """Makes the batch span current, so the Redis steps become its children."""
        with trace.use_span(self.span, end_on_exit=False):
            yield

    def publishing(self, topic: str, records: int) -> None:
        self._publish = self._tracer.start_span(
            f"send {topic}",
            context=self._context,
            kind=SpanKind.PRODUCER,
            attributes={**_messaging(topic, "send"), "messaging.batch.message_count": records},
        )

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Kafka has the batch's events: every span ends, each command's with its outcome."""
        if self._ended:
            return
        for span, outcome in zip(self.commands, outcomes, strict=True):
            found: dict[str, AttributeValue] = {"session_worker.outcome": outcome.result}
            if outcome.session_id is not None:
                found["messaging.kafka.message.key"] = outcome.session_id
            if outcome.event_type is not None:
                found["session_worker.event.type"] = outcome.event_type
            if outcome.rejection is not None:
                found["error.type"] = outcome.rejection.code
            span.set_attributes(found)  # once: each call takes the span's lock
            span.end()
        self._end()

    def fail(self, error: BaseException) -> None:
        """The batch is rewound to be processed again: its spans end as errors. Once."""
        if self._ended:
            return
        for span in self.commands:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()
        self.span.record_exception(error, attributes={"exception.message": type(error).__name__})
        self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self._end()

    def _end(self) -> None:
        self._ended = True
        if self._publish is not None:
            self._publish.end()
        self.span.end()


class Tracing:
    """Makes the worker's spans with one tracer; `shutdown` exports what is left."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider,
        *,
        group_id: str,
        version: str = "",
        shutdown: Callable[[], object] | None = None,
    ) -> None:
        self._tracer = tracer_provider.get_tracer("session-worker", version)
        self._group_id = group_id
        self._shutdown = shutdown

    def batch(self, records: Sequence[Any], topic: str) -> BatchTrace:
        return BatchTrace(self._tracer, records, topic, self._group_id)

    @contextmanager
    def redis(self, operation: str, sessions: int) -> Iterator[None]:
        """A Redis round trip of the current batch or sweep: one pipeline of script runs."""
        with self._tracer.start_as_current_span(
            f"redis {operation}",
            kind=SpanKind.CLIENT,
            attributes={**_redis_attributes(operation), "session_worker.sessions": sessions},
        ):
            yield

    @contextmanager
    def sweep(self, started_ns: int, *, buckets: int, claimed: int) -> Iterator[Span]:
        """An expiry sweep that claimed sessions, a trace of its own, from `started_ns` (when
        its claim went to Redis; that round trip is its first child)."""
        span = self._tracer.start_span(
            "expiry sweep",
            context=Context(),
            kind=SpanKind.INTERNAL,
            start_time=started_ns,
            attributes={"session_worker.buckets": buckets, "session_worker.sessions": claimed},
        )
        self._tracer.start_span(
            "redis claim_expired",
            context=trace.set_span_in_context(span),
            kind=SpanKind.CLIENT,
            start_time=started_ns,
            attributes={**_redis_attributes("claim_expired"), "session_worker.sessions": claimed},
        ).end()
        with trace.use_span(span, end_on_exit=True):
            yield span

    @contextmanager
    def sending(self, topic: str, records: int) -> Iterator[None]:
        with self._tracer.start_as_current_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            attributes={**_messaging(topic, "send"), "messaging.batch.message_count": records},
        ):
            yield

    def expiry(self, topic: str, session_id: str, last_command: str, sweep: Span) -> Headers:
        """The trace an expiry event starts: a new one, linked to the trace of the command that
        last set the TTL (when one was recorded) and to the sweep. Returns the event's headers."""
        links = [Link(sweep.get_span_context(), {"session_worker.link": "sweep"})]
        command = _span_context_of(last_command) if last_command else None
        if command is not None:
            links.insert(0, Link(command, {"session_worker.link": "last command"}))
        span = self._tracer.start_span(
            f"create {topic}",
            context=Context(),  # a root: the expiry is no command's doing
            kind=SpanKind.PRODUCER,
            links=links,
            attributes={
                **_messaging(topic, "create"),
                "messaging.kafka.message.key": session_id,
                "session_worker.event.type": "session.expired",
            },
        )
        span.end()
        return [(HEADER_TRACEPARENT, traceparent(span.get_span_context()).encode())]

    def shutdown(self) -> None:
        """Exports the spans still buffered (the SDK's batch processor), once, at stop."""
        if self._shutdown is not None:
            self._shutdown()
