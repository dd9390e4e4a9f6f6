"""The stored form of snapshots: compressed once, read back whichever worker version wrote it."""

import hashlib
import json
import zlib
from importlib.resources import files

import pytest
import zstandard

from contracts.commands import CreateSession, command_decoder
from devenv import snapshot_training
from tests.factories import create_command
from worker.eventing import encode_snapshot
from worker.snapshot import new_session
from worker.snapshot_codec import (
    DEFLATE_FORMAT,
    STRUCTURE_ZSTD_FORMAT,
    ZSTD_FORMAT,
    SnapshotFormatError,
    pack_snapshot,
    pack_snapshot_as_previous_release,
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


# Written by the release before (d789396) with its own pack_snapshot.
PREVIOUS_RELEASE_SNAPSHOT = (
    b'{"id":"s-1","orgId":"org-42","createdAt":"2026-11-24T10:00:00.000Z","status":"active",'
    b'"expirationSeconds":600,"name":"Support chat","messages":[{"role":"user",'
    b'"message":"Where is my order?","time":2,"endTime":3.5,"secondsFromStart":1}]}'
)
PREVIOUS_RELEASE_STORED = bytes.fromhex(
    "0228b52ffd20ec5503000404732d31323032362d31312d32345431303a30303a30302e3030305a537570"
    "706f727420636861745768657265206973206d79206f726465723f332e35317d5d7d0c00b8053dd104"
    "07948822660367d32c2724ae2d5bc81ca00bb91c1a924df3da605bd887862c0301"
)


def test_values_written_by_the_previous_release_are_read() -> None:
    assert PREVIOUS_RELEASE_STORED[:1] == STRUCTURE_ZSTD_FORMAT
    assert unpack_snapshot(PREVIOUS_RELEASE_STORED) == PREVIOUS_RELEASE_SNAPSHOT
    # What the benchmark and the upgrade test write as "the previous release" is the same.
    assert pack_snapshot_as_previous_release(PREVIOUS_RELEASE_SNAPSHOT) == PREVIOUS_RELEASE_STORED
    snapshot = _snapshot()
    assert unpack_snapshot(pack_snapshot_as_previous_release(snapshot)) == snapshot


def test_text_unlike_the_training_samples_round_trips() -> None:
    command = command_decoder.decode(
        json.dumps(
            create_command(
                name="Звонок 東京 ☎",
                messages=[
                    {
                        "role": "user",
                        "message": "¿Dónde está? 🚚 " * 40,
                        "time": 1,
                        "endTime": 2,
                        "secondsFromStart": 0,
                    }
                ],
            )
        ).encode()
    )
    assert isinstance(command, CreateSession)
    session, _ = new_session(command.session_id, command.org_id, command.payload, 1)
    snapshot = encode_snapshot(session)
    assert unpack_snapshot(pack_snapshot(snapshot)) == snapshot


# Stored data can only be read with the dictionary it was written with: these files never
# change once released. A better dictionary is a new file with a format byte of its own.
RELEASED_DICTIONARIES = {
    "archive_dictionary.json": "46c5f8b302cd341f7be7ae2b61291ad194ac34edee542b20aff7daad48bbf04d",
    "snapshot_dictionary.zstd": "f46565c5f7d13c40628a6876af393f2b67fceeb435354c73421ae0e722e64b62",
}


@pytest.mark.parametrize("name", sorted(RELEASED_DICTIONARIES))
def test_released_dictionaries_are_unchanged(name: str) -> None:
    data = (files("worker") / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == RELEASED_DICTIONARIES[name]


@pytest.mark.skipif(
    zstandard.__version__ != snapshot_training.TRAINED_WITH_ZSTANDARD,
    reason="zstd's trainer may differ between versions; the released file stays as it is",
)
def test_the_trained_dictionary_is_what_its_training_makes() -> None:
    assert snapshot_training.train() == (files("worker") / "snapshot_dictionary.zstd").read_bytes()


@pytest.mark.parametrize(
    "damaged",
    [
        ZSTD_FORMAT + b"not zstd",
        STRUCTURE_ZSTD_FORMAT + b"not zstd",
        DEFLATE_FORMAT + b"\xff\xfe",
    ],
)
def test_a_damaged_value_is_a_clear_error(damaged: bytes) -> None:
    with pytest.raises(SnapshotFormatError, match="does not decompress"):
        unpack_snapshot(damaged)
