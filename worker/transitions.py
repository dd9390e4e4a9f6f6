"""The lifecycle rules: given a command and the session as it stands, what happens.

Pure functions over a `SessionView`; no I/O. The processor reads the view from Redis (or carries
it forward within a batch), asks `decide`, and has Redis apply the answer only if the session is
still as it was seen.
"""

import msgspec

from contracts.commands import Command, CreateSession, DeleteSession, UpdateSession
from contracts.rejection import Rejection
from contracts.session import Session
from worker.snapshot import changes_anything, new_session, updated_session

_session_decoder = msgspec.json.Decoder(Session)

NOT_FOUND = Rejection("not_found", "session not found", "$.sessionId")


class SessionView(msgspec.Struct, frozen=True, gc=False):
    """A session as the next command will find it."""

    version: int = 0  # 0: Redis knows nothing of this session id
    snapshot: bytes | None = None  # encoded live snapshot; None when there is no live session
    org_id: str | None = None
    expires_ms: int | None = None
    # The TTL ran out and the expiry was not announced yet: the snapshot it will carry.
    expired_snapshot: bytes | None = None
    applied: frozenset[str] = frozenset()  # commandIds known applied
    # False for a view from the processor's cache, which keeps no commandIds: Redis then
    # checks each operation's commandId itself (see Op.check_applied).
    applied_known: bool = True
    stored: bytes | None = None  # `snapshot` as stored in Redis (compressed), when known

    @property
    def live(self) -> bool:
        return self.snapshot is not None

    def session(self) -> Session:
        if self.snapshot is None:
            raise ValueError("no live session")
        return _session_decoder.decode(self.snapshot)


class Put(msgspec.Struct, frozen=True, gc=False):
    """Store a new snapshot (create or update)."""

    event_type: str
    session: Session
    expires_ms: int
    version: int
    # A create over a session whose TTL ran out unannounced announces that expiry first
    # (version - 1), exactly as the sweeper would have.
    announce_expiry: bool = False


class Delete(msgspec.Struct, frozen=True, gc=False):
    event_type = "session.deleted"
    version: int


class Unchanged(msgspec.Struct, frozen=True, gc=False):
    """Accepted without a change (a no-op update of a completed session)."""

    event_type = "session.updated"


class Reject(msgspec.Struct, frozen=True, gc=False):
    rejection: Rejection


class Duplicate(msgspec.Struct, frozen=True, gc=False):
    """The commandId was applied to this session before: nothing changes, nothing new is said."""


Decision = Put | Delete | Unchanged | Reject | Duplicate


def decide(command: Command, view: SessionView, now_ms: int) -> Decision:
    same_owner = view.org_id == command.org_id
    if same_owner and command.command_id in view.applied:
        return Duplicate()
    owned = view.live and same_owner
    match command:
        case CreateSession():
            if view.live:
                return Reject(Rejection("conflict", "session already exists", "$.sessionId"))
            session, expires_ms = new_session(
                command.session_id, command.org_id, command.payload, now_ms
            )
            kind = "session.completed" if session.status == "completed" else "session.created"
            if view.expired_snapshot is not None:
                return Put(kind, session, expires_ms, view.version + 2, announce_expiry=True)
            return Put(kind, session, expires_ms, view.version + 1)
        case UpdateSession():
            # Another tenant's session is answered exactly like a missing one.
            if not owned:
                return NOT_FOUND_DECISION
            current = view.session()
            if current.status == "completed":
                if changes_anything(current, command.payload):
                    return Reject(Rejection("conflict", "session is completed", "$.payload"))
                return Unchanged()
            assert view.expires_ms is not None  # noqa: S101 - a live view always has an expiry
            session, expires_ms = updated_session(current, view.expires_ms, command.payload, now_ms)
            kind = "session.completed" if session.status == "completed" else "session.updated"
            return Put(kind, session, expires_ms, view.version + 1)
        case DeleteSession():
            if not owned:
                return NOT_FOUND_DECISION
            return Delete(view.version + 1)


NOT_FOUND_DECISION = Reject(NOT_FOUND)


def after(
    view: SessionView, command: Command, decision: Decision, snapshot: bytes, stored: bytes
) -> SessionView:
    """The view the next command of the same session finds once `decision` is applied."""
    match decision:
        case Put():
            return SessionView(
                version=decision.version,
                snapshot=snapshot,
                org_id=command.org_id,
                expires_ms=decision.expires_ms,
                applied=view.applied | {command.command_id},
                applied_known=view.applied_known,
                stored=stored,
            )
        case Delete():
            return SessionView(
                version=decision.version,
                org_id=view.org_id,
                applied=view.applied | {command.command_id},
                applied_known=view.applied_known,
            )
        case _:
            return view
