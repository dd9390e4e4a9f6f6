"""`python -m bench.otlp_sink --port N`: an OTLP/HTTP trace receiver that only counts.

What `bench.tracing` exports the worker's spans to: a process of its own, so that what receiving
them costs is not charged to the benchmark process and can be reported on its own. It accepts
`POST /v1/traces` (protobuf, as the worker's exporter sends it; gzip or deflate if asked),
decodes each request (`ExportTraceServiceRequest`), counts requests, bytes and spans, and
answers 200 with an empty `ExportTraceServiceResponse`. `GET /stats` gives the counts so far as
JSON: spans in all and by kind, from the span's name and whether it has a parent (the worker's
names, `worker.tracing`): a command's `process <topic>` span has one (its producer's, or the
batch's), a batch's is a root; `redis ...`, `send ...`, `create ...` (an expiry event) and
`expiry sweep` are told apart by their first word.
"""

import argparse
import gzip
import json
import threading
import zlib
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PATH = "/v1/traces"
_KINDS = ("redis", "send", "create", "expiry")
_EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()


def span_kind(name: str, has_parent: bool) -> str:
    """command, batch, redis, send, create, expiry or other: see the module's docstring."""
    if name.startswith("process "):
        return "command" if has_parent else "batch"
    first = name.split(" ", 1)[0]
    return first if first in _KINDS else "other"


@dataclass
class Counts:
    requests: int = 0
    body_bytes: int = 0  # request bodies as received (compressed, if they were)
    spans: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    errors: int = 0  # requests that did not decode

    def add(self, body: bytes, request: ExportTraceServiceRequest) -> None:
        self.requests += 1
        self.body_bytes += len(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans += 1
                    kind = span_kind(span.name, bool(span.parent_span_id))
                    self.kinds[kind] = self.kinds.get(kind, 0) + 1


class Sink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.counts = Counts()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects
    server: Sink

    def do_POST(self) -> None:  # http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != PATH:
            self._reply(404, b"", "text/plain")
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        try:
            raw = (
                gzip.decompress(body)
                if encoding == "gzip"
                else zlib.decompress(body)
                if encoding == "deflate"
                else body
            )
            request = ExportTraceServiceRequest.FromString(raw)
        except Exception:  # noqa: BLE001 - counted, and answered as the collector would
            with self.server.lock:
                self.server.counts.errors += 1
            self._reply(400, b"", "text/plain")
            return
        with self.server.lock:
            self.server.counts.add(body, request)
        self._reply(200, _EMPTY_RESPONSE, "application/x-protobuf")

    def do_GET(self) -> None:  # http.server's name
        if self.path != "/stats":
            self._reply(404, b"", "text/plain")
            return
        with self.server.lock:
            text = json.dumps(asdict(self.server.counts))
        self._reply(200, text.encode(), "application/json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per request would cost more than the counting


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.otlp_sink", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    with Sink(args.port) as sink:
        sink.serve_forever()


if __name__ == "__main__":
    main()
