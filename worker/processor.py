"""Turns a batch of command records into outcomes: decide in Python, apply in Redis, in order.

In the common case nothing is read: creates are applied blind (guarded on "no such session"),
sessions this worker changed recently are decided on what it remembers of them (a bounded
cache, guarded the same way), and only the other sessions touched by an update or delete, or
whose guard failed, are read first (one round trip for them all). Commands of one session are
decided in partition order, each on the state the previous one leaves, and Redis applies them
in that order or not at all. Sessions are independent of each other, so each chunk of them is
sent to Redis as soon as it is decided, and Redis applies it while the next is decided.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from contracts.commands import Command, CreateSession
from contracts.decoding import Decoded, Undecodable, decode_record
from contracts.events import CommandRejected
from contracts.rejection import Rejection
from worker.constants import SESSION_CACHE_SIZE
from worker.errors import ConcurrentChangeError
from worker.eventing import (
    command_event_id,
    encode_snapshot,
    expired_event,
    rejection_event,
    rejection_event_id,
    session_event,
)
from worker.outcome import Outcome, Record, Result
from worker.snapshot_codec import pack_snapshot, unpack_snapshot
from worker.store import (
    Applied,
    Op,
    OpResult,
    ReadRequest,
    Replayed,
    SessionOps,
    SessionStore,
    outbox_field,
)

if TYPE_CHECKING:  # imported only when tracing is configured (worker.telemetry)
    from worker.tracing import Tracing
from worker.transitions import (
    Decision,
    Delete,
    Duplicate,
    Put,
    Reject,
    SessionView,
    Unchanged,
    after,
    decide,
)

# A session that changes under us this many times in one batch is contended by another owner;
# the batch is retried as a whole (replays make that safe) after a back-off.
MAX_ATTEMPTS = 5
# Sessions planned before their operations are sent: Redis runs one chunk while the processor
# plans the next, instead of the two taking turns over the whole batch.
APPLY_CHUNK_SESSIONS = 32

_rejection_decoder = msgspec.json.Decoder(CommandRejected)


@dataclass(frozen=True, slots=True)
class Limits:
    max_record_bytes: int
    expired_retention_ms: int
    tombstone_ttl_ms: int


class _Planned(msgspec.Struct, frozen=True, gc=False):
    index: int
    op: Op | None  # None: settled without Redis (a duplicate)
    outcome: Outcome


class _Known(msgspec.Struct, frozen=True, gc=False):
    """What the processor remembers of a session it changed or read: enough to decide the
    next command without reading Redis. A guess: Redis checks every operation decided on it
    (version, live record, and whether its commandId was applied before)."""

    version: int
    org_id: str | None
    expires_ms: int | None
    stored: bytes | None  # the live snapshot as stored (compressed); None: no live session

    def view(self) -> SessionView:
        return SessionView(
            version=self.version,
            snapshot=None if self.stored is None else unpack_snapshot(self.stored),
            org_id=self.org_id,
            expires_ms=self.expires_ms,
            applied_known=False,
            stored=self.stored,
        )


class BatchProcessor:
    def __init__(
        self,
        store: SessionStore,
        limits: Limits,
        clock: Callable[[], int],
        *,
        cache_size: int = SESSION_CACHE_SIZE,
        tracing: "Tracing | None" = None,
    ) -> None:
        self._store = store
        self._tracing = tracing
        self._limits = limits
        self._clock = clock
        # Sessions by id, least recently changed first; at most `cache_size` (0: none). An
        # OrderedDict: a plain dict's oldest key is found by skipping the slots of every key
        # removed before it, which made each eviction slower as the cache turned over.
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0  # sessions decided on the cache instead of a read
        self.cache_stale = 0  # of those, guesses Redis refused (then read and decided again)

    async def process(
        self, records: Sequence[Record], traces: Sequence[str] | None = None
    ) -> list[Outcome]:
        """Outcomes in the order of `records`; Redis holds every change before this returns.
        `traces`: per record, the `traceparent` a session's expiry links to (tracing on)."""
        now = self._clock()
        outcomes: list[Outcome | None] = [None] * len(records)
        commands: dict[int, Command] = {}
        todo: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            decoded = decode_record(record.key, record.value, self._limits.max_record_bytes)
            if isinstance(decoded, Undecodable):
                outcomes[i] = _undecodable(record, decoded)
            else:
                assert isinstance(decoded, Decoded)  # noqa: S101 - narrows for mypy
                commands[i] = decoded.command
                todo.setdefault(decoded.command.session_id, []).append(i)

        for attempt in range(MAX_ATTEMPTS):
            if not todo:
                break
            views = await self._views(records, commands, todo, outcomes, guess=attempt == 0)
            plans: dict[str, tuple[list[_Planned], SessionView]] = {}
            sent: list[asyncio.Task[list[list[OpResult]]]] = []
            groups: list[SessionOps] = []
            order: list[str] = []  # sessions with operations, in the order sent
            for sid, indices in todo.items():
                plans[sid] = self._plan(
                    records, commands, indices, views[sid], outcomes, now, traces
                )
                ops = [p.op for p in plans[sid][0] if p.op is not None]
                if ops:
                    groups.append(SessionOps(sid, ops))
                    order.append(sid)
                if len(groups) == APPLY_CHUNK_SESSIONS:
                    sent.append(await self._send(groups))
                    groups = []
            if groups:
                sent.append(await self._send(groups))
            results = dict(zip(order, await _applied(sent), strict=True))
            todo = {}
            for sid, (plan, final) in plans.items():
                result = results.get(sid, [])
                rest = _settle(plan, result, records, commands, outcomes)
                if rest:
                    todo[sid] = rest
                    if not views[sid].applied_known:
                        self.cache_stale += 1
                if rest or any(not isinstance(r, Applied) for r in result):
                    self._known.pop(sid, None)  # Redis holds something else: read it next time
                else:
                    self._remember(sid, final)
        if todo:
            raise ConcurrentChangeError(f"{len(todo)} sessions kept changing during the batch")
        return [o for o in outcomes if o is not None]

    async def _send(self, groups: list[SessionOps]) -> "asyncio.Task[list[list[OpResult]]]":
        """Starts applying `groups` and lets it reach Redis before returning, so Redis runs
        one chunk of the batch while the processor plans the next."""
        task = asyncio.ensure_future(self._apply(groups))
        await asyncio.sleep(0)
        return task

    async def _apply(self, groups: list[SessionOps]) -> list[list[OpResult]]:
        if self._tracing is None:
            return await self._store.apply(groups)
        with self._tracing.redis("apply", len(groups)):
            return await self._store.apply(groups)

    async def _views(
        self,
        records: Sequence[Record],
        commands: dict[int, Command],
        todo: dict[str, list[int]],
        outcomes: list[Outcome | None],
        *,
        guess: bool,
    ) -> dict[str, SessionView]:
        """The state each session's next command finds; replays found on the way are settled.
        With `guess`, sessions are read only when neither the cache nor a create answers."""
        views: dict[str, SessionView] = {}
        requests: list[ReadRequest] = []
        for sid, indices in todo.items():
            known = self._known.get(sid) if guess else None
            if known is not None:
                views[sid] = known.view()
                self.cache_hits += 1
            elif guess and isinstance(commands[indices[0]], CreateSession):
                # Most sessions start in this batch: guess "new" and let Redis' guard check it.
                views[sid] = SessionView()
            else:
                requests.append(
                    ReadRequest(
                        sid,
                        [outbox_field(records[i].partition, records[i].offset) for i in indices],
                        [commands[i].command_id for i in indices],
                    )
                )
        if self._tracing is not None and requests:
            with self._tracing.redis("read", len(requests)):
                states = await self._store.read(requests)
        else:
            states = await self._store.read(requests)
        for request, state in zip(requests, states, strict=True):
            views[request.session_id] = SessionView(
                version=state.version,
                snapshot=state.snapshot,
                org_id=state.org_id,
                expires_ms=state.expires_ms,
                expired_snapshot=state.expired_snapshot,
                applied=state.applied,
                stored=state.stored,
            )
            remaining = []
            for i, replay in zip(todo[request.session_id], state.replays, strict=True):
                if replay is None:
                    remaining.append(i)
                else:
                    outcomes[i] = _replayed(records[i], commands[i], replay)
            todo[request.session_id] = remaining
        return views

    def _plan(
        self,
        records: Sequence[Record],
        commands: dict[int, Command],
        indices: list[int],
        view: SessionView,
        outcomes: list[Outcome | None],
        now: int,
        traces: Sequence[str] | None,
    ) -> tuple[list[_Planned], SessionView]:
        """The session's operations, and the view they leave once all are applied."""
        plan = []
        for i in indices:
            if outcomes[i] is not None:
                continue  # settled as a replay while reading
            command = commands[i]
            decision = decide(command, view, now)
            trace = traces[i] if traces is not None else ""
            op, outcome, snapshot, stored = self._op(
                records[i], command, view, decision, now, trace
            )
            plan.append(_Planned(i, op, outcome))
            view = after(view, command, decision, snapshot, stored)
        return plan, view

    def _remember(self, session_id: str, view: SessionView) -> None:
        """Keeps what Redis now holds of a session, as the most recent entry."""
        if (
            self._cache_size <= 0
            or view.version == 0  # nothing worth keeping
            or view.expired_snapshot is not None  # an unannounced expiry: read it next time
            or (view.live and view.stored is None)  # no stored form to keep
        ):
            self._known.pop(session_id, None)
            return
        self._known[session_id] = _Known(view.version, view.org_id, view.expires_ms, view.stored)
        self._known.move_to_end(session_id)
        if len(self._known) > self._cache_size:
            self._known.popitem(last=False)

    def _op(
        self,
        record: Record,
        command: Command,
        view: SessionView,
        decision: Decision,
        now: int,
        trace: str,
    ) -> tuple[Op | None, Outcome, bytes, bytes]:
        """The guarded Redis step for a decision, the outcome it will have, and the snapshot
        the session's next command sees (and its stored form)."""
        sid, cid, org = command.session_id, command.command_id, command.org_id
        check = not view.applied_known
        field = outbox_field(record.partition, record.offset)
        transition_id = command_event_id(sid, cid)

        def transition(event_type: str, version: int, snapshot: bytes) -> bytes:
            return session_event(
                event_type=event_type,
                event_id=transition_id,
                timestamp_ms=now,
                org_id=org,
                session_id=sid,
                version=version,
                snapshot=snapshot,
                command_id=cid,
            )

        def outcome(
            result: Result,
            events: tuple[bytes, ...],
            event_type: str | None = None,
            event_id: str | None = None,
            rejection: Rejection | None = None,
        ) -> Outcome:
            return Outcome(
                record=record,
                result=result,
                events=events,
                event_key=sid.encode(),
                event_type=event_type,
                event_id=event_id,
                rejection=rejection,
                command_id=cid,
                org_id=org,
                session_id=sid,
                outbox=(sid, field) if events else None,
                command_type=_type_of(command),
            )

        match decision:
            case Put():
                snapshot = encode_snapshot(decision.session)
                stored = pack_snapshot(snapshot)  # once, for the live record and its copy
                events: tuple[bytes, ...] = (
                    transition(decision.event_type, decision.version, snapshot),
                )
                if decision.announce_expiry:
                    assert view.org_id is not None  # noqa: S101 - an expired session had one
                    assert view.expires_ms is not None  # noqa: S101
                    assert view.expired_snapshot is not None  # noqa: S101
                    expired = expired_event(
                        session_id=sid,
                        org_id=view.org_id,
                        version=decision.version - 1,
                        expires_ms=view.expires_ms,
                        snapshot=view.expired_snapshot,
                    )
                    events = (expired, *events)
                op = Op(
                    kind="put",
                    outbox_field=field,
                    expected_version=view.version,
                    expected_live=view.live,
                    event=_joined(events),
                    stored=stored,
                    expires_ms=decision.expires_ms,
                    new_version=decision.version,
                    org_id=org,
                    status=decision.session.status,
                    command_id=cid,
                    record_expire_at_ms=decision.expires_ms + self._limits.expired_retention_ms,
                    check_applied=check,
                    trace=trace,
                )
                done = outcome("applied", events, decision.event_type, transition_id)
                return op, done, snapshot, stored
            case Delete():
                assert view.snapshot is not None  # noqa: S101 - only a live session is deleted
                events = (transition(decision.event_type, decision.version, view.snapshot),)
                op = Op(
                    kind="delete",
                    outbox_field=field,
                    expected_version=view.version,
                    expected_live=True,
                    event=events[0],
                    new_version=decision.version,
                    command_id=cid,
                    record_expire_at_ms=now + self._limits.tombstone_ttl_ms,
                    check_applied=check,
                )
                done = outcome("applied", events, decision.event_type, transition_id)
                return op, done, b"", b""
            case Unchanged():
                assert view.snapshot is not None  # noqa: S101 - only a live session is unchanged
                events = (transition(decision.event_type, view.version, view.snapshot),)
                op = Op(
                    kind="keep",
                    outbox_field=field,
                    expected_version=view.version,
                    expected_live=True,
                    event=events[0],
                    command_id=cid,
                    check_applied=check,
                )
                done = outcome("applied", events, decision.event_type, transition_id)
                return op, done, b"", b""
            case Reject():
                rejection_id = rejection_event_id(record.topic, record.partition, record.offset)
                event = rejection_event(
                    event_id=rejection_id,
                    timestamp_ms=now,
                    rejection=decision.rejection,
                    command_id=cid,
                    org_id=org,
                    session_id=sid,
                )
                op = Op(
                    kind="keep",
                    outbox_field=field,
                    expected_version=view.version,
                    expected_live=view.live,
                    event=event,
                    command_id=cid,
                    check_applied=check,
                )
                rejected = outcome(
                    "rejected", (event,), "command.rejected", rejection_id, decision.rejection
                )
                return op, rejected, b"", b""
            case Duplicate():
                return None, outcome("duplicate", ()), b"", b""


async def _applied(sent: list["asyncio.Task[list[list[OpResult]]]"]) -> list[list[OpResult]]:
    """Every chunk's results, in the order sent. Each chunk runs to its end first, so none is
    left running when one has failed (the batch is then retried; its scripts are guarded)."""
    results: list[list[OpResult]] = []
    for reply in await asyncio.gather(*sent, return_exceptions=True):
        if isinstance(reply, BaseException):
            raise reply
        results += reply
    return results


def _joined(events: tuple[bytes, ...]) -> bytes:
    """One outbox entry per record. Compact JSON never holds a raw newline, so it separates."""
    return b"\n".join(events)


def _settle(
    plan: list[_Planned],
    results: list[OpResult],
    records: Sequence[Record],
    commands: dict[int, Command],
    outcomes: list[Outcome | None],
) -> list[int]:
    """Records the outcomes Redis confirmed; returns the records to decide again, in order."""
    pending = iter(results)
    for position, planned in enumerate(plan):
        if planned.op is None:
            outcomes[planned.index] = planned.outcome
            continue
        result = next(pending, None)
        if isinstance(result, Applied):
            outcomes[planned.index] = planned.outcome
            continue
        if isinstance(result, Replayed):
            # Recorded before (a crash or a rebalance): its original events, and what follows
            # was decided on a guess of its outcome, so it is decided again.
            i = planned.index
            outcomes[i] = _replayed(records[i], commands[i], result.event)
            return [p.index for p in plan[position + 1 :]]
        # Stale, or not run because an earlier operation was: decide again from here.
        return [p.index for p in plan[position:]]
    return []


def _replayed(record: Record, command: Command, recorded: bytes) -> Outcome:
    """The outcome of a record processed before (crash or rebalance): the same events again."""
    events = tuple(recorded.split(b"\n"))
    head = _head_decoder.decode(events[-1])
    rejection = None
    if head.type == "command.rejected":
        error = _rejection_decoder.decode(events[-1]).error
        rejection = Rejection(error.code, error.message, error.path or None)
    sid = command.session_id
    return Outcome(
        record=record,
        result="replayed",
        events=events,
        event_key=sid.encode(),
        event_type=head.type,
        event_id=head.event_id,
        rejection=rejection,
        command_id=command.command_id,
        org_id=command.org_id,
        session_id=sid,
        outbox=(sid, outbox_field(record.partition, record.offset)),
        command_type=_type_of(command),
    )


def _type_of(command: Command) -> str:
    return str(command.__struct_config__.tag)


class _EventHead(msgspec.Struct, rename="camel"):
    type: str
    event_id: str


_head_decoder = msgspec.json.Decoder(_EventHead)


def _undecodable(record: Record, decoded: Undecodable) -> Outcome:
    ids = decoded.ids
    event_id = rejection_event_id(record.topic, record.partition, record.offset)
    event = rejection_event(
        event_id=event_id,
        # The record's own time keeps the event identical when the record is processed again.
        timestamp_ms=record.timestamp,
        rejection=decoded.rejection,
        command_id=ids.command_id,
        org_id=ids.org_id,
        session_id=ids.session_id,
    )
    key = ids.session_id.encode() if ids.session_id else record.key
    return Outcome(
        record=record,
        result="rejected",
        events=(event,),
        event_key=key,
        event_type="command.rejected",
        event_id=event_id,
        rejection=decoded.rejection,
        command_id=ids.command_id,
        org_id=ids.org_id,
        session_id=ids.session_id,
    )
