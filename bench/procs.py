"""The worker as a real OS process (`python -m worker run`), so its RSS is its own."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from worker.settings import Settings


def settings_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **settings.to_env()}
    env.update(extra or {})
    return env


def scrape(port: int) -> dict[str, float]:
    """The worker's /metrics as {sample name with labels: value} (blocking; use a thread)."""
    import urllib.request

    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def rss_bytes(pid: int) -> int | None:
    """VmRSS of a process, from /proc (Linux); None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _stat_cpu_seconds(path: str) -> float | None:
    """User + system CPU time in a /proc stat file; None once it is gone."""
    try:
        with open(path, encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def thread_cpu_seconds(pid: int, tid: int) -> float | None:
    """User + system CPU time of one thread so far (/proc/<pid>/task/<tid>/stat)."""
    return _stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")


@dataclass
class RssSample:
    t: float  # monotonic seconds
    rss: int  # bytes
    cpu_s: float = 0.0  # CPU time used so far


@dataclass
class WorkerProc:
    """Starts the worker with `settings`, samples its RSS every `interval_s`, stops it cleanly."""

    settings: Settings
    log_path: Path
    module: tuple[str, ...] = ("worker", "run")
    extra_env: dict[str, str] = field(default_factory=dict)
    interval_s: float = 1.0
    rss: list[RssSample] = field(default_factory=list)
    started_at: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _sampler: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None  # noqa: S101 - started first
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def __aenter__(self) -> Self:
        # Blocking calls, once per worker start: nothing else runs meanwhile that they would hold.
        self._log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - closed in __aexit__
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and module
            [sys.executable, "-m", *self.module],
            env=settings_env(self.settings, self.extra_env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while self.alive:
            value = rss_bytes(self.pid)
            if value is not None and value > 4 * 1024 * 1024:  # not the moment before exec
                cpu = cpu_seconds(self.pid) or 0.0
                self.rss.append(RssSample(time.monotonic(), value, cpu))
            await asyncio.sleep(self.interval_s)

    async def wait_for_log(self, marker: bytes, timeout_s: float = 60.0) -> None:
        """Returns once the worker's log holds `marker` (e.g. `b'"partitions assigned"'`);
        raises if it died or did not write it in time."""
        deadline = time.monotonic() + timeout_s
        while not (self.log_path.exists() and marker in self.log_path.read_bytes()):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not log {marker!r}; its log: {self.log_path}")
            await asyncio.sleep(0.1)

    def signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def check(self) -> None:
        """Fails loudly if the worker died: every number after that would be wrong."""
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(
                f"the worker exited with {self._proc.returncode}; its log: {self.log_path}"
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while self._proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._log is not None:
            self._log.close()
