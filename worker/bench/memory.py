"""Redis memory per live session: measured through the worker, and for candidate layouts.

`through_worker` runs the real worker over a burst of creates on a key prefix of its own and
divides the growth of `INFO memory` `used_memory` by the number of sessions: every key the worker
keeps for a session is in it (live STRING, meta HASH, the bucket ZSETs' entries, any outbox left).

`layouts` writes the same snapshots (built by the worker's own code) in several layouts directly
with pipelines, to measure what a layout change would save before anyone changes `store.py`.
"""

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis
import zstandard
from redis.typing import EncodableT, FieldT

from contracts.commands import CreateSession
from worker.app import Worker
from worker.bench.commands import CREATES_ONLY, CommandStream
from worker.bench.kafkaio import make_topics, preload
from worker.clock import now_ms
from worker.constants import EXPIRED_RETENTION_MS
from worker.decoding import Decoded, decode_record
from worker.eventing import encode_snapshot
from worker.keys import bucket_of
from worker.settings import Settings
from worker.snapshot import new_session
from worker.snapshot_codec import ZSTD_LEVEL, pack_snapshot


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
    meta_encoding: str
    index_encoding: str
    snapshot_bytes: float  # average live STRING value size
    usage_by_kind: dict[str, float] = field(default_factory=dict)  # MEMORY USAGE averages


async def through_worker(
    settings: Settings, client: aioredis.Redis, sessions: int, *, reference: bool, seed: int
) -> WorkerMemory:
    """Creates `sessions` sessions with the real (in-process) worker; measures what they cost."""
    await make_topics(settings, partitions=12)
    stream = CommandStream(seed, mix=CREATES_ONLY, reference=reference, tag=settings.key_prefix)
    await preload(settings.kafka_bootstrap_servers, settings.commands_topic, stream.take(sessions))
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
        meta_encoding=encodings.get("m", "?"),
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


def structure_dictionary(samples: list[bytes]) -> bytes:
    """A zlib preset dictionary of the snapshots' structure only: field names, enum-like values
    and number shapes, every string longer than 12 characters emptied. Free text (messages,
    names) is left out, so the benchmark's own sentences cannot flatter the compression."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        if isinstance(node, str) and len(node) > 12:
            return ""
        return node

    stripped = [msgspec.json.encode(strip(msgspec.json.decode(s))) for s in samples]
    return b"".join(stripped)[-32 * 1024 :]


@dataclass
class LayoutResult:
    name: str
    description: str
    bytes_per_session: float
    archived_bytes: float  # average stored size of the archived copy (0: none)
    compress_us: float  # CPU per session to build it (0: nothing to do)
    meta_encoding: str


Writer = Callable[[aioredis.Redis, str, list[tuple[str, str, bytes]]], Awaitable[None]]


async def layouts(
    client: aioredis.Redis, prefix: str, count: int, seed: int, *, reference: bool = False
) -> list[LayoutResult]:
    data = snapshots(count, seed, reference=reference)
    dictionary = structure_dictionary([s for _, _, s in snapshots(16, seed + 1)])
    now = now_ms()
    expires = now + 3_600_000
    meta_expire = expires + EXPIRED_RETENTION_MS

    def keys(p: str, sid: str) -> tuple[str, str, str, str]:
        base = f"{p}:{{{bucket_of(sid)}}}:"
        return base + "s:" + sid, base + "m:" + sid, base + "x", base + "a:" + sid

    def plain(snapshot: bytes) -> bytes:
        return snapshot

    def deflate(snapshot: bytes) -> bytes:
        return zlib.compress(snapshot, 6)

    def with_dict(snapshot: bytes) -> bytes:
        c = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
        return c.compress(snapshot) + c.flush()

    def writer(
        archive: Callable[[bytes], bytes] | None,
        *,
        own_key: bool,
        live_value: Callable[[bytes], bytes] = plain,
    ) -> Writer:
        async def write(r: aioredis.Redis, p: str, rows: list[tuple[str, str, bytes]]) -> None:
            for start in range(0, len(rows), 500):
                pipe = r.pipeline(transaction=False)
                for sid, cid, snapshot in rows[start : start + 500]:
                    live, meta, index, arch = keys(p, sid)
                    pipe.set(live, live_value(snapshot), pxat=expires)
                    fields: dict[FieldT, EncodableT] = {
                        "v": 1, "o": "org-bench", "st": "active", "x": expires, f"c:{cid}": 1,
                    }  # fmt: skip
                    if archive is not None and not own_key:
                        fields["a"] = archive(snapshot)
                    pipe.hset(meta, mapping=fields)
                    pipe.pexpireat(meta, meta_expire)
                    if archive is not None and own_key:
                        pipe.set(arch, archive(snapshot), pxat=meta_expire)
                    pipe.zadd(index, {sid: expires})
                await pipe.execute()

        return write

    def zstd_plain(snapshot: bytes) -> bytes:
        return no_dictionary.compress(snapshot)

    no_dictionary = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_dict_id=False)
    candidates: list[tuple[str, str, Writer, Callable[[bytes], bytes] | None, bool]] = [
        ("current", "live STRING and its copy `a:<id>`: the same zstd bytes (preset "
         "dictionary), compressed once; small meta HASH; ZSET entry",
         writer(pack_snapshot, own_key=True, live_value=pack_snapshot), pack_snapshot, False),
        ("0.1", "plain live STRING + plain copy `a` in the meta HASH + ZSET entry",
         writer(plain, own_key=False), plain, False),
        ("0.1 + listpack-config", "as 0.1, Redis `hash-max-listpack-value 4096` (config only)",
         writer(plain, own_key=False), plain, True),
        ("zlib-dict-own-key", "plain live STRING; copy in its own STRING, raw deflate with the "
         "preset dictionary (the layout before this one)",
         writer(with_dict, own_key=True), with_dict, False),
        ("zstd-no-dictionary", "as current, zstd without the preset dictionary",
         writer(zstd_plain, own_key=True, live_value=zstd_plain), zstd_plain, False),
        ("zlib-dict-live-too", "as current, raw deflate (level 6) with the preset dictionary",
         writer(with_dict, own_key=True, live_value=with_dict), with_dict, False),
        ("no-copy", "lower bound: compressed live STRING + small meta + ZSET, no archived copy",
         writer(None, own_key=False, live_value=pack_snapshot), None, False),
    ]  # fmt: skip
    results = []
    for i, (name, description, write, archive, listpack) in enumerate(candidates):
        p = f"{prefix}{i}"
        restore: str | None = None
        if listpack:
            try:
                current = await client.config_get("hash-max-listpack-value")
                restore = str(next(iter(current.values())))
                await client.config_set("hash-max-listpack-value", 4096)
            except Exception:  # noqa: BLE001, S112 - a managed Redis may refuse CONFIG: no row
                continue
        try:
            before = await used_memory(client)
            await write(client, p, data)
            after = await used_memory(client)
            sid0 = data[0][0]
            encoding = (await client.object("encoding", keys(p, sid0)[1])).decode()
        finally:
            if restore is not None:
                await client.config_set("hash-max-listpack-value", restore)
        started = time.perf_counter()
        archived = [archive(s) for _, _, s in data[:2000]] if archive is not None else []
        cost = (time.perf_counter() - started) / max(1, len(archived)) * 1e6
        if archive is plain or archive is None:
            cost = 0.0  # nothing to build
        results.append(
            LayoutResult(
                name=name,
                description=description,
                bytes_per_session=(after - before) / len(data),
                archived_bytes=sum(len(a) for a in archived) / len(archived) if archived else 0,
                compress_us=cost,
                meta_encoding=encoding,
            )
        )
        await delete_under(client, p)
    return results
