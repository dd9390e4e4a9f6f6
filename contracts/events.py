"""Lifecycle events the worker emits, a tagged union on ``type``.

``eventId`` is derived from what caused the event, so re-processing gives the same id and
consumers can drop duplicates. ``timestamp`` is milliseconds since the epoch, as in Vapi's server
messages.
"""

from typing import Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

from contracts.session import Session

RejectionCode = Literal["invalid", "too_large", "unsupported", "not_found", "conflict"]


class _Event(Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", rename="camel"):
    event_id: str
    timestamp: int


class _SessionEvent(_Event, frozen=True):
    org_id: str
    session_id: str
    version: int  # 1 at creation, +1 per change (expiry and deletion included)
    session: Session


class _CommandSessionEvent(_SessionEvent, frozen=True):
    command_id: str


class SessionCreated(_CommandSessionEvent, frozen=True, tag="session.created"):
    pass


class SessionUpdated(_CommandSessionEvent, frozen=True, tag="session.updated"):
    pass


class SessionCompleted(_CommandSessionEvent, frozen=True, tag="session.completed"):
    pass


class SessionDeleted(_CommandSessionEvent, frozen=True, tag="session.deleted"):
    """Carries the last snapshot before deletion."""


class SessionExpired(_SessionEvent, frozen=True, tag="session.expired"):
    """The TTL ran out; carries the last snapshot and no commandId."""


class RejectionError(Struct, frozen=True, forbid_unknown_fields=True):
    code: RejectionCode
    message: str
    path: str | UnsetType = UNSET  # JSON path of the offending value, e.g. `$.payload.name`


class CommandRejected(_Event, frozen=True, tag="command.rejected"):
    """A command that was not applied; carries whatever ids could be read from it."""

    error: RejectionError
    command_id: str | UnsetType = UNSET
    org_id: str | UnsetType = UNSET
    session_id: str | UnsetType = UNSET


Event = (
    SessionCreated
    | SessionUpdated
    | SessionCompleted
    | SessionDeleted
    | SessionExpired
    | CommandRejected
)

event_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
