"""`python -m bench.redis_cost [LUA_DIR ...]`: Redis CPU per command of the worker's scripts.

Redis' own CPU time (INFO cpu, main thread) over the create-heavy mix as the worker sends it,
without Kafka: runs of 32 sessions, creates (70%), then updates of some (20%) and deletes
(10%) decided on the cache (check applied), then the committed outbox entries removed. Each
LUA_DIR (a folder holding apply.lua, forget.lua, ... as in worker/lua; "-" is this tree's) is
measured in turn, interleaved over `--rounds` on a fresh local Redis, so two script versions
are compared on the same server and minute.
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from devenv.redis_local import LocalRedis
from worker.keys import KeySpace
from worker.store import PRELUDE, SCRIPTS, Op, SessionOps, SessionStore, script_source

CHUNK = 32


def _sources(lua_dir: str) -> dict[str, str]:
    if lua_dir == "-":
        return {name: script_source(name) for name in SCRIPTS}
    d = Path(lua_dir)
    prelude = (d / f"{PRELUDE}.lua").read_text(encoding="utf-8")
    return {name: prelude + (d / f"{name}.lua").read_text(encoding="utf-8") for name in SCRIPTS}


async def _cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys_main_thread"]) + float(info["used_cpu_user_main_thread"])


async def _one(client: aioredis.Redis, lua_dir: str, n: int, prefix: str) -> tuple[float, int]:
    """Redis CPU µs per command over n creates, n/5 updates, n/10 deletes and their clean-up."""
    store = SessionStore(client, KeySpace(prefix), 604_800_000)
    store._sources = _sources(lua_dir)  # the variant under test
    stored = bytes(range(256)) + b"x" * 120  # ~375 B, a compressed snapshot's size
    event = b"e" * 1100
    now = int(time.time() * 1000)
    expires = now + 3_600_000

    def op(kind: str, field: str, cid: str, version: int, live: bool, check: bool) -> Op:
        return Op(
            kind=kind,  # type: ignore[arg-type]
            outbox_field=field,
            expected_version=version,
            expected_live=live,
            event=event,
            stored=stored if kind == "put" else b"",
            expires_ms=expires if kind == "put" else 0,
            new_version=version + 1,
            org_id="org-1" if kind == "put" else "",
            status="active" if kind == "put" else "",
            command_id=cid,
            record_expire_at_ms=expires + 7 * 86_400_000,
            check_applied=check,
        )

    sids = [f"s{k:07d}-{prefix}" for k in range(n)]
    batches: list[list[SessionOps]] = []
    offset = 0
    for sid in sids:
        batches.append([SessionOps(sid, [op("put", f"1:{offset}", f"c{offset}", 0, False, False)])])
        offset += 1
    for sid in sids[: n // 5]:
        batches.append([SessionOps(sid, [op("put", f"1:{offset}", f"c{offset}", 1, True, True)])])
        offset += 1
    for sid in sids[n // 5 : n // 5 + n // 10]:
        batches.append(
            [SessionOps(sid, [op("delete", f"1:{offset}", f"c{offset}", 1, True, True)])]
        )
        offset += 1
    groups = [g for b in batches for g in b]
    await store.apply(groups[:1])  # scripts loaded
    await store.flush()
    before = await _cpu(client)
    k = 1
    while k < len(groups):
        chunk = groups[k : k + CHUNK]
        await store.apply(chunk)
        store.committed((g.session_id, o.outbox_field) for g in chunk for o in g.ops)
        k += CHUNK
    await store.flush()
    used = await _cpu(client) - before
    return used / (len(groups) - 1) * 1e6, len(groups) - 1


async def run(args: argparse.Namespace, url: str) -> None:
    client = aioredis.Redis.from_url(url)
    results: dict[str, list[float]] = {d: [] for d in args.lua_dirs}
    for r in range(args.rounds):
        for i, d in enumerate(args.lua_dirs):
            await client.flushall()
            us, count = await _one(client, d, args.sessions, f"rc{r}{i}")
            results[d].append(us)
            print(f"round {r} {d}: {us:.1f} µs/command ({count:,} commands)", flush=True)
    for d, values in results.items():
        print(
            f"{d}: median {statistics.median(values):.1f} µs/command, "
            f"range {min(values):.1f}-{max(values):.1f}",
            flush=True,
        )
    await client.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.redis_cost")
    p.add_argument("lua_dirs", nargs="*", default=["-"])
    p.add_argument("--sessions", type=int, default=30_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--redis-url", default="")
    args = p.parse_args(argv)
    if args.redis_url:
        asyncio.run(run(args, args.redis_url))
        return
    with LocalRedis() as redis:
        asyncio.run(run(args, redis.url))


if __name__ == "__main__":
    main()
