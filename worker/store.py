"""Session state in Redis: guarded, atomic, one round trip per batch.

Decisions are made in Python (see `transitions`); Redis applies them with a compare-and-set on
the state each was decided on, so a stale decision (another owner after a rebalance, the expiry
sweeper) never lands. Every applied operation leaves its event in a per-session outbox keyed by
the command's record offset; a replay of that record returns the same event instead of applying
twice. Outbox entries are removed after their offsets are committed.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib.resources import files
from typing import Literal, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker.errors import StoreUnavailableError
from worker.keys import KeySpace, SessionKeys, bucket_of
from worker.redis_client import REDIS_TIMEOUT_S, RedisClient
from worker.snapshot_codec import unpack_snapshot

OpKind = Literal["put", "delete", "keep"]  # keep: record the answer, change no state
T = TypeVar("T")
SCRIPTS = ("read", "apply", "forget", "claim_expired", "finish_expired")
PRELUDE = "record"  # the session record's functions, prepended to every script
Arg = bytes | str | int
# A batch's runs that failed are sent again at most this often in the same round trip, after
# RETRY_PAUSE_S, doubling, when a node was unreachable (a stale connection, a failover).
RUN_ROUNDS = 4
RETRY_PAUSE_S = 0.05
ROUND_TRIP_TIMEOUT_S = REDIS_TIMEOUT_S  # a whole pipeline's replies, not each one
# Sessions per read, apply or forget script run. One run per session cost more in Redis (a
# call's own overhead) and in redis-py (a command and a reply each) than the work; a run of 64
# creates keeps Redis busy ~1 ms, so other clients still get their turn.
SESSIONS_PER_RUN = 64
# Replies that mean "not run, or not known to have run; try again soon" rather than a fault.
_TRANSIENT = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    MovedError,
    AskError,
    SlotNotCoveredError,
    OSError,
)


class _Call(msgspec.Struct, frozen=True, gc=False):
    """One script run: on a cluster it goes to the node of its keys (they share a hash tag)."""

    script: str  # a name of SCRIPTS
    keys: Sequence[str]
    args: Sequence[Arg]


def script_source(name: str) -> str:
    """A script as sent to Redis: the shared record functions, then the script."""
    lua = files("worker") / "lua"
    return "".join((lua / f"{part}.lua").read_text(encoding="utf-8") for part in (PRELUDE, name))


class ReadRequest(msgspec.Struct, frozen=True, gc=False):
    """One session and the records of this batch that concern it."""

    session_id: str
    outbox_fields: list[str]  # one per record, to find replays
    command_ids: list[str]  # one per record, to find commands applied before


class StoredState(msgspec.Struct, frozen=True, gc=False):
    """One session as Redis had it when read."""

    version: int  # 0: never existed, or its tombstone is gone
    snapshot: bytes | None  # the live record; None when missing or expired
    org_id: str | None
    expires_ms: int | None
    status: str | None  # active | completed | deleted | expired; None: nothing known
    stored: bytes | None  # the live record as stored (compressed), for the processor's cache
    expired_snapshot: bytes | None  # TTL ran out, expiry not announced yet: its last snapshot
    applied: frozenset[str]  # those of the asked commandIds applied to this session before
    replays: list[bytes | None]  # per asked record: the event recorded for it, if any


class Op(msgspec.Struct, frozen=True, gc=False):
    """A decided change (or a decided rejection) for one record of one session."""

    kind: OpKind
    outbox_field: str
    expected_version: int
    expected_live: bool
    event: bytes
    stored: bytes = b""  # put: the snapshot as stored (compressed once, see pack_snapshot)
    expires_ms: int = 0
    new_version: int = 0
    org_id: str = ""
    status: str = ""
    command_id: str = ""  # kept in the record as applied (put and delete)
    record_expire_at_ms: int = 0
    # Decided on a view that did not know the session's applied commandIds (the processor's
    # cache): the script treats the operation as stale if `command_id` was applied before.
    check_applied: bool = False
    # put: the W3C traceparent the session's expiry links to (tracing on); "": none recorded.
    trace: str = ""

    def packed(self) -> tuple[str, bytes, bytes]:
        """The script's three arguments for this operation: the small fields in one string
        (ids are printable ASCII without \\x1f), the event, the stored snapshot.
        redis-py encodes every argument on its own in Python: 3 per operation instead of 13."""
        head = (
            f"{self.kind}\x1f{self.outbox_field}\x1f{self.expected_version}\x1f"
            f"{int(self.expected_live)}\x1f{self.expires_ms}\x1f{self.new_version}\x1f"
            f"{self.org_id}\x1f{self.status}\x1f{self.command_id}\x1f{self.record_expire_at_ms}"
            f"\x1f{int(self.check_applied)}\x1f{self.trace}"
        )
        return head, self.event, self.stored


class Applied(msgspec.Struct, frozen=True, gc=False):
    pass


class Replayed(msgspec.Struct, frozen=True, gc=False):
    event: bytes


class Stale(msgspec.Struct, frozen=True, gc=False):
    version: int
    live: bool


OpResult = Applied | Replayed | Stale


class ExpiredSession(msgspec.Struct, frozen=True, gc=False):
    """A session whose TTL ran out, claimed for announcing."""

    session_id: str
    version: int  # before the expiry; the announcement is version + 1
    org_id: str
    expires_ms: int
    snapshot: bytes
    trace: str = ""  # traceparent of the command that last set the TTL, when one was recorded


class SessionOps(msgspec.Struct, frozen=True, gc=False):
    session_id: str
    ops: list[Op]


def outbox_field(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


class SessionStore:
    def __init__(self, client: RedisClient, keys: KeySpace, outbox_ttl_ms: int) -> None:
        self._redis = client
        self._cluster = isinstance(client, aioredis.RedisCluster)
        self._keys = keys
        self._outbox_ttl_ms = outbox_ttl_ms
        self._sources = {name: script_source(name) for name in SCRIPTS}
        self._shas: dict[str, str] | None = None  # once loaded
        # (session id, outbox field) of committed records, removed with the next round trip.
        self._committed: list[tuple[str, str]] = []

    def keys_of(self, session_id: str) -> SessionKeys:
        return self._keys.session(session_id)

    async def _load_scripts(self) -> dict[str, str]:
        # On a cluster, SCRIPT LOAD goes to every primary (redis-py's default for it).
        return {
            name: str(await self._redis.script_load(source))
            for name, source in self._sources.items()
        }

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise StoreUnavailableError(f"Redis: {exc}") from exc

    def _runs(self, session_ids: Sequence[str]) -> list[list[int]]:
        """Positions in `session_ids`, split into script runs of up to SESSIONS_PER_RUN (on a
        cluster, grouped by hash tag as well: a run's keys must be in one slot)."""
        runs: dict[int, list[list[int]]] = {}
        for i, sid in enumerate(session_ids):
            chunks = runs.setdefault(bucket_of(sid) if self._cluster else 0, [[]])
            if len(chunks[-1]) == SESSIONS_PER_RUN:
                chunks.append([])
            chunks[-1].append(i)
        return [run for chunks in runs.values() for run in chunks]

    def _calls(
        self,
        script: str,
        session_ids: Sequence[str],
        head: Sequence[Arg],
        part: Callable[[int], tuple[Sequence[str], Sequence[Arg]]],
    ) -> tuple[list[list[int]], list[_Call]]:
        """Runs of `script` over the sessions (see `_runs`), and the positions each run covers.
        A run's arguments are `head`, then each session's; `part(i)` gives the keys and
        arguments of the i-th session."""
        positions = self._runs(session_ids)
        calls = []
        for run in positions:
            keys: list[str] = []
            args: list[Arg] = list(head)
            for i in run:
                session_keys, session_args = part(i)
                keys += session_keys
                args += session_args
            calls.append(_Call(script, keys, args))
        return positions, calls

    def _forget_calls(self, entries: Sequence[tuple[str, str]]) -> list[_Call]:
        """Script runs removing committed outbox entries, (session id, field) each."""
        by_session: dict[str, list[str]] = {}
        for sid, field_name in entries:
            by_session.setdefault(sid, []).append(field_name)
        sids = list(by_session)

        def part(i: int) -> tuple[Sequence[str], Sequence[Arg]]:
            fields = by_session[sids[i]]
            return (self._keys.outbox(sids[i]),), (len(fields), *fields)

        return self._calls("forget", sids, (), part)[1]

    async def _per_session(
        self, positions: Sequence[Sequence[int]], calls: Sequence[_Call], sessions: int
    ) -> list[object]:
        """Runs the calls of `_calls` in one round trip. Returns each of the `sessions`
        sessions' replies, in the order they were given to `_calls`."""
        replies: list[object] = [None] * sessions
        for run, reply in zip(positions, await self._run(calls), strict=True):
            for i, item in zip(run, _items(reply), strict=True):
                replies[i] = item
        return replies

    async def read(self, requests: Sequence[ReadRequest]) -> list[StoredState]:
        """The state of each requested session, all in one round trip."""
        if not requests:
            return []

        def part(i: int) -> tuple[Sequence[str], Sequence[Arg]]:
            req, k = requests[i], self._keys.session(requests[i].session_id)
            return (
                (k.live, k.record, k.outbox, k.meta, k.archive),
                (len(req.outbox_fields), *req.outbox_fields, *req.command_ids),
            )

        sids = [r.session_id for r in requests]
        replies = await self._per_session(*self._calls("read", sids, (), part), len(requests))
        return [_state(reply, req) for reply, req in zip(replies, requests, strict=True)]

    async def apply(self, groups: Sequence[SessionOps]) -> list[list[OpResult]]:
        """Runs each session's operations in order, all sessions in one round trip."""
        if not groups:
            return []
        replies = await self._per_session(*self.apply_calls(groups), len(groups))
        return [[_result(item) for item in _items(reply)] for reply in replies]

    def apply_calls(self, groups: Sequence[SessionOps]) -> tuple[list[list[int]], list[_Call]]:
        """The script runs `apply` sends for `groups` (see `_calls`); the benchmark packs them
        to time this step without Redis."""

        def part(i: int) -> tuple[Sequence[str], Sequence[Arg]]:
            group, k = groups[i], self._keys.session(groups[i].session_id)
            return (
                (k.live, k.record, k.outbox, k.index, k.meta, k.archive),
                (group.session_id, len(group.ops), *[a for op in group.ops for a in op.packed()]),
            )

        return self._calls("apply", [g.session_id for g in groups], (self._outbox_ttl_ms,), part)

    async def claim_expired(
        self, buckets: Sequence[int], now_ms: int, limit: int, lease_ms: int
    ) -> list[ExpiredSession]:
        """Sessions whose TTL ran out, claimed for `lease_ms`, all buckets in one round trip."""
        replies = await self._run(
            [
                _Call(
                    "claim_expired",
                    (self._keys.bucket_index(b),),
                    (now_ms, limit, lease_ms, self._keys.bucket_base(b)),
                )
                for b in buckets
            ]
        )
        return [
            ExpiredSession(
                session_id=_text(sid) or "",
                version=_int(version),
                org_id=_text(org) or "",
                expires_ms=_int(expires),
                snapshot=unpack_snapshot(bytes(snapshot)),  # type: ignore[call-overload]
                trace=_text(trace) or "",
            )
            for reply in replies
            for sid, version, org, expires, snapshot, trace in map(_items, _items(reply))
        ]

    async def finish_expired(
        self, announced: Sequence[ExpiredSession], tombstone_until_ms: int
    ) -> int:
        """Turns announced sessions into tombstones; returns how many were still as claimed."""
        if not announced:
            return 0

        def part(i: int) -> tuple[Sequence[str], Sequence[Arg]]:
            e, k = announced[i], self._keys.session(announced[i].session_id)
            return (k.live, k.record, k.index, k.meta, k.archive), (e.session_id, e.version)

        sids = [e.session_id for e in announced]
        calls = self._calls("finish_expired", sids, (tombstone_until_ms,), part)[1]
        return sum(_int(reply) for reply in await self._run(calls))

    def committed(self, entries: Iterable[tuple[str, str]]) -> None:
        """Outbox entries whose offsets are committed; removed with the next round trip."""
        self._committed.extend(entries)

    async def flush(self) -> None:
        """Removes committed outbox entries now (at stop, or when the loop is idle)."""
        if self._committed:
            await self._run([])

    async def _run(self, calls: Sequence[_Call]) -> list[object]:
        """One pipeline: pending outbox clean-up first, then the batch's own script runs.

        Each run's reply is kept as it comes; only runs that failed are sent again, in a
        pipeline of their own (up to `RUN_ROUNDS` in all), so a run that succeeded never runs
        twice. This matters on a cluster, where one node of several can fail a batch's runs:
        - NOSCRIPT: the node lost its script cache (restart, failover). The run did nothing;
          it is sent again as EVAL with the script's text, which also caches it there again.
        - a connection error or timeout on one node (a restarted node's stale connection, a
          failover in progress): sent again after a short pause, on a fresh connection and,
          if it moved, to the new owner of the slot. Such a run may have happened already;
          every script is guarded, so running it again is safe, as with any retry.
        Any other error, or errors left after the last round, fail the batch (to be retried).
        """
        if self._shas is None:
            self._shas = await self._guard(self._load_scripts())
        shas = self._shas
        # Taken, not shared: entries committed while this round trip is away (the command
        # loop and the expiry sweeper share the store) wait for the next one.
        cleanup, self._committed = self._committed, []
        forget = self._forget_calls(cleanup)
        replies: list[object] = [None] * len(calls)
        pending = list(range(len(calls)))
        as_eval: set[int] = set()  # runs whose node answered NOSCRIPT
        for round_no in range(RUN_ROUNDS):
            pipe = self._redis.pipeline(transaction=False)
            head = forget if round_no == 0 else []  # the clean-up goes with the first round
            for call in head:
                _queue(pipe, "EVALSHA", shas[call.script], call)
            for i in pending:
                call = calls[i]
                if i in as_eval:
                    _queue(pipe, "EVAL", self._sources[call.script], call)
                else:
                    _queue(pipe, "EVALSHA", shas[call.script], call)
            try:
                results = list(await self._guard(pipe.execute(raise_on_error=False)))
            except StoreUnavailableError:
                if round_no == 0:
                    self._committed = cleanup + self._committed  # for a later round trip
                raise
            if head:
                done = results[: len(head)]
                results = results[len(head) :]
                if any(isinstance(r, Exception) for r in done):
                    # Kept, and removed with a later round trip (HDEL is idempotent).
                    self._committed = cleanup + self._committed
                    if any(isinstance(r, NoScriptError) for r in done):
                        self._shas = None  # the node lost its scripts: load them again
            failed: list[int] = []
            transient = False
            for i, reply in zip(pending, results, strict=True):
                replies[i] = reply
                if isinstance(reply, NoScriptError):
                    as_eval.add(i)
                    failed.append(i)
                elif isinstance(reply, _TRANSIENT):
                    failed.append(i)
                    transient = True
                elif isinstance(reply, Exception):
                    _raise_errors([reply])
            if not failed:
                return replies
            pending = failed
            if transient:
                await asyncio.sleep(RETRY_PAUSE_S * 2**round_no)
        _raise_errors([replies[i] for i in pending])
        raise AssertionError("unreachable")

    @staticmethod
    async def _guard(awaitable: Awaitable[T]) -> T:
        """One deadline per round trip (its client may have none per reply, see
        `connect_redis`): a Redis that stops answering fails the batch, to be retried. A
        round trip cut short closes its connection (redis-py does on any interruption), so no
        late reply is read as another's."""
        try:
            async with asyncio.timeout(ROUND_TRIP_TIMEOUT_S):
                return await awaitable
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"Redis: no answer within {ROUND_TRIP_TIMEOUT_S} s"
            ) from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"Redis: {exc}") from exc


def _queue(pipe: Pipeline | ClusterPipeline, command: str, script: str, call: _Call) -> None:
    # execute_command, not evalsha(): redis-py blocks that method on cluster pipelines, but
    # routes EVAL/EVALSHA by their keys (all in one slot here).
    pipe.execute_command(command, script, len(call.keys), *call.keys, *call.args)


def _raise_errors(replies: Sequence[object]) -> None:
    """Fails the batch (to be retried) on the first command that failed."""
    for reply in replies:
        if isinstance(reply, RedisError | OSError):
            raise StoreUnavailableError(f"Redis: {reply}") from reply
        if isinstance(reply, Exception):
            raise reply


def _int(value: object) -> int:
    if isinstance(value, bytes | int | str):
        return int(value)
    raise TypeError(f"expected an integer from Redis, got {type(value).__name__}")


def _text(value: object) -> str | None:
    return value.decode() if isinstance(value, bytes) else None


def _items(reply: object) -> list[object]:
    if not isinstance(reply, list):
        raise TypeError(f"unexpected script reply {type(reply).__name__}")
    return reply


def _state(reply: object, request: ReadRequest) -> StoredState:
    live, version, org, expires, status, expired, marks, replays = _items(reply)
    return StoredState(
        version=_int(version),
        snapshot=unpack_snapshot(live) if isinstance(live, bytes) else None,
        org_id=_text(org),
        expires_ms=int(expires) if isinstance(expires, bytes) else None,
        status=_text(status),
        stored=live if isinstance(live, bytes) else None,
        expired_snapshot=unpack_snapshot(expired) if isinstance(expired, bytes) else None,
        applied=frozenset(
            c for c, m in zip(request.command_ids, _items(marks), strict=True) if m is not None
        ),
        replays=[r if isinstance(r, bytes) else None for r in _items(replays)],
    )


def _result(item: object) -> OpResult:
    if not isinstance(item, list):
        return Applied()
    if item[0] == 2:
        return Replayed(bytes(item[1]))
    return Stale(version=int(item[1]), live=bool(item[2]))
