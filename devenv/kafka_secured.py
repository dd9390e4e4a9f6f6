"""A real one-node KRaft broker with secured listeners, for tests of the worker's security settings.

Like ``LocalKafka`` (same jars, JVM flags, lifecycle and restart behaviour), with four client
listeners on free 127.0.0.1 ports:

- ``PLAINTEXT``: inter-broker and controller traffic, and tests' own setup;
- ``SASL_SSL``: SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN over TLS;
- ``SSL``: mutual TLS (``ssl.client.auth=required``);
- ``SASL_PLAINTEXT``: OAUTHBEARER with Kafka's built-in *unsecured* validator (unsigned
  ``alg: none`` JWTs with a ``sub`` claim are accepted) and SCRAM-SHA-512.

TLS comes from a ``devenv.pki.Pki`` through Kafka's PEM support. Each user gets SCRAM-SHA-256
and SCRAM-SHA-512 credentials, written when the storage is formatted (``--add-scram``), and a
PLAIN login. No authorizer: any authenticated principal may do anything.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from devenv._proc import ServiceStartError
from devenv.kafka_local import LocalKafka
from devenv.pki import Pki
from devenv.ports import LOOPBACK, port_accepts

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# Names and passwords go into JAAS strings and StorageTool's --add-scram syntax unquoted.
_SAFE = re.compile(r"[A-Za-z0-9-]+")

_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"

# Listener name -> index into the extra ports.
_SASL_SSL, _SSL, _SASL_PLAINTEXT = 0, 1, 2


class SecuredKafka(LocalKafka):
    """One combined broker+controller with PLAINTEXT, SASL_SSL, SSL and SASL_PLAINTEXT listeners.

    ``users`` maps user names to passwords (``[A-Za-z0-9-]`` only). The credentials are fixed
    when the storage is first formatted; ``restart()`` keeps them with the data.
    """

    _EXTRA_PORTS = 3

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        pki: Pki,
        users: Mapping[str, str],
        classpath: str | None = None,
        heap: str = "512m",
        quick_jit: bool = True,
        class_data_sharing: bool = True,
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
    ) -> None:
        if not users:
            raise ValueError("SecuredKafka needs at least one user")
        for name, password in users.items():
            if not _SAFE.fullmatch(name) or not _SAFE.fullmatch(password):
                # Never echo the password itself.
                raise ValueError(f"user {name!r}: names and passwords must match [A-Za-z0-9-]+")
        super().__init__(
            data_dir,
            classpath=classpath,
            heap=heap,
            quick_jit=quick_jit,
            class_data_sharing=class_data_sharing,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
        )
        self.pki = pki
        self._users = dict(users)

    # -- addresses

    def _listener_port(self, index: int) -> int:
        if not self._extra_ports:
            raise RuntimeError("SecuredKafka has not been started")
        return self._extra_ports[index]

    @property
    def plaintext_bootstrap(self) -> str:
        return self.bootstrap_servers

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"{LOOPBACK}:{self._listener_port(_SASL_SSL)}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"{LOOPBACK}:{self._listener_port(_SSL)}"

    @property
    def sasl_plaintext_bootstrap(self) -> str:
        return f"{LOOPBACK}:{self._listener_port(_SASL_PLAINTEXT)}"

    # -- configuration

    @property
    def _keystore_path(self) -> Path:
        return self.data_dir / "server-keystore.pem"

    def _write_keystore(self) -> None:
        # A PEM key store given by location holds the PKCS#8 key and the certificate chain.
        data = self.pki.server_key_file.read_bytes() + self.pki.server_cert_file.read_bytes()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._keystore_path.unlink(missing_ok=True)
        fd = os.open(self._keystore_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def _more_properties(self) -> dict[str, str]:
        if self._port is None or self._controller_port is None or not self._extra_ports:
            raise RuntimeError("ports are chosen in start()")
        client = {
            "PLAINTEXT": self._port,
            "SASL_SSL": self._extra_ports[_SASL_SSL],
            "SSL": self._extra_ports[_SSL],
            "SASL_PLAINTEXT": self._extra_ports[_SASL_PLAINTEXT],
        }
        advertised = ",".join(f"{name}://{LOOPBACK}:{port}" for name, port in client.items())
        plain_users = " ".join(f'user_{name}="{pw}"' for name, pw in self._users.items())
        return {
            "listeners": f"{advertised},CONTROLLER://{LOOPBACK}:{self._controller_port}",
            "advertised.listeners": advertised,
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,"
            + ",".join(f"{name}:{name}" for name in client),
            # Server TLS, used by the SASL_SSL and SSL listeners.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self._keystore_path),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca_file),
            # SASL_SSL: SCRAM and PLAIN.
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{_SCRAM_MODULE} required;",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": f"{_SCRAM_MODULE} required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"{_PLAIN_MODULE} required {plain_users};"
            ),
            # SSL: mutual TLS.
            "listener.name.ssl.ssl.client.auth": "required",
            # SASL_PLAINTEXT: unsecured OAUTHBEARER (the broker's own login makes an unsigned
            # token for "broker") and SCRAM-SHA-512.
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "OAUTHBEARER,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": (
                f'{_OAUTH_MODULE} required unsecuredLoginStringClaim_sub="broker";'
            ),
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                f"{_SCRAM_MODULE} required;"
            ),
        }

    def _format_storage(self, java: str) -> None:
        """Format this broker's own storage with its users' SCRAM credentials.

        Not LocalKafka's shared template: the credentials live in the storage's bootstrap
        metadata, and they differ between brokers.
        """
        if (self._log_dir / "meta.properties").is_file():
            return
        scram = [
            arg
            for name, password in self._users.items()
            for mechanism in SCRAM_MECHANISMS
            for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]
        self._run_storage_format(
            java,
            self._log_dir,
            self.data_dir / "format.properties",
            what="with SCRAM credentials",
            extra_args=scram,
        )

    def _write_config(self) -> None:
        super()._write_config()
        self._config_path.chmod(0o600)  # holds the PLAIN passwords
        self._write_keystore()

    # -- lifecycle

    def start(self) -> None:
        """Start the broker; block until it answers Metadata and every listener accepts."""
        if self.running:
            return
        super().start()
        deadline = time.monotonic() + self._start_timeout
        ports = [self.port, *self._extra_ports]
        while not all(port_accepts(port) for port in ports):
            if time.monotonic() >= deadline:
                self.kill()
                raise ServiceStartError(f"SecuredKafka: listeners {ports} do not all accept")
            time.sleep(0.05)

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._port is not None else "not started"
        return f"SecuredKafka({where}, pid={self.pid}, data_dir={self.data_dir})"
