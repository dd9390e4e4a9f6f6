"""read_event (tolerant reader), RecentIds and the example view's rules, without Kafka."""

import json
from typing import Any

import msgspec
import pytest

from contracts.events import (
    CommandRejected,
    Event,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    SessionUpdated,
)
from session_client import InvalidEventError, RecentIds, UnknownEvent, event_type, read_event
from session_client.example_view import SessionView, describe
from tests.compat.releases import RELEASES

EVENTS = RELEASES[-1] / "events"


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_bytes())
    return document


def encode(document: dict[str, Any]) -> bytes:
    return msgspec.json.encode(document)


# --- read_event ------------------------------------------------------------------------------


def test_reads_every_recorded_event_as_the_contracts_struct() -> None:
    for path in sorted(EVENTS.glob("*.json")):
        event = read_event(path.read_bytes())
        assert event_type(event) == path.name.split("--")[0]


def test_ignores_unknown_fields_deep_inside() -> None:
    document = fixture("session.created--create-full")
    document["session"]["messages"][2]["tool_calls"][0]["function"]["strict"] = True
    document["session"]["customer"]["preferredLanguage"] = "en"
    document["session"]["assistantOverrides"]["kept"] = "opaque: kept verbatim"
    event = read_event(encode(document))
    assert isinstance(event, SessionCreated)
    assert event.session.assistant_overrides == document["session"]["assistantOverrides"]
    assert not hasattr(event.session.customer, "preferred_language")


def test_rejection_with_an_unknown_field_in_error() -> None:
    document = fixture("command.rejected--invalid")
    document["error"]["hint"] = "shorten the name"
    event = read_event(encode(document))
    assert isinstance(event, CommandRejected)
    assert (event.error.code, event.error.path) == ("invalid", "$.payload.name")


BAD: dict[str, tuple[bytes | None, str, str]] = {
    "tombstone": (None, "$", "no value"),
    "not-json": (b'{"type": ', "$", "truncated"),
    "not-an-object": (b"[1, 2]", "$", "JSON object"),
    "not-utf8": (b'{"type": "session.created", "eventId": "\xff"}', "$", "UTF-8"),
    "not-utf8-after-an-unknown-field": (b'{"type": "x", "new": 1, "a": "\xff"}', "$", "UTF-8"),
    "absurdly-deep": (b"[" * 5000 + b"]" * 5000, "$", "nested too deeply"),
    "no-type": (b'{"eventId": "e"}', "$.type", "type"),
    "wrong-version-type": (
        encode({**fixture("session.updated--update-name"), "version": "2", "new": 1}),
        "$.version",
        "Expected `int`, got `str`",
    ),
    "missing-session": (
        encode({k: v for k, v in fixture("session.deleted--delete").items() if k != "session"}),
        "$",
        "missing required field `session`",
    ),
    "new-status-value": (
        encode(
            {
                **fixture("session.created--create-minimal"),
                "session": {**fixture("session.created--create-minimal")["session"], "status": "x"},
            }
        ),
        "$.session.status",
        "Invalid enum value",
    ),
}


@pytest.mark.parametrize(("value", "path", "text"), BAD.values(), ids=BAD.keys())
def test_what_is_not_an_event_raises_with_its_path(
    value: bytes | None, path: str, text: str
) -> None:
    with pytest.raises(InvalidEventError) as raised:
        read_event(value)
    assert raised.value.path == path
    assert text in raised.value.message


def test_an_unknown_type_is_returned_to_skip() -> None:
    value = b'{"type":"session.paused","eventId":"e-9","sessionId":"s-1","reason":{"x":1}}'
    assert read_event(value) == UnknownEvent("session.paused", "e-9", "s-1", value)
    assert event_type(read_event(value)) == "session.paused"


# --- RecentIds -------------------------------------------------------------------------------


def test_recent_ids_forget_the_least_recently_seen_first() -> None:
    recent = RecentIds(max_ids=3)
    assert [recent.add(i) for i in ("a", "b", "c")] == [True, True, True]
    assert recent.add("a") is False  # a repeat, and now the most recent
    assert recent.add("d") is True  # evicts "b", the least recently seen
    assert len(recent) == 3
    assert "b" not in recent
    assert "a" in recent
    assert recent.add("b") is True
    with pytest.raises(ValueError, match="at least 1"):
        RecentIds(0)


# --- the example view's rules ----------------------------------------------------------------


def event(name: str, **changes: Any) -> Event:
    decoded = read_event(encode({**fixture(name), **changes}))
    assert not isinstance(decoded, UnknownEvent)
    return decoded


def test_view_keeps_the_highest_version_and_drops_repeats() -> None:
    view = SessionView()
    created = event("session.created--create-full")
    renamed = event("session.updated--update-name")
    later = event("session.updated--update-messages-expiration")
    assert view.apply(created) == "applied"
    assert view.apply(later) == "applied"
    assert view.apply(created) == "duplicate"  # same eventId: delivered twice
    assert view.apply(renamed) == "stale"  # an older version, arriving late
    assert isinstance(later, SessionUpdated)
    assert view.sessions["s-full"].version == later.version
    assert view.sessions["s-full"].session == later.session
    assert view.counts == {"applied": 2, "duplicate": 1, "stale": 1}


def test_view_removes_ended_sessions_and_keeps_them_ended() -> None:
    view = SessionView()
    created = event("session.created--create-full")
    deleted = event("session.deleted--delete")
    assert isinstance(deleted, SessionDeleted)
    assert view.apply(created) == "applied"
    assert view.apply(deleted) == "removed"
    assert "s-full" not in view.sessions
    replayed = event("session.created--create-full", eventId="replayed-beyond-the-id-bound")
    assert view.apply(replayed) == "stale"  # an old version cannot revive it
    # A new incarnation after the worker's own tombstone ran out starts again at version 1:
    # it is newer by time, so it is applied.
    reborn = event(
        "session.created--create-full", eventId="e-reborn", timestamp=deleted.timestamp + 1
    )
    assert view.apply(reborn) == "applied"
    assert view.sessions["s-full"].version == 1


def test_view_expiry_and_events_it_does_not_interpret() -> None:
    view = SessionView(max_event_ids=10, max_removed=1)
    expired = event("session.expired--expiry")
    assert isinstance(expired, SessionExpired)
    assert view.apply(event("session.created--create-expiring")) == "applied"
    assert view.apply(expired) == "removed"
    assert view.apply(event("command.rejected--conflict")) == "ignored"
    assert view.apply(UnknownEvent("session.paused", "e", "s", b"{}")) == "ignored"
    assert view.apply(event("session.deleted--delete")) == "removed"  # never seen live
    assert view.sessions == {}


def test_describe_is_one_line_per_event() -> None:
    assert describe("applied", event("session.created--create-minimal")) == (
        "applied   session.created   s-min v1"
    )
    assert describe("ignored", event("command.rejected--too_large")) == (
        "ignored   command.rejected  - -"
    )
