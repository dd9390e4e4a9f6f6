"""Credentials are replaced when a snapshot is built, wherever they sit (pure, no services)."""

import json

import msgspec

from contracts.payloads import CreateSessionDTO, UpdateSessionDTO
from tests.factories import CANARY_API_SECRET, CANARY_AUTH_TOKEN, create_payload
from worker.redaction import CACHED_KEY_MAX_CHARS, _is_secret_name_cached, is_secret_key
from worker.snapshot import new_session, updated_session


def _create(**changes: object) -> CreateSessionDTO:
    return msgspec.json.decode(json.dumps(create_payload(**changes)), type=CreateSessionDTO)


def test_typed_and_nested_credentials_are_redacted_and_the_rest_kept() -> None:
    payload = _create(
        assistant={"model": {"maxTokens": 50}, "credentials": [{"apiKey": "k-1", "id": "c-1"}]},
        messages=[{"role": "developer", "content": "x", "metadata": {"authToken": "t-1"}}],
    )
    without_assistant_id = msgspec.structs.replace(payload, assistant_id=msgspec.UNSET)
    session, _ = new_session("s-1", "org-1", without_assistant_id, 1_700_000_000_000)
    encoded = msgspec.json.encode(session).decode()
    for secret in (CANARY_AUTH_TOKEN, CANARY_API_SECRET, "k-1", "t-1"):
        assert secret not in encoded
    snapshot = json.loads(encoded)
    assert snapshot["assistant"]["credentials"] == [{"apiKey": "[redacted]", "id": "c-1"}]
    assert snapshot["assistant"]["model"] == {"maxTokens": 50}  # a count, not a token
    assert snapshot["messages"][0]["metadata"] == {"authToken": "[redacted]"}
    assert snapshot["phoneNumber"]["twilioAccountSid"] == "AC123"


def test_messages_set_by_an_update_are_redacted_too() -> None:
    session, expires = new_session("s-1", "org-1", _create(), 1_700_000_000_000)
    update = msgspec.json.decode(
        b'{"messages": [{"role": "tool", "content": "ok", "tool_call_id": "c",'
        b' "metadata": {"x-api-key": "k-2"}}]}',
        type=UpdateSessionDTO,
    )
    changed, _ = updated_session(session, expires, update, 1_700_000_001_000)
    assert b"k-2" not in msgspec.json.encode(changed)


def test_secret_key_names() -> None:
    for name in ("apiKey", "x-api-key", "Authorization", "clientSecret", "password", "gcpKey"):
        assert is_secret_key(name), name
    for name in ("maxTokens", "promptTokens", "credentialId", "name", "keywords"):
        assert not is_secret_key(name), name


def test_long_keys_are_judged_without_being_cached() -> None:
    long_secret = "x" * CACHED_KEY_MAX_CHARS + "ClientSecret"
    long_plain = "y" * CACHED_KEY_MAX_CHARS + "Name"
    before = _is_secret_name_cached.cache_info().currsize
    assert is_secret_key(long_secret)
    assert not is_secret_key(long_plain)
    assert _is_secret_name_cached.cache_info().currsize == before
    assert is_secret_key("clientSecret")
    assert not is_secret_key("clientName")
