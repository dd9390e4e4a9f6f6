"""W3C trace context on the wire, with OpenTelemetry when the application has it.

The publishers add the caller's current context to each command (`traceparent`, `tracestate`)
if `opentelemetry-api` is installed and a span is active; the worker carries it to every record
the command causes, and `trace_context` reads it back from an event's headers. Without
OpenTelemetry nothing is added, and the kit needs nothing more than msgspec and aiokafka.
"""

from collections.abc import Iterable

from contracts.wire import HEADER_TRACEPARENT, HEADER_TRACESTATE

_TRACE_HEADERS = (HEADER_TRACEPARENT, HEADER_TRACESTATE)


def current_trace_headers() -> tuple[tuple[str, bytes], ...]:
    """The caller's active OpenTelemetry context as record headers; none without one."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple((name, carrier[name].encode()) for name in _TRACE_HEADERS if name in carrier)


def trace_context(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """`traceparent` and `tracestate` of a record (an event, a dead letter), as text: what
    `opentelemetry.propagate.extract` takes to continue the command's trace."""
    return {
        name: value.decode("ascii", "replace")
        for name, value in headers or ()
        if name in _TRACE_HEADERS and value is not None
    }
