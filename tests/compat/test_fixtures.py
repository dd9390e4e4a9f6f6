"""Records written by earlier releases still read with the current Structs.

`fixtures/<release>/` holds what that release's kit wrote (commands) and its worker emitted
(events), byte for byte (`record_fixtures.py`). Every release of the current major must still
read: commands through the worker's own decoder, events with the strict and the tolerant reader.
Events with fields added everywhere stand for a later minor: the tolerant reader must read them.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
from jsonschema import (  # type: ignore[import-untyped]  # no stubs in the dev deps
    Draft202012Validator,
)

from contracts.decoding import Decoded, decode_record
from contracts.events import CommandRejected, RejectionCode, event_decoder
from contracts.schema import SCHEMA_DIR
from contracts.wire import CONTRACT_VERSION, MAX_RECORD_BYTES
from session_client import EVENT_TYPES, UnknownEvent, encode_command, read_event
from tests.compat.releases import (
    COMMAND_FILES,
    EVENT_FILES,
    FIXTURES,
    RELEASES,
    fixture_id,
    major,
)


@cache
def _validator(file_name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8")))


def test_fixtures_cover_every_event_type_and_rejection_code() -> None:
    assert RELEASES, f"no fixtures for contract major {major(CONTRACT_VERSION)} in {FIXTURES}"
    assert len(COMMAND_FILES) >= 5
    events = [event_decoder.decode(p.read_bytes()) for p in EVENT_FILES]
    recorded = {type(e).__struct_config__.tag for e in events}
    assert recorded == EVENT_TYPES, "record a fixture set with the new event type"
    codes = {e.error.code for e in events if isinstance(e, CommandRejected)}
    assert codes == set(get_args(RejectionCode))
    kinds = {json.loads(p.read_bytes())["type"] for p in COMMAND_FILES}
    assert kinds == {"session.create", "session.update", "session.delete"}


@pytest.mark.parametrize("path", COMMAND_FILES, ids=fixture_id)
def test_command_is_still_accepted_by_the_worker(path: Path) -> None:
    value = path.read_bytes()
    key = json.loads(value)["sessionId"].encode()
    decoded = decode_record(key, value, MAX_RECORD_BYTES)
    assert isinstance(decoded, Decoded), decoded
    # The current kit writes the same command in a form the worker accepts, meaning unchanged.
    again = encode_command(decoded.command)
    assert again.command == decoded.command
    assert json.loads(again.value) == json.loads(value)
    assert _validator("commands.schema.json").is_valid(json.loads(value))


@pytest.mark.parametrize("path", EVENT_FILES, ids=fixture_id)
def test_event_still_reads_strictly_and_tolerantly(path: Path) -> None:
    value = path.read_bytes()
    strict = event_decoder.decode(value)
    assert read_event(value) == strict
    assert json.loads(msgspec.json.encode(strict)) == json.loads(value)  # nothing lost
    assert _validator("events.schema.json").is_valid(json.loads(value))


def _with_additions(node: Any) -> Any:
    """`node` with a new field in every object that is not opaque configuration."""
    if isinstance(node, list):
        return [_with_additions(item) for item in node]
    if not isinstance(node, dict):
        return node
    opaque = {"assistant", "assistantOverrides", "squad", "server", "fallbackDestination"}
    opaque |= {"metadata", "hooks"}
    changed = {k: (v if k in opaque else _with_additions(v)) for k, v in node.items()}
    changed["addedInALaterMinor"] = {"nested": [1, 2.5, None], "text": "ignored"}
    return changed


@pytest.mark.parametrize("path", EVENT_FILES, ids=fixture_id)
def test_event_from_a_later_minor_reads_tolerantly(path: Path) -> None:
    value = path.read_bytes()
    later = msgspec.json.encode(_with_additions(json.loads(value)))
    assert read_event(later) == event_decoder.decode(value)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        event_decoder.decode(later)  # why consumers must not use the strict decoder


@pytest.mark.parametrize("path", EVENT_FILES[:1], ids=fixture_id)
def test_event_of_a_later_type_is_skippable(path: Path) -> None:
    document = json.loads(path.read_bytes())
    later = msgspec.json.encode({**document, "type": "session.transferred", "to": "org-7"})
    event = read_event(later)
    assert event == UnknownEvent(
        type="session.transferred",
        event_id=document["eventId"],
        session_id=document.get("sessionId"),
        value=later,
    )
