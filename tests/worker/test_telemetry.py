"""Tracing configured the standard way: OpenTelemetry's environment variables decide whether the
worker traces, and `session-worker run` exports over OTLP/HTTP to a collector (here a real HTTP
server that decodes OTLP's protobuf, as a collector does)."""

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import use_span

from contracts.commands import CreateSession
from contracts.payloads import CreateSessionDTO
from session_client import CommandPublisher
from tests.support import WorkerHarness, WorkerProcess
from worker.errors import SettingsError
from worker.metrics import running_version
from worker.telemetry import exporters_configured, tracing_from_env

HEADER_CANARY = "otlp-api-key-canary-d41d"


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, []),  # no exporter
    ],
)
def test_which_environment_turns_tracing_on(env: dict[str, str], exporters: list[str]) -> None:
    assert exporters_configured(env) == exporters


def test_tracing_is_off_without_an_exporter() -> None:
    assert tracing_from_env({}, group_id="g", version="0") is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_a_configuration_that_cannot_work_is_a_settings_error_without_secrets(
    env: dict[str, str], named: str
) -> None:
    env = {**env, "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={HEADER_CANARY}"}
    with pytest.raises(SettingsError) as raised:
        tracing_from_env(env, group_id="g", version="0")
    assert named in str(raised.value)
    assert HEADER_CANARY not in str(raised.value)


def test_no_tracing_code_is_loaded_when_tracing_is_off() -> None:
    # redis-py itself imports parts of OpenTelemetry's API and metrics SDK when they are
    # installed; the worker's spans (worker.tracing) and the trace SDK stay out.
    probe = (
        "import sys, worker.app, worker.cli, worker.telemetry;"
        "print(sorted(m for m in sys.modules"
        " if m == 'worker.tracing' or m.startswith('opentelemetry.sdk.trace')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env={}
    )
    assert out.stdout.strip() == "[]"


class _Collector(ThreadingHTTPServer):
    """OTLP/HTTP's trace endpoint: keeps every span posted to /v1/traces, with its resource."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[tuple[dict[str, Any], OtlpSpan]] = []
        self.headers_seen: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.headers_seen.append(self.headers.get("x-api-key", ""))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    self.server.spans += [(resource, span) for span in scope.spans]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _attributes(span: OtlpSpan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in span.attributes:
        value = a.value
        out[a.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


@pytest.mark.asyncio
@pytest.mark.slow
async def test_the_worker_exports_a_creates_trace_over_otlp_as_the_environment_says(
    harness: WorkerHarness, collector: _Collector, tmp_path: Path
) -> None:
    settings = harness.settings
    client_tracer = TracerProvider().get_tracer("client")
    span = client_tracer.start_span("client: create session")
    command = CreateSession(
        command_id="c-otlp-1",
        org_id="org-42",
        session_id="s-otlp-1",
        payload=CreateSessionDTO(name="otlp"),
    )
    async with CommandPublisher(settings.kafka, topic=settings.commands_topic) as publisher:
        with use_span(span, end_on_exit=True):
            await publisher.publish(command)
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    worker = WorkerProcess(
        settings,
        tmp_path / "worker.log",
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={HEADER_CANARY}",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )
    worker.start()
    try:
        (event,) = await harness.events.wait_count(1, timeout_s=60)
    finally:
        assert worker.terminate() == 0  # SIGTERM: the spans still buffered are exported
    log = (tmp_path / "worker.log").read_text()
    assert HEADER_CANARY not in log

    spans = [s for _, s in collector.spans]
    assert spans, log[-2000:]
    resource = collector.spans[0][0]
    assert resource["service.name"] == "session-worker"
    assert resource["service.version"] == running_version()
    assert resource["deployment.environment.name"] == "test"
    assert set(collector.headers_seen) == {HEADER_CANARY}  # the exporter's own header, sent
    client = span.get_span_context()
    (processed,) = [s for s in spans if s.parent_span_id == client.span_id.to_bytes(8, "big")]
    assert processed.trace_id == client.trace_id.to_bytes(16, "big")
    assert processed.kind == OtlpSpan.SPAN_KIND_CONSUMER
    attributes = _attributes(processed)
    assert attributes["messaging.kafka.message.key"] == "s-otlp-1"
    assert attributes["session_worker.event.type"] == "session.created"
    expected = f"00-{processed.trace_id.hex()}-{processed.span_id.hex()}-"
    assert event.headers["traceparent"].decode().startswith(expected)
    (batch,) = [s for s in spans if s.span_id == processed.links[0].span_id]
    children = sorted(s.name for s in spans if s.parent_span_id == batch.span_id)
    assert children == ["redis apply", f"send {settings.events_topic}"]
    print(_tree(spans))  # the closing note's span tree (pytest -s)


def _tree(spans: list[OtlpSpan]) -> str:
    by_parent: dict[bytes, list[OtlpSpan]] = {}
    for s in spans:
        by_parent.setdefault(s.parent_span_id, []).append(s)
    known = {s.span_id for s in spans}
    lines: list[str] = []

    def walk(span: OtlpSpan, depth: int) -> None:
        ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
        links = f" links={len(span.links)}" if span.links else ""
        lines.append(
            f"{'  ' * depth}{span.name} [{ms:.2f} ms]{links} trace={span.trace_id.hex()[:8]}"
        )
        for child in sorted(by_parent.get(span.span_id, []), key=lambda c: c.start_time_unix_nano):
            walk(child, depth + 1)

    for root in [s for s in spans if s.parent_span_id not in known]:
        walk(root, 0)
    return "\n".join(lines)
