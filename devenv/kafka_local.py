"""A real single-node Kafka broker (KRaft, broker+controller) as a local process.

No Docker and no hand-written download: the broker jars come from Maven Central
through ``mvn`` (deploy/kafka/pom.xml), land in ~/.m2, and the resolved
classpath is cached under .cache/kafka/ keyed by the pom's content.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from devenv._proc import (
    LocalProcess,
    ManagedProcess,
    ServiceStartError,
    log_tail,
    wait_until_ready,
)
from devenv.ports import LOOPBACK, free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
CACHE_DIR = PROJECT_ROOT / ".cache" / "kafka"

_KAFKA_JAR = re.compile(r"kafka_2\.1[23]-([^/\\]+)\.jar$")


# --------------------------------------------------------------------------- classpath


def _classpath_key(pom: Path, kafka_version: str | None) -> str:
    digest = hashlib.sha256(pom.read_bytes())
    digest.update(b"\0kafka.version=" + (kafka_version or "").encode())
    return digest.hexdigest()[:16]


def _classpath_complete(classpath: str) -> bool:
    # ~/.m2 may have been wiped since the classpath was cached.
    entries = [e for e in classpath.split(os.pathsep) if e]
    return bool(entries) and all(os.path.isfile(e) for e in entries)


def resolve_classpath(
    *,
    pom: Path = DEFAULT_POM,
    cache_dir: Path = CACHE_DIR,
    kafka_version: str | None = None,
    force: bool = False,
) -> str:
    """The broker's runtime classpath, resolved through Maven once and then cached.

    ``kafka_version`` overrides the pom's ``kafka.version`` property. Only
    resolves; starts nothing (``make install`` / CI warm-up call this).
    """
    if not pom.is_file():
        raise FileNotFoundError(f"Kafka pom not found at {pom}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"classpath-{_classpath_key(pom, kafka_version)}.txt"
    if not force and cached.is_file():
        classpath = cached.read_text().strip()
        if _classpath_complete(classpath):
            return classpath

    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceStartError(
            "mvn not found on PATH; it resolves the Kafka broker jars "
            "(apt-get install -y maven openjdk-17-jre-headless)"
        )
    # Unique temp name, then an atomic rename: parallel runs never read half a file.
    tmp = cache_dir / f".{cached.name}.{os.getpid()}.tmp"
    argv = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:build-classpath",
        f"-Dmdep.outputFile={tmp}",
    ]
    if kafka_version:
        argv.append(f"-Dkafka.version={kafka_version}")
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, mvn from PATH
            argv, capture_output=True, text=True, timeout=900, check=False
        )
        if result.returncode != 0 or not tmp.is_file():
            out = (result.stdout + result.stderr)[-6000:]
            raise ServiceStartError(
                f"mvn could not resolve the Kafka broker (exit {result.returncode}):\n{out}"
            )
        classpath = tmp.read_text().strip()
        if not _classpath_complete(classpath):
            raise ServiceStartError(f"mvn returned an incomplete classpath: {classpath[:500]}")
        os.replace(tmp, cached)
    finally:
        tmp.unlink(missing_ok=True)
    return classpath


def kafka_version_of(classpath: str) -> str:
    """The broker version, read off the kafka_2.13-X.jar name in the classpath."""
    for entry in classpath.split(os.pathsep):
        match = _KAFKA_JAR.search(entry)
        if match:
            return match.group(1)
    raise ValueError("no kafka_2.13 jar in the classpath")


# --------------------------------------------------------------------------- readiness


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def metadata_broker_count(host: str, port: int, timeout: float = 1.0) -> int:
    """Send one Metadata request (v4, no topics) and return how many brokers it lists.

    A KRaft broker enables its client listener only once it is registered and
    unfenced, and lists itself only then: a non-zero count means clients can
    produce. v4 is served by Kafka 1.0 through 4.x.
    """
    client_id = b"devenv-probe"
    correlation_id = 7
    request = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    request += struct.pack(">ib", 0, 0)  # topics: empty array; allow_auto_topic_creation: false
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        body = _recv_exact(sock, size)
    got_correlation, _throttle_ms, brokers = struct.unpack(">iii", body[:12])
    if got_correlation != correlation_id:
        raise ConnectionError("unexpected correlation id in Metadata response")
    return int(brokers)


def kafka_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether the broker at host:port answers Metadata and lists a broker."""
    try:
        return metadata_broker_count(host, port, timeout) > 0
    except (OSError, struct.error):
        return False


# --------------------------------------------------------------------------- broker


def _new_cluster_id() -> str:
    # Same shape as Kafka's Uuid.randomUuid().toString(): URL-safe base64, no
    # padding, never starting with "-" (the CLI would read it as an option).
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise ServiceStartError(
            "java not found on PATH or in JAVA_HOME (apt-get install -y openjdk-17-jre-headless)"
        )
    return java


_LOG4J = """\
log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients.NetworkClient=WARN
"""


class LocalKafka(LocalProcess):
    """One combined broker+controller on free 127.0.0.1 ports.

    ``restart()`` keeps ports, cluster id and data, so connected clients
    reconnect to the same address. The blocking methods take about a second;
    from async code call them through ``asyncio.to_thread`` if the event loop
    must keep running meanwhile.

    ``quick_jit`` stops the JIT at C1: about 0.2 s faster to start, and at the
    rates a Python client reaches (~50k records/s) the broker also spends less
    CPU than with C2, whose compile threads compete with the client on a small
    machine. Turn it off only for long broker-bound runs.

    Subclasses (devenv.kafka_secured) add listeners through ``_EXTRA_PORTS`` (more free
    ports, in ``_extra_ports``), ``_more_properties()`` and their own ``_format_storage()``.
    """

    # How many more free ports start() picks, besides the client and controller ports.
    _EXTRA_PORTS = 0

    log_name = "kafka.log"

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        classpath: str | None = None,
        heap: str = "512m",
        quick_jit: bool = True,
        class_data_sharing: bool = True,
        extra_config: Mapping[str, str] | None = None,
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="local-kafka-")) if data_dir is None else Path(data_dir)
        )
        self._want_port = port
        self._want_controller_port = controller_port
        self._port: int | None = None
        self._controller_port: int | None = None
        self._extra_ports: list[int] = []
        self._classpath = classpath
        self._heap = heap
        self._quick_jit = quick_jit
        self._cds = class_data_sharing
        self._extra_config = dict(extra_config or {})
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: ManagedProcess | None = None
        self._cds_pending: tuple[Path, Path] | None = None
        self.last_start_seconds: float | None = None

    # -- addresses and state

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def classpath(self) -> str:
        if self._classpath is None:
            self._classpath = resolve_classpath()
        return self._classpath

    @property
    def kafka_version(self) -> str:
        return kafka_version_of(self.classpath)

    # -- files

    @property
    def _log_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def _config_path(self) -> Path:
        return self.data_dir / "server.properties"

    def _server_properties(self, log_dir: Path | None = None) -> str:
        if self._port is None or self._controller_port is None:
            raise RuntimeError("ports are chosen in start()")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{LOOPBACK}:{self._controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self._port},"
            f"CONTROLLER://{LOOPBACK}:{self._controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self._port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(log_dir or self._log_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            # One node: internal topics cannot have more replicas; few partitions
            # keep their lazy creation (first group, first transaction) quick.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Lets tests use short consumer session timeouts for fast failover.
            "group.min.session.timeout.ms": "500",
            # After a SIGKILL the old registration blocks the new incarnation until
            # its session expires (default 9 s, then retried with backoff).
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
        }
        props.update(self._more_properties())
        props.update(self._extra_config)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _more_properties(self) -> dict[str, str]:
        """Properties a subclass adds or overrides (``extra_config`` still wins)."""
        return {}

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._config_path.write_text(self._server_properties())
        (self.data_dir / "log4j.properties").write_text(_LOG4J)

    # -- JVM

    def _cds_archive(self, java: str) -> Path:
        # An archive only fits the exact classpath and JVM build it was made with.
        real = Path(java).resolve()
        digest = hashlib.sha256(self.classpath.encode())
        digest.update(f"\0{real}\0{real.stat().st_mtime_ns}".encode())
        return CACHE_DIR / f"cds-{digest.hexdigest()[:16]}.jsa"

    def _jvm_flags(self, java: str, *, for_broker: bool) -> list[str]:
        flags = [
            f"-Xmx{self._heap}" if for_broker else "-Xmx256m",
            # Small heap on a small machine: serial GC starts fastest and its
            # pauses stay short at this size.
            "-XX:+UseSerialGC",
            "-XX:-UsePerfData",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={(self.data_dir / 'log4j.properties').as_uri()}",
            f"-Dkafka.logs.dir={self.data_dir}",
        ]
        if self._quick_jit or not for_broker:
            flags.append("-XX:TieredStopAtLevel=1")
        if self._cds:
            # Application class-data sharing halves the JVM part of the start.
            # The first broker run writes the archive at exit; later runs map it.
            archive = self._cds_archive(java)
            if archive.is_file():
                flags.append(f"-XX:SharedArchiveFile={archive}")
            elif for_broker:
                archive.parent.mkdir(parents=True, exist_ok=True)
                tmp = archive.with_name(f".{archive.name}.{os.getpid()}.{id(self)}.tmp")
                self._cds_pending = (tmp, archive)
                flags.append(f"-XX:ArchiveClassesAtExit={tmp}")
        return flags

    def _format_storage(self, java: str) -> None:
        """Give the log dir formatted KRaft storage (meta.properties, bootstrap.checkpoint).

        StorageTool costs a JVM start (~0.4 s), so it runs once per classpath into
        a cached template that every new broker copies. Brokers made from it share
        a cluster id; each is its own one-node cluster, so nothing compares them.
        """
        if (self._log_dir / "meta.properties").is_file():
            return
        shutil.copytree(self._formatted_template(java), self._log_dir, dirs_exist_ok=True)

    def _formatted_template(self, java: str) -> Path:
        key = hashlib.sha256(self.classpath.encode()).hexdigest()[:16]
        template = CACHE_DIR / f"formatted-{key}"
        if (template / "meta.properties").is_file():
            return template
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".formatted-{key}.", dir=CACHE_DIR))
        try:
            storage = work / "data"
            self._run_storage_format(java, storage, work / "format.properties", what="template")
            try:
                # Atomic publish; loses harmlessly to a parallel run that got there first.
                storage.rename(template)
            except OSError:
                if not (template / "meta.properties").is_file():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return template

    def _run_storage_format(
        self, java: str, storage: Path, config: Path, *, what: str, extra_args: Sequence[str] = ()
    ) -> None:
        """Run ``kafka.tools.StorageTool format`` for this broker's config into ``storage``."""
        config.write_text(self._server_properties(log_dir=storage))
        argv = [
            java,
            *self._jvm_flags(java, for_broker=False),
            "-cp",
            self.classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            _new_cluster_id(),
            "--config",
            str(config),
            *extra_args,
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== formatting storage {what}\n".encode())
            log.flush()
            result = subprocess.run(  # noqa: S603 - fixed argv
                argv, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False
            )
        if result.returncode != 0 or not (storage / "meta.properties").is_file():
            raise ServiceStartError(
                f"kafka.tools.StorageTool format failed (exit {result.returncode}); "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            )

    # -- lifecycle

    def start(self) -> None:
        """Start the broker and block until it answers Metadata requests."""
        if self.running:
            return
        began = time.monotonic()
        java = _find_java()
        first_start = self._port is None
        # Retrying with new ports only makes sense for ports we picked ourselves.
        picked = self._want_port is None and self._want_controller_port is None
        attempts = 3 if first_start and picked else 1
        for attempt in range(attempts):
            if first_start or attempt > 0:
                port, controller_port, *self._extra_ports = free_ports(2 + self._EXTRA_PORTS)
                self._port = self._want_port or port
                self._controller_port = self._want_controller_port or controller_port
            self._write_config()
            self._format_storage(java)
            argv = [
                java,
                *self._jvm_flags(java, for_broker=True),
                "-cp",
                self.classpath,
                "kafka.Kafka",
                str(self._config_path),
            ]
            self._proc = ManagedProcess(argv, log_path=self.log_path, cwd=self.data_dir)
            self._proc.spawn()
            try:
                wait_until_ready(
                    self._proc,
                    lambda: kafka_ready(LOOPBACK, self.port),
                    timeout=self._start_timeout,
                    what=f"Kafka broker on {self.bootstrap_servers}",
                )
            except ServiceStartError as exc:
                self._discard_cds()
                # Someone took a port between our pick and the broker's bind.
                if attempt + 1 < attempts and "Address already in use" in str(exc):
                    continue
                raise
            self.last_start_seconds = time.monotonic() - began
            return

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM, then SIGKILL after ``stop_timeout``). Keeps data."""
        if self._proc is None:
            return
        returncode = self._proc.terminate(timeout=self._stop_timeout)
        self._proc = None
        if returncode is not None and returncode != -9:
            self._commit_cds()
        else:
            self._discard_cds()

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would. Keeps data; ``restart()`` recovers it."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc = None
        self._discard_cds()

    def _commit_cds(self) -> None:
        if self._cds_pending is None:
            return
        tmp, archive = self._cds_pending
        self._cds_pending = None
        if tmp.is_file() and tmp.stat().st_size > 0:
            os.replace(tmp, archive)
        tmp.unlink(missing_ok=True)

    def _discard_cds(self) -> None:
        if self._cds_pending is None:
            return
        tmp, _ = self._cds_pending
        self._cds_pending = None
        with contextlib.suppress(OSError):
            tmp.unlink()

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._port is not None else "not started"
        return f"LocalKafka({where}, pid={self.pid}, data_dir={self.data_dir})"
