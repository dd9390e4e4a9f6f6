"""A throwaway PKI for the secured local services, made at test time with ``trustme``.

One CA signs a server certificate (SANs ``127.0.0.1`` and ``localhost``, for Kafka's and Redis's
TLS listeners) and a client certificate (for mutual TLS); an unrelated second CA lets a test
check that a client trusting the wrong CA is refused. Keys are written as PKCS#8 PEM, which
Kafka's ``ssl.keystore.type=PEM`` requires, and the client key also encrypted with a password.
Nothing here is checked in; every call makes new keys.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

SERVER_IDENTITIES = ("127.0.0.1", "localhost")
CLIENT_COMMON_NAME = "session-worker-client"
# trustme writes the names as a critical SubjectAlternativeName, which must not be empty.
CLIENT_IDENTITY = "session-worker-client.test"


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files one ``make_pki`` call wrote."""

    ca_file: Path  # the CA both the servers and the clients trust
    server_cert_file: Path  # leaf + chain, SANs 127.0.0.1 and localhost
    server_key_file: Path  # PKCS#8, unencrypted
    client_cert_file: Path  # leaf + chain, for mutual TLS
    client_key_file: Path  # PKCS#8, unencrypted
    client_key_encrypted_file: Path  # the same key, PKCS#8 encrypted with client_key_password
    client_key_password: str = field(repr=False)  # never in a repr, a log or a test report
    other_ca_file: Path  # an unrelated CA: trusting only it must fail against our servers


def _pkcs8(key_pem: bytes, password: str | None = None) -> bytes:
    """trustme writes "traditional" (SEC1/PKCS#1) keys; re-encode them as PKCS#8."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password.encode())
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _write(path: Path, data: bytes, *, secret: bool = False) -> Path:
    # Private keys readable by the owner only, as servers and careful clients expect.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def make_pki(directory: Path, *, client_key_password: str) -> Pki:
    """Write a fresh CA, server and client certificates and keys into ``directory``."""
    if not client_key_password:
        raise ValueError("client_key_password must not be empty")
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="session-worker test CA")
    other_ca = trustme.CA(organization_name="session-worker unrelated CA")
    server = ca.issue_cert(*SERVER_IDENTITIES, common_name=SERVER_IDENTITIES[0])
    client = ca.issue_cert(CLIENT_IDENTITY, common_name=CLIENT_COMMON_NAME)

    def chain(leaf: trustme.LeafCert) -> bytes:
        return b"".join(blob.bytes() for blob in leaf.cert_chain_pems)

    client_key = client.private_key_pem.bytes()
    return Pki(
        ca_file=_write(directory / "ca.pem", ca.cert_pem.bytes()),
        server_cert_file=_write(directory / "server.pem", chain(server)),
        server_key_file=_write(
            directory / "server.key", _pkcs8(server.private_key_pem.bytes()), secret=True
        ),
        client_cert_file=_write(directory / "client.pem", chain(client)),
        client_key_file=_write(directory / "client.key", _pkcs8(client_key), secret=True),
        client_key_encrypted_file=_write(
            directory / "client.encrypted.key",
            _pkcs8(client_key, client_key_password),
            secret=True,
        ),
        client_key_password=client_key_password,
        other_ca_file=_write(directory / "other-ca.pem", other_ca.cert_pem.bytes()),
    )


def client_ssl_context(pki: Pki, *, client_cert: bool = True) -> ssl.SSLContext:
    """A client context that trusts ``pki``'s CA (hostnames checked) and, by default, presents
    its client certificate, as the secured local services require."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if client_cert:
        context.load_cert_chain(str(pki.client_cert_file), str(pki.client_key_file))
    return context
