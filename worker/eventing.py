"""Builds lifecycle and rejection events as bytes, encoding each snapshot only once.

The snapshot is encoded once and the same bytes go to Redis and, as `msgspec.Raw`, into the
event. The wire structs mirror `contracts.events` field for field; a test keeps them identical.
"""

import hashlib
import uuid

import msgspec
from msgspec import UNSET, Struct, UnsetType

from contracts.events import RejectionError
from contracts.rejection import Rejection

# Fixed namespace: event ids are UUIDv5 of what caused the event, stable across releases.
_EVENT_NAMESPACE = uuid.UUID("6f0e3a52-52d4-4f0c-9a59-3c9e4b7d2a10")

_encoder = msgspec.json.Encoder()


class _WireSessionEvent(Struct, frozen=True, rename="camel"):
    type: str
    event_id: str
    timestamp: int
    org_id: str
    session_id: str
    version: int
    session: msgspec.Raw
    command_id: str | UnsetType = UNSET


class _WireRejection(Struct, frozen=True, rename="camel"):
    type: str
    event_id: str
    timestamp: int
    error: RejectionError
    command_id: str | UnsetType = UNSET
    org_id: str | UnsetType = UNSET
    session_id: str | UnsetType = UNSET


_NAMESPACE_BYTES = _EVENT_NAMESPACE.bytes
# RFC 4122 variant bits over the hex digit they replace: 10xx, keeping the digit's low two bits.
_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


def _uuid5(name: str) -> str:
    """`str(uuid.uuid5(_EVENT_NAMESPACE, name))` without building a UUID object: the same
    SHA-1, version and variant bits, and text (`tests/worker/test_event_ids.py` compares the
    two), in a quarter of the time: the digest's hex with two digits replaced."""
    h = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def command_event_id(session_id: str, command_id: str) -> str:
    """The id of the one transition a command causes: same command, same id."""
    return _uuid5(f"cmd\x1f{session_id}\x1f{command_id}")


def expiry_event_id(session_id: str, version: int) -> str:
    """The id of a session's expiry: one per incarnation, whoever announces it."""
    return _uuid5(f"exp\x1f{session_id}\x1f{version}")


def rejection_event_id(topic: str, partition: int, offset: int) -> str:
    """A rejection answers one record: its coordinates name it."""
    return _uuid5(f"rej\x1f{topic}\x1f{partition}\x1f{offset}")


def encode_snapshot(snapshot: Struct) -> bytes:
    return _encoder.encode(snapshot)


def session_event(
    *,
    event_type: str,
    event_id: str,
    timestamp_ms: int,
    org_id: str,
    session_id: str,
    version: int,
    snapshot: bytes,
    command_id: str | None,
) -> bytes:
    return _encoder.encode(
        _WireSessionEvent(
            type=event_type,
            event_id=event_id,
            timestamp=timestamp_ms,
            org_id=org_id,
            session_id=session_id,
            version=version,
            session=msgspec.Raw(snapshot),
            command_id=UNSET if command_id is None else command_id,
        )
    )


def rejection_event(
    *,
    event_id: str,
    timestamp_ms: int,
    rejection: Rejection,
    command_id: str | None,
    org_id: str | None,
    session_id: str | None,
) -> bytes:
    return _encoder.encode(
        _WireRejection(
            type="command.rejected",
            event_id=event_id,
            timestamp=timestamp_ms,
            error=RejectionError(
                code=rejection.code,
                message=rejection.message,
                path=UNSET if rejection.path is None else rejection.path,
            ),
            command_id=UNSET if command_id is None else command_id,
            org_id=UNSET if org_id is None else org_id,
            session_id=UNSET if session_id is None else session_id,
        )
    )


def expired_event(
    *, session_id: str, org_id: str, version: int, expires_ms: int, snapshot: bytes
) -> bytes:
    """Everything in it derives from the stored state (the time is the TTL's end), so whoever
    announces an expiry, and however often, the bytes are the same."""
    return session_event(
        event_type="session.expired",
        event_id=expiry_event_id(session_id, version),
        timestamp_ms=expires_ms,
        org_id=org_id,
        session_id=session_id,
        version=version,
        snapshot=snapshot,
        command_id=None,
    )
