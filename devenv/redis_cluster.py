"""A real Redis Cluster as local processes: three primaries (``redis-server --cluster-enabled
yes`` on free loopback ports, joined with ``redis-cli --cluster create``), optionally each with
replicas.

Without replicas (the default) the slots are split over three primaries, so killing a node makes
its slots unavailable until it is started again; with ``appendonly=True`` it comes back with its
data (its identity and slots are kept in ``nodes.conf`` in its data dir), and with an empty
script cache, as after a failover.

With ``replicas_per_primary=1`` there are six nodes: three primaries, each with one replica
(``--cluster-replicas 1``; which node replicates which is redis-cli's choice, so ask
``replica_of()``). Replication is asynchronous, as in production: a primary acknowledges a
write before its replica has it. Failures are what production sees, made on purpose:

- ``kill(i)``: SIGKILL a node; after ``NODE_TIMEOUT_MS`` the others mark it failed and its
  replica is elected in its place (``wait_promoted()``);
- ``pause(i)`` / ``resume(i)``: SIGSTOP / SIGCONT, a node that stops answering and reading
  (a replica paused while its primary keeps acknowledging writes falls behind, and after
  ``REPL_TIMEOUT_S`` its primary drops it and goes on alone);
- ``force_failover(replica)``: ``CLUSTER FAILOVER FORCE`` sent to a replica, a failover by
  hand that does not wait for the primary (writes the replica has not yet received are lost);
- ``start()``: starts every node that is not running, on its port and with its data dir; a
  killed primary whose replica took over comes back as a replica of the new primary (and
  resynchronises from it, dropping the writes only it had).

Replicas run with ``cluster-replica-validity-factor 0``: a replica that fell behind, or lost
its link for long, may still be promoted, as a lagging replica may be in production (the
default refuses a replica whose link was down for longer than ten node timeouts, which would
turn "falls behind, then takes over" into "the slots stay down").

Optionally secured like ``LocalRedis``: ``tls=`` a ``devenv.pki.Pki`` (clients, the
cluster bus and replication all speak mutual TLS) and ``users=`` ACL users (the ``default`` user
off; nodes authenticate to each other as the first user). ``redis-cli`` gets the password through
``REDISCLI_AUTH``, never its argv.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv._proc import ServiceStartError, StartedService
from devenv.pki import Pki
from devenv.ports import LOOPBACK, free_ports
from devenv.redis_local import LocalRedis

NODES = 3  # primaries
SLOTS = 16384
NODE_TIMEOUT_MS = 2000  # how long a silent node takes to be marked failing (default 15 s)
# With replicas: a primary drops a replica that has not acknowledged anything for this long
# (default 60 s), and goes on alone; replicas acknowledge every second.
REPL_TIMEOUT_S = 3


@dataclass(frozen=True)
class ClusterNode:
    """One node as ``CLUSTER NODES`` of another node describes it."""

    index: int  # position in ``LocalRedisCluster.nodes``
    node_id: str
    primary: bool
    primary_id: str | None  # for a replica: the node id of the primary it replicates
    failing: bool  # flagged ``fail`` or ``fail?`` by the node asked
    slots: tuple[tuple[int, int], ...]  # inclusive ranges served (primaries)

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)


class LocalRedisCluster(StartedService):
    """Three cluster-enabled primaries (and ``replicas_per_primary`` replicas of each) forming
    one cluster. ``nodes[i]`` is node ``i``; roles change with failovers, so which node is a
    primary is always asked of the cluster (``primaries()``, ``primary_index_for()``,
    ``replica_of()``), never assumed from the index."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        appendonly: bool = False,
        start_timeout: float = 30.0,
        tls: Pki | None = None,
        users: Mapping[str, str] | None = None,
        replicas_per_primary: int = 0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """``appendonly``: AOF on every node (any of them may become a primary);
        ``extra_args``: more ``redis-server`` options for every node (the chaos suite's
        ``--appendfsync always``)."""
        if replicas_per_primary < 0:
            raise ValueError("replicas_per_primary must be >= 0")
        self._owns_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="local-redis-cluster-"))
            if data_dir is None
            else Path(data_dir)
        )
        self.appendonly = appendonly
        self.replicas_per_primary = replicas_per_primary
        self._extra_args = list(extra_args)
        self._start_timeout = start_timeout
        self.tls = tls
        self._users = dict(users or {})
        self.nodes: list[LocalRedis] = []
        self._paused: set[int] = set()
        self.last_start_seconds: float | None = None

    @property
    def node_count(self) -> int:
        """Primaries and replicas: 3, or 6 with one replica per primary."""
        return NODES * (1 + self.replicas_per_primary)

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
        replica_args = (
            [
                # A replica that fell behind may still take over (see the module docstring).
                "--cluster-replica-validity-factor", "0",
                # Replicas stay with the primary they were given (no migration to orphans).
                "--cluster-allow-replica-migration", "no",
                # A full resync (a rejoining old primary) starts at once, not after 5 s.
                "--repl-diskless-sync-delay", "0",
                # A replica that stops reading is dropped after REPL_TIMEOUT_S (it must be
                # longer than the ping period; the defaults are 10 s and 60 s).
                "--repl-ping-replica-period", "1",
                "--repl-timeout", str(REPL_TIMEOUT_S),
            ]
            if self.replicas_per_primary
            else []
        )  # fmt: skip
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
                *replica_args,
                *self._extra_args,
            ],
            start_timeout=self._start_timeout,
            tls=self.tls,
            users=self._users or None,
        )  # fmt: skip

    def start(self) -> None:
        """Start the nodes (first time: create the cluster) and wait until it is ok.

        Again after ``kill()``/``stop()``: starts the nodes that are not running, on their ports
        and with their data (a paused node is resumed), and waits until the cluster is ok and,
        with replicas, every replica is in sync with its primary."""
        for index in sorted(self._paused):
            self.resume(index)
        if self.running:
            return
        began = time.monotonic()
        if self.nodes:  # started before: the nodes keep their ports and nodes.conf
            for node in self.nodes:
                node.start()
        else:
            self._first_start()
        self.wait_ok()
        if self.replicas_per_primary:
            self.wait_replicas_in_sync()
        self.last_start_seconds = time.monotonic() - began

    def _first_start(self) -> None:
        count = self.node_count
        for attempt in range(3):
            ports = free_ports(2 * count)
            self.nodes = [self._node(ports[i], ports[count + i], i) for i in range(count)]
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
            "--cluster-replicas", str(self.replicas_per_primary),
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

    def command(self, index: int, *args: str, timeout: float = 5.0) -> str:
        """One command sent to node ``index`` with redis-cli (raw output, no formatting);
        raises ``RuntimeError`` if the node does not answer or answers with an error."""
        if index in self._paused:
            raise RuntimeError(f"node {index} is paused")
        argv = [*self._cli_argv(), "--raw", "-e", "-h", LOOPBACK, "-p", str(self.ports[index])]
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [*argv, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=self._cli_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"node {index}: no answer to {args[0]} in {timeout} s") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"node {index}: {' '.join(args)} failed: {(result.stdout + result.stderr).strip()}"
            )
        return result.stdout

    def _info_dict(self, index: int, *args: str) -> dict[str, str]:
        try:
            text = self.command(index, *args)
        except RuntimeError:
            return {}
        pairs = (line.strip().split(":", 1) for line in text.splitlines())
        return {p[0]: p[1] for p in pairs if len(p) == 2}

    def cluster_info(self, index: int = 0) -> dict[str, str]:
        """``CLUSTER INFO`` of one node, as a dict (empty if it does not answer)."""
        return self._info_dict(index, "cluster", "info")

    def replication_info(self, index: int) -> dict[str, str]:
        """``INFO replication`` of one node, as a dict (empty if it does not answer):
        ``role`` (master/slave), ``master_link_status``, ``master_repl_offset``, ..."""
        return self._info_dict(index, "info", "replication")

    def role(self, index: int) -> str:
        """``master`` or ``slave``, as the node itself says (``""`` if it does not answer)."""
        return self.replication_info(index).get("role", "")

    def _answering(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.running and i not in self._paused]

    def wait_ok(self, timeout: float | None = None) -> None:
        """Blocks until every node says the cluster is ok with all slots served."""
        limit = self._start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            infos = [self.cluster_info(i) for i in range(len(self.nodes))]
            if all(
                info.get("cluster_state") == "ok"
                and info.get("cluster_slots_ok") == str(SLOTS)
                and info.get("cluster_known_nodes") == str(self.node_count)
                for info in infos
            ):
                return
            if time.monotonic() >= deadline:
                raise ServiceStartError(f"Redis Cluster not ok after {limit} s: {infos}")
            time.sleep(0.05)

    def topology(self, asking: int | None = None) -> list[ClusterNode]:
        """Every node as ``CLUSTER NODES`` of node ``asking`` (default: the first node that is
        running and not paused) describes it, in index order."""
        if asking is None:
            answering = self._answering()
            if not answering:
                raise RuntimeError("no node is running")
            asking = answering[0]
        by_port = {port: i for i, port in enumerate(self.ports)}
        found: list[ClusterNode] = []
        for line in self.command(asking, "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            port = int(fields[1].split("@", 1)[0].rsplit(":", 1)[1])
            flags = set(fields[2].split(","))
            slots: list[tuple[int, int]] = []
            for item in fields[8:]:
                if item.startswith("["):  # a slot being migrated or imported
                    continue
                first, _, last = item.partition("-")
                slots.append((int(first), int(last or first)))
            found.append(
                ClusterNode(
                    index=by_port[port],
                    node_id=fields[0],
                    primary="master" in flags,
                    primary_id=None if fields[3] == "-" else fields[3],
                    failing=bool(flags & {"fail", "fail?"}),
                    slots=tuple(slots),
                )
            )
        return sorted(found, key=lambda n: n.index)

    def primaries(self) -> list[int]:
        """The indexes of the nodes that serve slots now (always three)."""
        return [n.index for n in self.topology() if n.primary and n.slots]

    def slot_for(self, key: str) -> int:
        """The hash slot of ``key`` (``CLUSTER KEYSLOT``: hash tags included)."""
        return int(self.command(self._answering()[0], "cluster", "keyslot", key).strip())

    def primary_index_for_slot(self, slot: int) -> int:
        """The index of the node serving ``slot`` now."""
        for node in self.topology():
            if node.primary and node.serves(slot):
                return node.index
        raise RuntimeError(f"no node serves slot {slot}")

    def primary_index_for(self, key: str) -> int:
        """The index of the primary holding ``key`` now."""
        return self.primary_index_for_slot(self.slot_for(key))

    def replicas_of(self, primary_index: int) -> list[int]:
        """The indexes of the replicas of a primary (by the cluster's view, failing or not)."""
        nodes = self.topology()
        primary_id = nodes[primary_index].node_id
        return [n.index for n in nodes if n.primary_id == primary_id]

    def replica_of(self, primary_index: int) -> int:
        """The index of the (first) replica of a primary."""
        replicas = self.replicas_of(primary_index)
        if not replicas:
            raise RuntimeError(f"node {primary_index} has no replica")
        return replicas[0]

    def _pid(self, index: int) -> int:
        pid = self.nodes[index].pid
        if pid is None:
            raise RuntimeError(f"node {index} is not running")
        return pid

    def pause(self, index: int) -> None:
        """SIGSTOP a node: it neither answers nor reads (replication, the cluster bus) until
        ``resume()``; after ``NODE_TIMEOUT_MS`` the others flag it failing.

        A paused replica falls behind while its primary acknowledges writes. What its primary
        had already handed to the kernel still reaches it on ``resume()`` (even from a primary
        killed meanwhile: several MB on loopback); after ``REPL_TIMEOUT_S`` the primary drops
        the silent replica and goes on alone, so what it acknowledges from then on exists on
        the primary only, until the replica reconnects."""
        os.kill(self._pid(index), signal.SIGSTOP)
        self._paused.add(index)

    def resume(self, index: int) -> None:
        """SIGCONT a paused node (nothing if it is not paused or no longer running)."""
        self._paused.discard(index)
        pid = self.nodes[index].pid
        if pid is not None:
            os.kill(pid, signal.SIGCONT)

    def wait_promoted(self, replica_index: int, timeout: float = 30.0) -> float:
        """Blocks until node ``replica_index`` says it is a primary (``role:master``) serving
        slots and every running, unpaused node says the cluster is ok with all slots served;
        returns the seconds it waited."""
        began = time.monotonic()
        deadline = began + timeout
        while True:
            if self.role(replica_index) == "master":
                answering = self._answering()
                infos = [self.cluster_info(i) for i in answering]
                if all(
                    info.get("cluster_state") == "ok" and info.get("cluster_slots_ok") == str(SLOTS)
                    for info in infos
                ) and any(n.index == replica_index and n.slots for n in self.topology()):
                    return time.monotonic() - began
            if time.monotonic() >= deadline:
                raise ServiceStartError(
                    f"node {replica_index} not promoted after {timeout} s: "
                    f"{self.replication_info(replica_index)}"
                )
            time.sleep(0.05)

    def force_failover(self, replica_index: int) -> None:
        """``CLUSTER FAILOVER FORCE`` to a replica: it takes its primary's slots at once,
        without waiting for the primary to hand over the writes it has not sent yet (the
        primary then becomes its replica). ``wait_promoted()`` waits for the result."""
        if self.role(replica_index) != "slave":
            raise RuntimeError(f"node {replica_index} is not a replica")
        reply = self.command(replica_index, "cluster", "failover", "force").strip()
        if reply != "OK":
            raise RuntimeError(f"node {replica_index}: CLUSTER FAILOVER FORCE: {reply}")

    def wait_replicas_in_sync(self, timeout: float | None = None) -> None:
        """Blocks until every running replica has its replication link up (``WAIT`` can be
        answered) and each primary has ``replicas_per_primary`` replicas connected."""
        limit = self._start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            infos = {i: self.replication_info(i) for i in self._answering()}
            replicas_ok = all(
                info.get("master_link_status") == "up"
                and info.get("master_sync_in_progress") == "0"
                for info in infos.values()
                if info.get("role") == "slave"
            )
            primaries = [info for info in infos.values() if info.get("role") == "master"]
            if (
                replicas_ok
                and len(primaries) == NODES
                and all(
                    info.get("connected_slaves") == str(self.replicas_per_primary)
                    for info in primaries
                )
                and all(self._view_complete(i) for i in infos)
            ):
                return
            if time.monotonic() >= deadline:
                raise ServiceStartError(f"replicas not in sync after {limit} s: {infos}")
            time.sleep(0.05)

    def _view_complete(self, asking: int) -> bool:
        """Whether node ``asking`` knows every primary with all its replicas, none failing
        (gossip spreads a new replica or a recovered node to the others in a while)."""
        try:
            nodes = self.topology(asking)
        except RuntimeError:
            return False
        serving = [n for n in nodes if n.primary and n.slots]
        return (
            len(nodes) == self.node_count
            and len(serving) == NODES
            and not any(n.failing for n in nodes)
            and all(
                sum(1 for n in nodes if n.primary_id == p.node_id) == self.replicas_per_primary
                for p in serving
            )
        )

    def kill(self, index: int | None = None) -> None:
        """SIGKILL one node (or all), as a crash would."""
        for i in range(len(self.nodes)) if index is None else [index]:
            self.nodes[i].kill()  # SIGKILL acts on a stopped process too
            self._paused.discard(i)

    def stop(self, index: int | None = None) -> None:
        """Graceful stop of one node (or all); they keep their data dirs."""
        for i in range(len(self.nodes)) if index is None else [index]:
            self.resume(i)  # a stopped process would not act on SIGTERM
            self.nodes[i].stop()

    def restart(self, index: int | None = None) -> None:
        """Stop and start one node (or all) on the same ports; waits until the cluster is ok."""
        self.stop(index)
        self.start()

    def close(self) -> None:
        """Stop every node and remove the data dir if this instance created it."""
        for i, node in enumerate(self.nodes):
            self.resume(i)
            node.close()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __repr__(self) -> str:
        where = ",".join(map(str, self.ports)) if self.nodes else "not started"
        return f"LocalRedisCluster({LOOPBACK}:{where}, data_dir={self.data_dir})"
