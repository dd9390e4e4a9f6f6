"""Redis memory per live session: measured through the worker, and for candidate layouts.

`through_worker` runs the real worker over a burst of creates on a key prefix of its own and
divides the growth of `INFO memory` `used_memory` by the number of sessions: every key the worker
keeps for a session is in it (live STRING, record STRING, the bucket ZSETs' entries, any outbox
left).

`layouts` writes the same snapshots (built by the worker's own code) in several layouts directly
with pipelines, to measure what a layout change would save before anyone changes `store.py`.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import redis.asyncio as aioredis
import zstandard
from redis.typing import EncodableT, FieldT

from bench.commands import CREATES_ONLY, CommandStream
from bench.kafkaio import make_topics, preload
from contracts.commands import CreateSession
from contracts.decoding import Decoded, decode_record
from worker.app import Worker
from worker.clock import now_ms
from worker.constants import EXPIRED_RETENTION_MS
from worker.eventing import encode_snapshot
from worker.keys import bucket_of
from worker.settings import Settings
from worker.snapshot import new_session
from worker.snapshot_codec import ZSTD_LEVEL, pack_snapshot, pack_snapshot_as_previous_release


async def used_memory(client: aioredis.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def keys_under(client: aioredis.Redis, prefix: str) -> dict[str, int]:
    """Keys whose name starts with `prefix:`, counted by kind (s, m, o, x, a...)."""
    kinds: dict[str, int] = {}
    async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        kind = key.split(b":")[2].decode() if key.count(b":") >= 2 else "?"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


async def delete_under(client: aioredis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)


@dataclass
class WorkerMemory:
    label: str
    sessions: int
    bytes_per_session: float
    keys_per_session: float
    keys_by_kind: dict[str, int]
    record_encoding: str
    index_encoding: str
    snapshot_bytes: float  # average live STRING value size
    usage_by_kind: dict[str, float] = field(default_factory=dict)  # MEMORY USAGE averages


async def through_worker(
    settings: Settings, client: aioredis.Redis, sessions: int, *, reference: bool, seed: int
) -> WorkerMemory:
    """Creates `sessions` sessions with the real (in-process) worker; measures what they cost."""
    await make_topics(settings, partitions=12)
    stream = CommandStream(seed, mix=CREATES_ONLY, reference=reference, tag=settings.key_prefix)
    await preload(settings.kafka, settings.commands_topic, stream.take(sessions))
    before = await used_memory(client)
    worker = Worker(settings, handle_signals=False)
    await asyncio.wait_for(worker.run(burst=True), timeout=600)
    await asyncio.sleep(0.2)
    after = await used_memory(client)
    kinds = await keys_under(client, settings.key_prefix)
    usage: dict[str, list[int]] = {}
    encodings: dict[str, str] = {}
    sampled = 0
    async for key in client.scan_iter(match=f"{settings.key_prefix}:*", count=1000):
        kind = key.split(b":")[2].decode()
        if len(usage.setdefault(kind, [])) < 200:
            usage[kind].append(int(await client.memory_usage(key, samples=0) or 0))
            if kind not in encodings:
                encodings[kind] = (await client.object("encoding", key)).decode()
            sampled += 1
        if sampled >= 600:
            break
    sizes = []
    async for key in client.scan_iter(match=f"{settings.key_prefix}:*:s:*", count=1000):
        sizes.append(int(await client.strlen(key)))
        if len(sizes) >= 200:
            break
    return WorkerMemory(
        label="reference payload (tests/factories)" if reference else "realistic mix",
        sessions=sessions,
        bytes_per_session=(after - before) / sessions,
        keys_per_session=sum(kinds.values()) / sessions,
        keys_by_kind=kinds,
        record_encoding=encodings.get("r", encodings.get("m", "?")),
        index_encoding=encodings.get("x", "?"),
        snapshot_bytes=sum(sizes) / max(1, len(sizes)),
        usage_by_kind={k: sum(v) / len(v) for k, v in usage.items() if v},
    )


def snapshots(count: int, seed: int, *, reference: bool = False) -> list[tuple[str, str, bytes]]:
    """(session id, command id, encoded snapshot) built by the worker's own code."""
    stream = CommandStream(seed, mix=CREATES_ONLY, reference=reference, tag="lab")
    now = now_ms()
    out = []
    for command in stream.take(count):
        decoded = decode_record(command.key, command.value, 1 << 20)
        assert isinstance(decoded, Decoded)  # noqa: S101 - the stream is valid
        c = decoded.command
        assert isinstance(c, CreateSession)  # noqa: S101 - creates only
        session, _ = new_session(c.session_id, c.org_id, c.payload, now)
        out.append((c.session_id, c.command_id, encode_snapshot(session)))
    return out


@dataclass
class LayoutResult:
    name: str
    description: str
    bytes_per_session: float
    archived_bytes: float  # average stored size of the archived copy (0: none)
    compress_us: float  # CPU per session to build it (0: nothing to do)
    record_encoding: str  # of the key holding version, status, marks


Writer = Callable[[aioredis.Redis, str, list[tuple[str, str, bytes]]], Awaitable[None]]
# Where a layout keeps the snapshot's copy for the expiry event.
CopyIn = Literal["record", "none", "own key", "meta field"]


async def layouts(
    client: aioredis.Redis, prefix: str, count: int, seed: int, *, reference: bool = False
) -> list[LayoutResult]:
    data = snapshots(count, seed, reference=reference)
    now = now_ms()
    expires = now + 3_600_000
    record_expire = expires + EXPIRED_RETENTION_MS

    def keys(p: str, sid: str) -> tuple[str, str, str, str]:
        base = f"{p}:{{{bucket_of(sid)}}}:"
        return base + "s:" + sid, base + "r:" + sid, base + "m:" + sid, base + "x"

    def plain(snapshot: bytes) -> bytes:
        return snapshot

    def writer(pack: Callable[[bytes], bytes], copy_in: CopyIn) -> Writer:
        async def write(r: aioredis.Redis, p: str, rows: list[tuple[str, str, bytes]]) -> None:
            for start in range(0, len(rows), 500):
                pipe = r.pipeline(transaction=False)
                for sid, cid, snapshot in rows[start : start + 500]:
                    live, record, meta, index = keys(p, sid)
                    stored = pack(snapshot)
                    pipe.set(live, stored, pxat=expires)
                    if copy_in in ("record", "none"):
                        copy = stored if copy_in == "record" else b""
                        head = f"1\x1forg-bench\x1factive\x1f{expires}\x1f{cid}\x1e".encode()
                        pipe.set(record, head + copy, pxat=record_expire)
                    else:
                        fields: dict[FieldT, EncodableT] = {
                            "v": 1, "o": "org-bench", "st": "active", "x": expires, f"c:{cid}": 1,
                        }  # fmt: skip
                        if copy_in == "meta field":
                            fields["a"] = stored
                        else:
                            pipe.set(record.replace(":r:", ":a:"), stored, pxat=record_expire)
                        pipe.hset(meta, mapping=fields)
                        pipe.pexpireat(meta, record_expire)
                    pipe.zadd(index, {sid: expires})
                await pipe.execute()

        return write

    def zstd_plain(snapshot: bytes) -> bytes:
        return no_dictionary.compress(snapshot)

    no_dictionary = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_dict_id=False)
    candidates: list[tuple[str, str, Callable[[bytes], bytes], CopyIn]] = [
        ("current", "live STRING (zstd, trained dictionary) + one record STRING (version, "
         "owner, status, expiry, commandIds and the copy: the same bytes) + ZSET entry",
         pack_snapshot, "record"),
        ("meta-hash-and-copy", "the layout before this one: as current, but a small meta "
         "HASH and the copy in a STRING of its own (`a:<id>`): one key more",
         pack_snapshot, "own key"),
        ("0.1", "plain live STRING + plain copy `a` in the meta HASH + ZSET entry",
         plain, "meta field"),
        ("structure-dictionary", "the release before: as current, zstd with a dictionary "
         "of the snapshot's structure as text (format `\\x02`)",
         pack_snapshot_as_previous_release, "record"),
        ("zstd-no-dictionary", "as current, zstd without a dictionary",
         zstd_plain, "record"),
        ("no-copy", "lower bound: as current without the copy", pack_snapshot, "none"),
    ]  # fmt: skip
    results = []
    for i, (name, description, pack, copy_in) in enumerate(candidates):
        p = f"{prefix}{i}"
        before = await used_memory(client)
        await writer(pack, copy_in)(client, p, data)
        after = await used_memory(client)
        _, record, meta, _ = keys(p, data[0][0])
        holder = meta if copy_in in ("own key", "meta field") else record
        encoding = (await client.object("encoding", holder)).decode()
        started = time.perf_counter()
        copies = [pack(s) for _, _, s in data[:2000]] if copy_in != "none" else []
        cost = (time.perf_counter() - started) / max(1, len(copies)) * 1e6
        if pack is plain or not copies:
            cost = 0.0  # nothing to build
        results.append(
            LayoutResult(
                name=name,
                description=description,
                bytes_per_session=(after - before) / len(data),
                archived_bytes=sum(len(c) for c in copies) / len(copies) if copies else 0,
                compress_us=cost,
                record_encoding=encoding,
            )
        )
        await delete_under(client, p)
    return results
