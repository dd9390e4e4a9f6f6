"""A real three-primary Redis Cluster as local processes: ``redis-server --cluster-enabled yes``
three times on free loopback ports, joined with ``redis-cli --cluster create``.

No replicas (the slots are split over three primaries), so killing a node makes its slots
unavailable until it is started again; with ``appendonly=True`` it comes back with its data
(its identity and slots are kept in ``nodes.conf`` in its data dir), and with an empty script
cache, as after a failover.

Optionally secured like ``LocalRedis``: ``tls=`` a ``devenv.pki.Pki`` (clients, the
cluster bus and replication all speak mutual TLS) and ``users=`` ACL users (the ``default`` user
off; nodes authenticate to each other as the first user). ``redis-cli`` gets the password through
``REDISCLI_AUTH``, never its argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from devenv._proc import ServiceStartError, StartedService
from devenv.pki import Pki
from devenv.ports import LOOPBACK, free_ports
from devenv.redis_local import LocalRedis

NODES = 3
SLOTS = 16384
NODE_TIMEOUT_MS = 2000  # how long a silent node takes to be marked failing (default 15 s)


class LocalRedisCluster(StartedService):
    """Three cluster-enabled ``redis-server`` processes forming one cluster."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        appendonly: bool = False,
        start_timeout: float = 30.0,
        tls: Pki | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="local-redis-cluster-"))
            if data_dir is None
            else Path(data_dir)
        )
        self.appendonly = appendonly
        self._start_timeout = start_timeout
        self.tls = tls
        self._users = dict(users or {})
        self.nodes: list[LocalRedis] = []
        self.last_start_seconds: float | None = None

    @property
    def ports(self) -> list[int]:
        if not self.nodes:
            raise RuntimeError("LocalRedisCluster has not been started")
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """The first node's address: a cluster client reads the slot map from any node."""
        scheme = "rediss" if self.tls is not None else "redis"
        return f"{scheme}://{LOOPBACK}:{self.ports[0]}/0"

    @property
    def running(self) -> bool:
        return bool(self.nodes) and all(node.running for node in self.nodes)

    def _node(self, port: int, bus_port: int, index: int) -> LocalRedis:
        tls_args = ["--tls-cluster", "yes", "--tls-replication", "yes"] if self.tls else []
        return LocalRedis(
            self.data_dir / f"node-{index}",
            appendonly=self.appendonly,
            port=port,
            extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # The bus port defaults to port + 10000, which may not exist for a high port.
                "--cluster-port", str(bus_port),
                *tls_args,
            ],
            start_timeout=self._start_timeout,
            tls=self.tls,
            users=self._users or None,
        )  # fmt: skip

    def start(self) -> None:
        """Start the three nodes (first time: create the cluster) and wait until it is ok."""
        if self.running:
            return
        began = time.monotonic()
        if self.nodes:  # started before: the nodes keep their ports and nodes.conf
            for node in self.nodes:
                node.start()
        else:
            self._first_start()
        self.wait_ok()
        self.last_start_seconds = time.monotonic() - began

    def _first_start(self) -> None:
        for attempt in range(3):
            ports = free_ports(2 * NODES)
            self.nodes = [self._node(ports[i], ports[NODES + i], i) for i in range(NODES)]
            try:
                for node in self.nodes:
                    node.start()
            except ServiceStartError as exc:
                for node in self.nodes:
                    node.close()
                self.nodes = []
                if attempt < 2 and "Address already in use" in str(exc):
                    continue  # someone took a port between our pick and the bind
                raise
            break
        self._create()

    def _cli(self) -> str:
        found = shutil.which("redis-cli")
        if found is None:
            raise ServiceStartError(
                "redis-cli not found on PATH; it comes with redis-server: "
                "apt-get update && apt-get install -y redis-server"
            )
        return found

    def _cli_argv(self) -> list[str]:
        """redis-cli and its TLS and user options (the password goes in ``_cli_env()``)."""
        argv = [self._cli()]
        if self.tls is not None:
            argv += [
                "--tls",
                "--cacert", str(self.tls.ca_file),
                "--cert", str(self.tls.client_cert_file),
                "--key", str(self.tls.client_key_file),
            ]  # fmt: skip
        if self._users:
            argv += ["--user", next(iter(self._users))]
        return argv

    def _cli_env(self) -> dict[str, str] | None:
        if not self._users:
            return None
        env = dict(os.environ)
        env["REDISCLI_AUTH"] = next(iter(self._users.values()))
        return env

    def _create(self) -> None:
        argv = [
            *self._cli_argv(),
            "--cluster", "create",
            *(f"{LOOPBACK}:{port}" for port in self.ports),
            "--cluster-replicas", "0",
            "--cluster-yes",
        ]  # fmt: skip
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv,
            capture_output=True,
            text=True,
            timeout=self._start_timeout,
            check=False,
            env=self._cli_env(),
        )
        if result.returncode != 0:
            raise ServiceStartError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )

    def cluster_info(self, index: int = 0) -> dict[str, str]:
        """``CLUSTER INFO`` of one node, as a dict."""
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [*self._cli_argv(), "-h", LOOPBACK, "-p", str(self.ports[index]), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            env=self._cli_env(),
        )
        pairs = (line.strip().split(":", 1) for line in result.stdout.splitlines())
        return {p[0]: p[1] for p in pairs if len(p) == 2}

    def wait_ok(self, timeout: float | None = None) -> None:
        """Blocks until every node says the cluster is ok with all slots served."""
        deadline = time.monotonic() + (self._start_timeout if timeout is None else timeout)
        while True:
            infos = [self.cluster_info(i) for i in range(len(self.nodes))]
            if all(
                info.get("cluster_state") == "ok"
                and info.get("cluster_slots_ok") == str(SLOTS)
                and info.get("cluster_known_nodes") == str(NODES)
                for info in infos
            ):
                return
            if time.monotonic() >= deadline:
                raise ServiceStartError(f"Redis Cluster not ok after {timeout} s: {infos}")
            time.sleep(0.05)

    def kill(self, index: int | None = None) -> None:
        """SIGKILL one node (or all), as a crash would."""
        for node in self.nodes if index is None else [self.nodes[index]]:
            node.kill()

    def stop(self, index: int | None = None) -> None:
        """Graceful stop of one node (or all); they keep their data dirs."""
        for node in self.nodes if index is None else [self.nodes[index]]:
            node.stop()

    def restart(self, index: int | None = None) -> None:
        """Stop and start one node (or all) on the same ports; waits until the cluster is ok."""
        self.stop(index)
        self.start()

    def close(self) -> None:
        """Stop every node and remove the data dir if this instance created it."""
        for node in self.nodes:
            node.close()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __repr__(self) -> str:
        where = ",".join(map(str, self.ports)) if self.nodes else "not started"
        return f"LocalRedisCluster({LOOPBACK}:{where}, data_dir={self.data_dir})"
