"""What a processed record comes to, shared by the processor (which decides it), the sender
(which writes its events and dead letter) and the command loop (which counts and commits it).
"""

from typing import Literal, Protocol

import msgspec

from contracts.rejection import Rejection

Result = Literal["applied", "rejected", "duplicate", "replayed"]


class Record(Protocol):
    """What the processor reads of a Kafka record (aiokafka's ConsumerRecord fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...


class Outcome(msgspec.Struct, frozen=True, gc=False):
    record: Record
    result: Result
    events: tuple[bytes, ...]  # to the events topic, in order; none for a duplicate
    event_key: bytes | None
    event_type: str | None
    event_id: str | None
    rejection: Rejection | None  # set: the record also goes to the dead-letter topic
    command_id: str | None = None
    org_id: str | None = None
    session_id: str | None = None
    outbox: tuple[str, str] | None = None  # (session id, field) to clean once committed
    command_type: str | None = None  # None when the record could not be decoded
