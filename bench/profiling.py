"""Where the worker's time goes: py-spy on the worker process, and per-record CPU of its pieces.

`py-spy` (PyPI) samples the running worker from outside (`--nonblocking`: it never stops the
process); its raw output is one line per distinct stack with a sample count, summarised here by
own time (the innermost frame) and total time (any frame) per function.
"""

import asyncio
import io
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
import structlog

from bench.commands import CREATE_HEAVY, CommandStream
from contracts.commands import CreateSession, command_decoder
from contracts.decoding import Decoded, decode_record
from contracts.json_guards import deeper_than, duplicate_key
from worker.clock import now_ms
from worker.eventing import command_event_id, encode_snapshot, session_event
from worker.keys import KeySpace
from worker.logs import json_serializer
from worker.processor import APPLY_CHUNK_SESSIONS
from worker.redis_client import HiredisPackingConnection
from worker.snapshot import new_session
from worker.snapshot_codec import pack_snapshot
from worker.store import Op, SessionOps, SessionStore

_LINE = re.compile(r" \([^)]*\)$|:\d+\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


class Recorder:
    """`py-spy record` attached to a pid until `stop()`."""

    def __init__(self, pid: int, raw_path: Path, rate: int = 250) -> None:
        binary = py_spy()
        if binary is None:
            raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
        self.raw_path = raw_path
        self._proc = subprocess.Popen(  # noqa: S603 - py-spy from this environment
            [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
             "--nonblocking", "--output", str(raw_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip

    async def stop(self) -> None:
        self._proc.send_signal(signal.SIGINT)
        for _ in range(200):
            if self._proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        self._proc.kill()
        self._proc.wait()


@dataclass
class Profile:
    samples: int
    own: list[tuple[str, float]]  # (function, share of samples) by own time
    total: list[tuple[str, float]]  # by total (inclusive) time
    areas: list[tuple[str, float]]  # by library / area, own time


_AREAS = (
    ("structlog / logging", ("structlog", "logging")),
    ("aiokafka producer (send, batching, record building)", ("aiokafka/producer",)),
    ("aiokafka consumer (fetch, record parsing)", ("aiokafka/consumer",)),
    ("aiokafka other (protocol, connection)", ("aiokafka",)),
    ("redis-py (pipeline packing, reply parsing)", ("redis/",)),
    ("decoding (msgspec decode, duplicate-key / depth checks)", ("decoding.py", "msgspec")),
    ("snapshot / redaction", ("snapshot.py", "redaction.py")),
    ("events (encode, uuid5)", ("eventing.py", "uuid.py")),
    ("processor / transitions / store (Python side)",
     ("processor.py", "transitions.py", "store.py")),
    ("asyncio event loop", ("asyncio",)),
)  # fmt: skip


def _area(stack: list[str]) -> str:
    leaf = stack[-1]
    for frame in reversed(stack):
        for name, needles in _AREAS:
            if any(n in frame for n in needles):
                return name
    return "other: " + _LINE.sub("", leaf)[:60]


def summarise(raw: str, top: int = 15) -> Profile:
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    areas: dict[str, int] = {}
    samples = 0
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack_text.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        samples += count
        names = [_name(f) for f in frames]
        own[names[-1]] = own.get(names[-1], 0) + count
        for name in set(names):
            total[name] = total.get(name, 0) + count
        area = _area(frames)
        areas[area] = areas.get(area, 0) + count

    def ranked(table: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, v / max(1, samples)) for k, v in sorted(table.items(), key=lambda kv: -kv[1])][
            :top
        ]

    return Profile(samples, ranked(own), ranked(total), ranked(areas))


def _name(frame: str) -> str:
    """`send (aiokafka/producer/producer.py:412)` -> `send (aiokafka/producer/producer.py)`."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    path = match.group(2)
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group(1)} ({path})"


@dataclass
class PieceCost:
    name: str
    us_per_record: float
    # Part of every create at the default log level, and not already inside another row.
    on_create_path: bool = True


def _event(c: CreateSession, snapshot: bytes, now: int) -> bytes:
    return session_event(
        event_type="session.created",
        event_id="x",
        timestamp_ms=now,
        org_id=c.org_id,
        session_id=c.session_id,
        version=1,
        snapshot=snapshot,
        command_id=c.command_id,
    )


def micro_costs(records: int = 2000, seed: int = 7) -> list[PieceCost]:
    """CPU per create of the worker's pure-Python pieces, no I/O (median of 3 runs)."""
    stream = CommandStream(seed, mix=CREATE_HEAVY, tag="micro")
    commands = [c for c in stream.take(records * 2) if c.kind == "create"][:records]
    now = now_ms()
    decoded = [decode_record(c.key, c.value, 1 << 20) for c in commands]
    parsed = [
        d.command
        for d in decoded
        if isinstance(d, Decoded) and isinstance(d.command, CreateSession)
    ]
    creates = [c for c in parsed if isinstance(c, CreateSession)]
    sessions = [new_session(c.session_id, c.org_id, c.payload, now)[0] for c in creates]
    snaps = [encode_snapshot(s) for s in sessions]
    sink = io.BytesIO()
    logger = structlog.wrap_logger(
        structlog.BytesLogger(sink),
        processors=[  # as worker.logs.configure_logging(fmt="json")
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=json_serializer()),
        ],
        # Not the bench's own quiet configuration: a level that lets the line through.
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    # The worker's own store and packer, never connected: only the script runs are built.
    store = SessionStore(aioredis.Redis(), KeySpace("sw"), 604_800_000)
    packer = HiredisPackingConnection()
    sha = "0" * 40

    def put(c: CreateSession, stored: bytes) -> SessionOps:
        expires = now + 3_600_000
        op = Op(
            kind="put",
            outbox_field="3:12345",
            expected_version=0,
            expected_live=False,
            event=stored * 3,  # an event is about three times the stored snapshot's size
            stored=stored,
            expires_ms=expires,
            new_version=1,
            org_id=c.org_id,
            status="active",
            command_id=c.command_id,
            record_expire_at_ms=expires + 7 * 86_400_000,
        )
        return SessionOps(c.session_id, [op])

    def apply_runs(chunks: list[list[SessionOps]]) -> None:
        # As the processor hands chunks to store.apply, and _queue packs each run.
        for chunk in chunks:
            for call in store.apply_calls(chunk)[1]:
                packer.pack_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)

    def timed(fn: Callable[[], object]) -> float:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - started) / len(parsed) * 1e6)
        return sorted(runs)[1]

    def log_lines() -> None:
        for c in parsed:
            logger.info(
                "command applied", outcome="applied", topic="t", partition=0, offset=1,
                command_id=c.command_id, session_id=c.session_id, org_id=c.org_id,
                event_type="session.created", duration_ms=0.4,
            )  # fmt: skip
        sink.seek(0)
        sink.truncate()

    values = [c.value for c in commands]
    stored = [pack_snapshot(s) for s in snaps]
    puts = [put(c, s) for c, s in zip(creates, stored, strict=True)]
    chunks = [puts[i : i + APPLY_CHUNK_SESSIONS] for i in range(0, len(puts), APPLY_CHUNK_SESSIONS)]
    return [
        PieceCost(
            "decode_record (all of it)",
            timed(lambda: [decode_record(c.key, c.value, 1 << 20) for c in commands]),
        ),
        PieceCost(
            "  of which msgspec decode",
            timed(lambda: [command_decoder.decode(v) for v in values]),
            on_create_path=False,
        ),
        PieceCost(
            "  of which duplicate_key (re-encode, count colons)",
            timed(lambda: [duplicate_key(v, c) for v, c in zip(values, parsed, strict=True)]),
            on_create_path=False,
        ),
        PieceCost(
            "  of which deeper_than",
            timed(lambda: [deeper_than(v, 64) for v in values]),
            on_create_path=False,
        ),
        PieceCost(
            "new_session (snapshot, redaction)",
            timed(lambda: [new_session(c.session_id, c.org_id, c.payload, now) for c in creates]),
        ),
        PieceCost("encode_snapshot", timed(lambda: [encode_snapshot(s) for s in sessions])),
        PieceCost(
            "command_event_id (uuid5)",
            timed(lambda: [command_event_id(c.session_id, c.command_id) for c in parsed]),
        ),
        PieceCost(
            "session_event (encode event around the snapshot)",
            timed(lambda: [_event(c, s, now) for c, s in zip(creates, snaps, strict=True)]),
        ),
        PieceCost(
            "structlog JSON line per record (only at SW_LOG_LEVEL=debug)",
            timed(log_lines),
            on_create_path=False,
        ),
        PieceCost(
            "pack_snapshot (zstd, for the live record and its copy)",
            timed(lambda: [pack_snapshot(s) for s in snaps]),
        ),
        PieceCost(
            "Redis script arguments and their packing (hiredis), per create in runs of "
            f"{APPLY_CHUNK_SESSIONS} as store.apply sends them",
            timed(lambda: apply_runs(chunks)),
        ),
    ]
