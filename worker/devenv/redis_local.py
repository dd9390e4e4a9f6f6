"""A real Redis server as a local process: ``redis-server`` from PATH, no config file."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from worker.devenv._proc import ManagedProcess, ServiceStartError, StartedService, wait_until_ready
from worker.devenv.ports import LOOPBACK, free_port


def redis_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether Redis answers PING with PONG (not -LOADING while it replays the AOF)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(256)
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"+PONG")


class LocalRedis(StartedService):
    """One ``redis-server`` on a free 127.0.0.1 port, data in a given or temporary dir.

    ``appendonly=True`` turns on the AOF so a ``kill()`` + ``restart()`` keeps
    every acknowledged write (Redis writes the AOF before it replies; fsync only
    matters for a machine crash, not a process kill). RDB snapshots are off.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        appendonly: bool = False,
        port: int | None = None,
        notify_keyspace_events: str = "",
        extra_args: Sequence[str] = (),
        executable: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="local-redis-")) if data_dir is None else Path(data_dir)
        )
        self.appendonly = appendonly
        self._want_port = port
        self._port: int | None = None
        self._notify = notify_keyspace_events
        self._extra_args = list(extra_args)
        self._executable = executable
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: ManagedProcess | None = None
        self.last_start_seconds: float | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalRedis has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def _find_server(self) -> str:
        name = self._executable or "redis-server"
        found = shutil.which(name)
        if found is None:
            raise ServiceStartError(
                f"{name} not found on PATH; install it with: "
                "apt-get update && apt-get install -y redis-server"
            )
        return found

    def _argv(self, server: str) -> list[str]:
        return [
            server,
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--protected-mode", "no",
            "--notify-keyspace-events", self._notify,
            "--daemonize", "no",
            "--logfile", "",  # stdout, which goes to redis.log
            *self._extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        """Start redis-server and block until it answers PING."""
        if self.running:
            return
        began = time.monotonic()
        server = self._find_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        first_start = self._port is None
        attempts = 3 if first_start and self._want_port is None else 1
        for attempt in range(attempts):
            if first_start or attempt > 0:
                self._port = self._want_port or free_port()
            self._proc = ManagedProcess(self._argv(server), log_path=self.log_path)
            self._proc.spawn()
            try:
                wait_until_ready(
                    self._proc,
                    lambda: redis_ready(LOOPBACK, self.port),
                    timeout=self._start_timeout,
                    what=f"redis-server on {LOOPBACK}:{self.port}",
                    interval=0.01,
                )
            except ServiceStartError as exc:
                # Someone took the port between our pick and the server's bind.
                if attempt + 1 < attempts and "Address already in use" in str(exc):
                    continue
                raise
            self.last_start_seconds = time.monotonic() - began
            return

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM: Redis flushes the AOF). Keeps the data dir."""
        if self._proc is None:
            return
        self._proc.terminate(timeout=self._stop_timeout)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL redis-server, as a crash would."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc = None

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and dir (AOF replays)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the data dir if this instance created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"LocalRedis({where}, pid={self.pid}, data_dir={self.data_dir})"
