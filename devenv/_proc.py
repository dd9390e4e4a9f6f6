"""Child processes for the local services: own process group, output to a log file.

Shared by the Kafka and Redis launchers so both stop, die and report the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self


class StartedService:
    """`with service:` starts it and always closes it, also when starting fails half-way."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalProcess(StartedService):
    """A service run as one local process on a port of its own, its data and log in `data_dir`:
    what the Kafka and Redis launchers share."""

    log_name: ClassVar[str]
    data_dir: Path
    _owns_dir: bool  # a temporary dir made for it: removed by close()
    _port: int | None
    _proc: ManagedProcess | None

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Stop (if running) and start again on the same port(s) with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the data dir if this instance created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def port(self) -> int:
        """The port clients connect to (Redis with TLS: the TLS port)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name


class ServiceStartError(RuntimeError):
    """A local service did not come up; the message carries the tail of its log."""


def log_tail(path: Path, max_bytes: int = 6000) -> str:
    """The last ``max_bytes`` of a log file, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        # Drop the partial first line.
        text = "..." + text[text.find("\n") :]
    return text


# Processes still running when the interpreter exits are stopped then, so an
# aborted test run does not leave brokers behind. Weak, so a dropped handle is
# not kept alive by this registry.
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_live):
        proc.terminate(timeout=5.0)


# Kills a service's process group once its owner is gone, however it died
# (SIGKILL, OOM): it blocks on a pipe only the owner holds and wakes at EOF.
_WATCHDOG = """
import os, signal, sys
sys.stdin.buffer.read()
try:
    os.killpg(int(sys.argv[1]), signal.SIGKILL)
except OSError:
    pass
"""


class ManagedProcess:
    """One run of a server binary, in its own session and process group.

    The own group keeps a terminal's Ctrl-C away from the server (the owner stops
    it cleanly) and lets stop/kill reach any child it forked (Redis forks for
    AOF rewrites).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._cwd = cwd
        self._env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self.running and self._popen is not None else None

    @property
    def running(self) -> bool:
        if self._popen is None:
            return False
        if self._popen.poll() is None:
            return True
        self._disarm_watchdog()  # it exited by itself and is reaped now
        return False

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def spawn(self) -> None:
        if self.running:
            raise RuntimeError(f"already running: {self.argv[0]} (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log: IO[bytes]
        # Append, so a restart keeps the earlier run's log for post-mortems.
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {self.argv[0]}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(  # noqa: S603 - argv built by the launchers, no shell
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
            )
        self._watchdog = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(self._popen.pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _live.add(self)

    def _disarm_watchdog(self) -> None:
        # Before the service is reaped: once it is, its group id may be reused.
        if self._watchdog is None:
            return
        self._watchdog.kill()
        self._watchdog.wait()
        if self._watchdog.stdin is not None:
            self._watchdog.stdin.close()
        self._watchdog = None

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the group, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        if self._popen is None:
            return None
        self._disarm_watchdog()
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
        # No group-wide SIGKILL after the leader is reaped: its pid, and so the
        # group id, may belong to someone else by then.
        _live.discard(self)
        return self._popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the group at once, as a crash would. Returns the exit code."""
        if self._popen is None:
            return None
        self._disarm_watchdog()
        self._signal_group(signal.SIGKILL)
        self._popen.wait()
        _live.discard(self)
        return self._popen.returncode


def wait_until_ready(
    proc: ManagedProcess,
    probe: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Poll ``probe`` until it is true; fail early if the process exits.

    Raises ServiceStartError with the log tail on exit or timeout (the process
    is killed on timeout so it does not linger).
    """
    deadline = time.monotonic() + timeout
    while True:
        if not proc.running:
            raise ServiceStartError(
                f"{what} exited with code {proc.returncode} before it was ready; "
                f"log {proc.log_path}:\n{log_tail(proc.log_path)}"
            )
        if probe():
            return
        if time.monotonic() >= deadline:
            proc.kill()
            raise ServiceStartError(
                f"{what} was not ready after {timeout:.0f}s; "
                f"log {proc.log_path}:\n{log_tail(proc.log_path)}"
            )
        time.sleep(interval)
