"""How `worker/snapshot_dictionary.zstd`, the zstd dictionary of stored snapshots, was made.

The dictionary is data, not code: a snapshot compressed with it can only be read with it, so
the committed file never changes (a test pins its digest), and a new dictionary would get a
format byte of its own (see `worker.snapshot_codec`). This module records how it was made and
makes it again: `python -m devenv.snapshot_training OUT` (zstd's COVER trainer is
deterministic for the same samples and zstandard version).

Samples are snapshots as the worker builds them (`new_session`, then `encode_snapshot`) from
the shape of the benchmark's realistic payload, with every id, phone number and time random
and every free-text value (messages, names, a first message) replaced by random words. So
the dictionary holds the structure (keys, enum values, the formats of ids, times and phone
numbers) and entropy tables fitted to it and to letter frequencies, but no phrase of the
benchmark's. On the benchmark's snapshots it compresses in 3.4 us to 375 B, against 6.1 us
and 413 B with the structure-only dictionary of format `\\x02`; on snapshots of random text
(never seen) 3.9 us and 458 B against 7.1 us and 527 B.
"""

import random
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
import zstandard

from bench.commands import realistic_payload
from contracts.commands import CreateSession, command_decoder
from worker.eventing import encode_snapshot
from worker.snapshot import new_session

DICTIONARY_BYTES = 4096  # 8 and 16 KiB compressed no smaller and no faster
SAMPLES = 3000
SEED = 20261124
# The version the released file was made with; others may train a different one.
TRAINED_WITH_ZSTANDARD = "0.25.0"
_FREE_TEXT = frozenset({"message", "content", "firstMessage"})
_PHONE_NUMBERS = frozenset({"number", "twilioPhoneNumber"})
_TIMES = frozenset({"time", "endTime"})
# English letter frequencies (per mille, rounded): text of real sessions is mostly prose.
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_WEIGHTS = (127, 91, 82, 75, 70, 67, 63, 61, 60, 43, 40, 28, 28, 24, 24, 22, 20, 20, 19, 15,
            10, 8, 2, 2, 1, 1)  # fmt: skip


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(
        "".join(rng.choices(_LETTERS, _WEIGHTS, k=rng.randint(1, 9)))
        for _ in range(rng.randint(low, high))
    ).capitalize()


def _randomized(node: Any, rng: random.Random, shift_ms: int) -> Any:
    """`node` with its free text, phone numbers and message times replaced by random ones."""
    if isinstance(node, dict):
        return {key: _value_like(key, value, rng, shift_ms) for key, value in node.items()}
    if isinstance(node, list):
        return [_randomized(item, rng, shift_ms) for item in node]
    return node


def _value_like(key: str, value: Any, rng: random.Random, shift_ms: int) -> Any:
    if isinstance(value, str) and key == "name":  # at most 40 characters (the contract)
        return _words(rng, 1, 3)[:40]
    if isinstance(value, str) and key in _FREE_TEXT:
        return _words(rng, 3, 14) + rng.choice(".?!")
    if isinstance(value, str) and key in _PHONE_NUMBERS:
        return f"+{rng.randint(1, 99)}{rng.randrange(10**9, 10**10)}"
    if isinstance(value, int) and key in _TIMES and value > 10**12:
        return value + shift_ms  # the benchmark's times are all from late 2023
    return _randomized(value, rng, shift_ms)


def samples(count: int = SAMPLES, seed: int = SEED) -> list[bytes]:
    """`count` snapshots as the worker stores them (before compression), reproducibly."""
    rng = random.Random(seed)  # noqa: S311 - reproducible samples, not secrets
    out = []
    for _ in range(count):
        expiration_s = rng.choice((60, 300, 900, 3600, 86400))
        now_ms = 1_735_689_600_000 + rng.randrange(400 * 86_400_000)  # some time in 2025-26
        payload = _randomized(realistic_payload(rng, expiration_s), rng, now_ms - 1_700_000_000_000)
        body = {
            "commandId": str(uuid.UUID(int=rng.getrandbits(128))),
            "type": "session.create",
            "orgId": str(uuid.UUID(int=rng.getrandbits(128))),
            "sessionId": str(uuid.UUID(int=rng.getrandbits(128))),
            "payload": payload,
        }
        command = command_decoder.decode(msgspec.json.encode(body))
        assert isinstance(command, CreateSession)  # noqa: S101 - built as one just above
        session, _ = new_session(command.session_id, command.org_id, command.payload, now_ms)
        out.append(encode_snapshot(session))
    return out


def train() -> bytes:
    chunks: list[bytes | bytearray | memoryview] = list(samples())
    return zstandard.train_dictionary(DICTIONARY_BYTES, chunks, level=1).as_bytes()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m devenv.snapshot_training OUT")
    Path(sys.argv[1]).write_bytes(train())
