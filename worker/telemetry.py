"""Whether the worker traces, decided by OpenTelemetry's own environment variables.

Tracing is on when an exporter is configured: `OTEL_TRACES_EXPORTER` (`otlp`, `console`;
`none` turns it off) or an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true` turns it off whatever else is
set. Everything else is the SDK's to read as usual: the sampler (`OTEL_TRACES_SAMPLER`), the
batch processor (`OTEL_BSP_*`), the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`),
the exporter's headers, certificates and timeouts. With tracing off nothing of OpenTelemetry is
imported: the command loop holds `None` and checks it once per batch.

The SDK and the OTLP exporter are the optional extra `session-worker[otel]` (in the image).
"""

import os
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from worker.errors import SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from worker.tracing import Tracing

SERVICE_NAME = "session-worker"
EXTRA = "pip install 'session-worker[otel]'"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def exporters_configured(env: Mapping[str, str]) -> list[str]:
    """The trace exporters the environment asks for; empty: tracing off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return [e.strip() for e in named.split(",") if e.strip() and e.strip() != "none"]
    return ["otlp"] if any(env.get(name, "").strip() for name in _ENDPOINTS) else []


def tracing_from_env(
    env: Mapping[str, str] | None = None, *, group_id: str, version: str
) -> "Tracing | None":
    """The worker's tracing as the environment configures it, or None when it is off. Raises
    SettingsError (naming the variable, never a header's value) when it cannot work."""
    env = os.environ if env is None else env
    names = exporters_configured(env)
    if not names:
        return None
    try:
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from worker.tracing import Tracing
    except ImportError as exc:
        raise SettingsError(
            f"tracing is configured (OTEL_*) but OpenTelemetry's SDK is missing: {EXTRA}"
        ) from exc
    exporters = [_exporter(name, env) for name in names]
    # Ours first, then what OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say, which wins.
    resource = Resource.create(
        {
            "service.name": SERVICE_NAME,
            "service.version": version,
            "service.instance.id": socket.gethostname(),
        }
    ).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_*
    return Tracing(provider, group_id=group_id, version=version, shutdown=provider.shutdown)


def _exporter(name: str, env: Mapping[str, str]) -> "SpanExporter":
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout is the log's
    if name != "otlp":
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER: {name!r} is not one the worker ships; use otlp or console"
        )
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"  # the specification's default
    ).strip()
    if protocol == "http/protobuf":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise SettingsError(f"OTLP over HTTP needs the exporter: {EXTRA}") from exc
        return OTLPSpanExporter()  # endpoint, headers, certificates from OTEL_EXPORTER_OTLP_*
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError as exc:
            raise SettingsError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs "
                "'pip install opentelemetry-exporter-otlp-proto-grpc' (the image ships "
                "http/protobuf only)"
            ) from exc
        exporter: SpanExporter = GrpcSpanExporter()
        return exporter
    raise SettingsError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use http/protobuf or grpc"
    )
