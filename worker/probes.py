"""The worker's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (liveness), `/readyz`.

- `/healthz` answers 200 while the command loop keeps turning: its last beat is younger than
  `stuck_after_s` (`SW_LIVENESS_TIMEOUT_S`). A loop wedged in an await, or an event loop
  blocked so that this server cannot answer at all, fails the probe and the pod is restarted.
  Redis or Kafka being down does not fail it: the loop keeps turning (retrying with back-off),
  and a restart would not bring them back.
- `/readyz` answers 200 when this replica owns commands partitions and its last Redis check
  (at most three probe intervals old) succeeded, and it is not stopping.

A few lines of HTTP/1.1 over `asyncio.start_server`: one request per connection, GET or HEAD,
no dependency beyond prometheus-client for the exposition format.
"""

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.constants import HEALTH_PROBE_INTERVAL_S, REDIS_PROBE_TIMEOUT_S
from worker.metrics import Metrics
from worker.settings import Settings

log = structlog.get_logger("worker.probes")

REQUEST_TIMEOUT_S = 5.0  # a client that sends no complete request head by then is dropped
MAX_REQUEST_HEAD_BYTES = 8192  # probes and scrapes send a few hundred bytes


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: dict[str, Any]

    def body(self) -> bytes:
        return json.dumps({"status": "ok" if self.ok else "fail", **self.detail}).encode() + b"\n"


@dataclass(slots=True)
class HealthState:
    """What the probes report, updated by the worker as it runs. Times are `time.monotonic()`."""

    stuck_after_s: float  # no loop beat for this long: not live
    redis_stale_after_s: float = 3 * HEALTH_PROBE_INTERVAL_S  # older Redis checks count unknown
    last_beat: float = field(default_factory=time.monotonic)
    partitions: int = 0  # commands partitions assigned now
    redis_ok: bool = False
    redis_checked: float | None = None  # when Redis was last checked; None: not yet
    redis_error: str | None = None
    stopping: bool = False

    def beat(self) -> None:
        """The command loop turned (called once per poll)."""
        self.last_beat = time.monotonic()

    def set_partitions(self, partitions: int) -> None:
        self.partitions = partitions

    def set_redis(self, ok: bool, error: str | None = None) -> None:
        self.redis_ok = ok
        self.redis_error = None if ok else (error or "unreachable")
        self.redis_checked = time.monotonic()

    def mark_stopping(self) -> None:
        self.stopping = True

    def liveness(self, now: float | None = None) -> Check:
        now = time.monotonic() if now is None else now
        age = now - self.last_beat
        return Check(
            age <= self.stuck_after_s,
            {"loop_beat_age_s": round(age, 3), "stuck_after_s": self.stuck_after_s},
        )

    def readiness(self, now: float | None = None) -> Check:
        now = time.monotonic() if now is None else now
        reasons = []
        if self.stopping:
            reasons.append("stopping")
        if self.partitions <= 0:
            reasons.append("no partitions assigned")
        if self.redis_checked is None:
            redis = "not checked yet"
        elif now - self.redis_checked > self.redis_stale_after_s:
            redis = f"last checked {now - self.redis_checked:.0f} s ago"
        elif not self.redis_ok:
            redis = f"unreachable: {self.redis_error}"
        else:
            redis = "ok"
        if redis != "ok":
            reasons.append(f"redis {redis}")
        return Check(
            not reasons,
            {"partitions": self.partitions, "redis": redis, "reasons": reasons},
        )


async def probe_redis(
    health: HealthState,
    client: "aioredis.Redis | aioredis.RedisCluster",
    *,
    timeout_s: float = REDIS_PROBE_TIMEOUT_S,
    metrics: Metrics | None = None,
) -> bool:
    """PINGs Redis once and records the answer in `health`; True when it answered."""
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", reported as such
        timed_out = isinstance(exc, TimeoutError)
        health.set_redis(False, f"no answer within {timeout_s} s" if timed_out else repr(exc))
        if metrics is not None:
            metrics.redis_errors.labels(where="probe").inc()
        return False
    health.set_redis(True)
    return True


class HttpServer:
    """`/metrics`, `/healthz`, `/readyz` on `host:port` (port 0: any free port, see `.port`)."""

    def __init__(
        self, host: str, port: int, health: HealthState, metrics: Metrics | None = None
    ) -> None:
        self._host = host
        self._port = port
        self.health = health
        self.metrics = metrics
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_REQUEST_HEAD_BYTES
        )
        log.info("http server listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Idempotent."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            status, content_type, body, method = self._respond(head)
            writer.write(
                (
                    f"HTTP/1.1 {status}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Cache-Control: no-store\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass  # a client that went away or sent garbage gets nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, head: bytes) -> tuple[str, str, bytes, str]:
        """(status line, content type, body, method) for a request head."""
        try:
            method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
        except (UnicodeDecodeError, ValueError):
            return "400 Bad Request", "text/plain", b"bad request\n", "GET"
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET or HEAD only\n", method
        json_type = "application/json"
        match path:
            case "/metrics" if self.metrics is not None:
                return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry), method
            case "/healthz" | "/livez":
                check = self.health.liveness()
                return _status(check.ok), json_type, check.body(), method
            case "/readyz":
                check = self.health.readiness()
                return _status(check.ok), json_type, check.body(), method
        return "404 Not Found", "text/plain", b"/metrics, /healthz, /readyz\n", method


def _status(ok: bool) -> str:
    return "200 OK" if ok else "503 Service Unavailable"


def http_server(settings: Settings, health: HealthState, metrics: Metrics) -> HttpServer | None:
    """The server the settings ask for, not started; None when `SW_HTTP_PORT` is 0 (off)."""
    if settings.http_port == 0:
        return None
    return HttpServer(settings.http_host, settings.http_port, health, metrics)


def health_state(settings: Settings) -> HealthState:
    return HealthState(stuck_after_s=settings.liveness_timeout_s)
