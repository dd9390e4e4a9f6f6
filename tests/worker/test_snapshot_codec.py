"""The stored form of snapshots: compressed once, read back whichever worker version wrote it."""

import json
import zlib
from importlib.resources import files

import pytest

from contracts.commands import CreateSession, command_decoder
from tests.factories import create_command
from worker.eventing import encode_snapshot
from worker.snapshot import new_session
from worker.snapshot_codec import (
    DEFLATE_FORMAT,
    ZSTD_FORMAT,
    SnapshotFormatError,
    pack_snapshot,
    unpack_snapshot,
)


def _snapshot() -> bytes:
    command = command_decoder.decode(json.dumps(create_command()).encode())
    assert isinstance(command, CreateSession)
    session, _ = new_session(command.session_id, command.org_id, command.payload, 1_764_000_000_000)
    return encode_snapshot(session)


def test_a_snapshot_round_trips_and_shrinks_to_under_half() -> None:
    snapshot = _snapshot()
    stored = pack_snapshot(snapshot)
    assert stored[:1] == ZSTD_FORMAT
    assert len(stored) < len(snapshot) / 2
    assert unpack_snapshot(stored) == snapshot


def test_values_written_by_0_1_workers_are_read_as_they_were() -> None:
    snapshot = _snapshot()
    # 0.1 kept the live record as plain JSON ...
    assert unpack_snapshot(snapshot) == snapshot
    # ... and the archived copy as raw deflate with the same preset dictionary.
    dictionary = (files("worker") / "archive_dictionary.json").read_bytes()
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    archived = DEFLATE_FORMAT + deflate.compress(snapshot) + deflate.flush()
    assert unpack_snapshot(archived) == snapshot


@pytest.mark.parametrize("damaged", [ZSTD_FORMAT + b"not zstd", DEFLATE_FORMAT + b"\xff\xfe"])
def test_a_damaged_value_is_a_clear_error(damaged: bytes) -> None:
    with pytest.raises(SnapshotFormatError, match="does not decompress"):
        unpack_snapshot(damaged)
