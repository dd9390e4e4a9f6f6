"""A real Redis server as a local process: ``redis-server`` from PATH.

Plain by default (no config file). Optionally with TLS (``tls=`` a ``devenv.pki.Pki``:
TLS only, clients must present a certificate from its CA) and ACL users (``users=``: each may do
anything, the ``default`` user is off). Passwords never go on a command line: the users are
written, as SHA-256 hashes, to a private config file in the data dir.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from devenv._proc import LocalProcess, ManagedProcess, ServiceStartError, wait_until_ready
from devenv.pki import Pki, client_ssl_context
from devenv.ports import LOOPBACK, free_port


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return f"*{len(encoded)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in encoded
    )


def redis_ready(
    host: str,
    port: int,
    timeout: float = 1.0,
    *,
    ssl_context: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bool:
    """Whether Redis answers PING with PONG (not -LOADING while it replays the AOF).

    With ``ssl_context`` it speaks TLS (to ``host`` as the server name); with ``password`` it
    authenticates first (as ``username``, or the default user).
    """
    commands = [["PING"]]
    if password is not None:
        commands.insert(0, ["AUTH", *([username] if username else []), password])
    request = b"".join(_command(*command) for command in commands)
    replies = len(commands)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = (
                raw if ssl_context is None else ssl_context.wrap_socket(raw, server_hostname=host)
            )
            with sock:
                sock.sendall(request)
                reply = b""
                while reply.count(b"\r\n") < replies:
                    chunk = sock.recv(256)
                    if not chunk:
                        return False
                    reply += chunk
    except OSError:  # ssl.SSLError included
        return False
    # The AUTH reply (+OK) comes first; an error to it (-WRONGPASS) fails the check too.
    return reply.split(b"\r\n")[replies - 1].startswith(b"+PONG") and (
        replies == 1 or reply.startswith(b"+OK")
    )


def _acl_password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class LocalRedis(LocalProcess):
    """One ``redis-server`` on a free 127.0.0.1 port, data in a given or temporary dir.

    ``appendonly=True`` turns on the AOF so a ``kill()`` + ``restart()`` keeps
    every acknowledged write (Redis writes the AOF before it replies; fsync only
    matters for a machine crash, not a process kill). RDB snapshots are off.
    """

    log_name = "redis.log"

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
        tls: Pki | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        if users is not None:
            for name, password in users.items():
                # Names and passwords become words of a config line.
                if not name or not password or any(c.isspace() for c in name + password):
                    raise ValueError(f"user {name!r}: empty or blank name or password")
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
        self.tls = tls
        self._users: dict[str, str] = dict(users or {})
        self._ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        """Without credentials, ever: clients pass the user and password separately."""
        scheme = "rediss" if self.tls is not None else "redis"
        return f"{scheme}://{LOOPBACK}:{self.port}/0"

    def _find_server(self) -> str:
        name = self._executable or "redis-server"
        found = shutil.which(name)
        if found is None:
            raise ServiceStartError(
                f"{name} not found on PATH; install it with: "
                "apt-get update && apt-get install -y redis-server"
            )
        return found

    @property
    def _secrets_config_path(self) -> Path:
        return self.data_dir / "users.conf"

    def _write_secrets_config(self) -> None:
        """The ACL users (passwords as SHA-256 hashes) and, for replication and the cluster
        bus between nodes, the first user's credentials, in a file only the owner reads."""
        lines = [
            f"user {name} on #{_acl_password_hash(pw)} ~* &* +@all"
            for name, pw in self._users.items()
        ]
        lines.append("user default off")
        first_name, first_password = next(iter(self._users.items()))
        lines += [f"masteruser {first_name}", f"masterauth {first_password}"]
        path = self._secrets_config_path
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{line}\n" for line in lines))

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.server_cert_file),
            "--tls-key-file", str(self.tls.server_key_file),
            "--tls-ca-cert-file", str(self.tls.ca_file),
            "--tls-auth-clients", "yes",
        ]  # fmt: skip

    def _argv(self, server: str) -> list[str]:
        # The config file, when there is one, must be the first argument.
        config = [str(self._secrets_config_path)] if self._users else []
        return [
            server,
            *config,
            *self._tls_args(),
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
        if self._users:
            self._write_secrets_config()
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
                    self._ready,
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

    def _ready(self) -> bool:
        username, password = next(iter(self._users.items()), (None, None))
        return redis_ready(
            LOOPBACK,
            self.port,
            ssl_context=self._probe_context(),
            username=username,
            password=password,
        )

    def _probe_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        if self._ssl_context is None:
            self._ssl_context = client_ssl_context(self.tls)
        return self._ssl_context

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

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"LocalRedis({where}, pid={self.pid}, data_dir={self.data_dir})"
