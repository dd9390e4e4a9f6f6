"""The checked-in JSON Schema files match the Structs, and the schema agrees with the decoder.

Each sample is checked both ways: the JSON Schema (what non-Python producers validate against)
and msgspec's decoder (what the worker runs) must accept and reject the same documents.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import (  # type: ignore[import-untyped]  # no stubs in the dev deps
    Draft202012Validator,
)

from contracts.commands import command_decoder
from contracts.events import (
    CommandRejected,
    Event,
    RejectionError,
    SessionCompleted,
    SessionCreated,
    SessionExpired,
    event_decoder,
)
from contracts.messages import AssistantMessage, ToolCall, ToolCallFunction, UserMessage
from contracts.payloads import CreateCustomerDTO
from contracts.schema import DIALECT, DOCUMENTS, SCHEMA_DIR, SchemaDocument, main, render, stale
from contracts.session import Session

COMMANDS = next(d for d in DOCUMENTS if d.file_name == "commands.schema.json")
EVENTS = next(d for d in DOCUMENTS if d.file_name == "events.schema.json")


@cache
def validator(file_name: str) -> Draft202012Validator:
    """A validator for the checked-in file, so the samples test what consumers actually get."""
    schema = json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


# --- the files are what the Structs produce --------------------------------------------------


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.file_name)
def test_checked_in_file_is_up_to_date(document: SchemaDocument) -> None:
    path = SCHEMA_DIR / document.file_name
    assert path.is_file(), f"{path} is missing: run `python -m contracts.schema write`"
    assert path.read_text(encoding="utf-8") == render(document), (
        f"{path} is stale: run `python -m contracts.schema write` and commit the result"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.file_name)
def test_document_shape(document: SchemaDocument) -> None:
    schema: dict[str, Any] = json.loads(render(document))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    assert schema["$id"] == document.schema_id
    assert schema["title"]
    assert "anyOf" in schema or "oneOf" in schema
    assert schema["discriminator"]["propertyName"] == "type"
    refs = [member["$ref"] for member in schema.get("anyOf", schema.get("oneOf", []))]
    assert refs
    assert all(ref.removeprefix("#/$defs/") in schema["$defs"] for ref in refs)
    assert set(schema["discriminator"]["mapping"].values()) == set(refs)


def test_render_is_deterministic() -> None:
    assert [render(d) for d in DOCUMENTS] == [render(d) for d in DOCUMENTS]
    assert all(render(d).endswith("}\n") for d in DOCUMENTS)


def test_cli_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0  # the checked-in files

    assert main(["check", "--dir", str(tmp_path)]) == 1
    assert "commands.schema.json is missing" in capsys.readouterr().err

    assert main(["write", "--dir", str(tmp_path)]) == 0
    assert stale(tmp_path) == []
    assert main(["check", "--dir", str(tmp_path)]) == 0

    events_file = tmp_path / EVENTS.file_name
    events_file.write_text(events_file.read_text(encoding="utf-8").replace("40", "41"))
    capsys.readouterr()
    assert main(["check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "events.schema.json is out of date" in err
    assert "commands.schema.json" not in err
    assert stale(tmp_path) == [events_file]


# --- samples: the schema and the decoder agree -----------------------------------------------

SID = "5b0c7c5e-4f59-4f4e-9d0a-3b8f0f6e2a11"
ENVELOPE: dict[str, Any] = {"commandId": "c-7f3a", "orgId": "org-42", "sessionId": SID}
USER_MESSAGE: dict[str, Any] = {
    "role": "user",
    "message": "hello",
    "time": 1_700_000_000_000,
    "endTime": 1_700_000_000_900.5,
    "secondsFromStart": 0,
}
FULL_CREATE: dict[str, Any] = {
    **ENVELOPE,
    "type": "session.create",
    "payload": {
        "name": "Support chat",
        "status": "active",
        "expirationSeconds": 3600,
        "assistantId": "asst-1",
        "assistant": {"model": {"provider": "openai", "x-unknown": [1, None]}},
        "messages": [
            {"role": "system", "message": "be brief", "time": 1, "secondsFromStart": 0},
            USER_MESSAGE,
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "ok", "tool_call_id": "t1"},
            {"role": "developer", "content": "note"},
        ],
        "customer": {"number": "+14155550100", "name": "Ada"},
        "phoneNumber": {"twilioAccountSid": "AC1", "twilioPhoneNumber": "+14155550101"},
    },
}

VALID_COMMANDS = [
    pytest.param(FULL_CREATE, id="create-full"),
    pytest.param({**ENVELOPE, "type": "session.create", "payload": {}}, id="create-empty"),
    pytest.param(
        {**ENVELOPE, "type": "session.update", "payload": {"expirationSeconds": 60.5}},
        id="update-fractional-expiration",
    ),
    pytest.param({**ENVELOPE, "type": "session.delete"}, id="delete"),
]


def with_payload(**payload: object) -> dict[str, Any]:
    return {**ENVELOPE, "type": "session.create", "payload": payload}


INVALID_COMMANDS = [
    pytest.param(with_payload(name="x" * 41), id="name-41"),
    pytest.param(with_payload(status="deleted"), id="status-unknown"),
    pytest.param(with_payload(expirationSeconds=59.999), id="expiration-below-min"),
    pytest.param(with_payload(expirationSeconds=2_592_000.5), id="expiration-above-max"),
    pytest.param(with_payload(expirationSeconds=True), id="expiration-bool"),
    pytest.param(with_payload(expirationSeconds="3600"), id="expiration-string"),
    pytest.param(with_payload(assistantID="a"), id="unknown-payload-field"),
    pytest.param(with_payload(assistant=[]), id="opaque-not-object"),
    pytest.param(with_payload(messages=[{"role": "bot"}]), id="message-unknown-role"),
    pytest.param(
        with_payload(messages=[{k: v for k, v in USER_MESSAGE.items() if k != "endTime"}]),
        id="user-message-missing-endTime",
    ),
    pytest.param(with_payload(customer={"number": "12"}), id="customer-number-2"),
    pytest.param(with_payload(phoneNumber={"twilioAccountSid": "AC1"}), id="phone-missing-number"),
    pytest.param({**ENVELOPE, "type": "session.bogus", "payload": {}}, id="unknown-type"),
    pytest.param({**ENVELOPE, "payload": {}}, id="missing-type"),
    pytest.param({**ENVELOPE, "type": "session.delete", "payload": {}}, id="delete-with-payload"),
    pytest.param({"type": "session.delete", "orgId": "o", "sessionId": "s"}, id="no-commandId"),
    pytest.param({**ENVELOPE, "type": "session.delete", "commandId": ""}, id="commandId-empty"),
    pytest.param({**ENVELOPE, "type": "session.delete", "orgId": "o" * 129}, id="orgId-129"),
    pytest.param({**ENVELOPE, "type": "session.delete", "sessionId": "a b"}, id="id-with-space"),
    pytest.param({**ENVELOPE, "type": "session.delete", "sessionId": "{a}"}, id="id-with-braces"),
    pytest.param({**ENVELOPE, "type": "session.delete", "sessionId": "s1\n"}, id="id-trailing-nl"),
    pytest.param({**ENVELOPE, "type": "session.update"}, id="update-without-payload"),
]


@pytest.mark.parametrize("command", VALID_COMMANDS)
def test_valid_command_passes_schema_and_decoder(command: dict[str, Any]) -> None:
    errors = [e.message for e in validator(COMMANDS.file_name).iter_errors(command)]
    assert errors == []
    command_decoder.decode(msgspec.json.encode(command))


@pytest.mark.parametrize("command", INVALID_COMMANDS)
def test_invalid_command_fails_schema_and_decoder(command: dict[str, Any]) -> None:
    assert not validator(COMMANDS.file_name).is_valid(command)
    with pytest.raises(msgspec.ValidationError):
        command_decoder.decode(msgspec.json.encode(command))


SESSION = Session(
    id=SID,
    org_id="org-42",
    created_at="2026-01-01T00:00:00.000Z",
    updated_at="2026-01-01T00:00:00.000Z",
    expires_at="2026-01-01T01:00:00.000Z",
    status="active",
    expiration_seconds=3600,
    name="Support chat",
    assistant={"model": {"provider": "openai"}},
    messages=[
        UserMessage(message="hi", time=1, end_time=2.5, seconds_from_start=0),
        AssistantMessage(
            tool_calls=[ToolCall("t1", "function", ToolCallFunction(arguments="{}", name="f"))]
        ),
    ],
    customer=CreateCustomerDTO(number="+14155550100"),
)
EVENT_FIELDS: dict[str, Any] = {
    "event_id": "e-1",
    "timestamp": 1_795_494_627_462,
    "org_id": "org-42",
    "session_id": SID,
    "version": 1,
    "session": SESSION,
}
VALID_EVENTS: list[Any] = [
    pytest.param(SessionCreated(**EVENT_FIELDS, command_id="c-7f3a"), id="created"),
    pytest.param(SessionCompleted(**EVENT_FIELDS, command_id="c-7f3b"), id="completed"),
    pytest.param(SessionExpired(**EVENT_FIELDS), id="expired-no-commandId"),
    pytest.param(
        CommandRejected(
            event_id="e-2",
            timestamp=1_795_494_627_462,
            error=RejectionError("invalid", "Expected `str` of length <= 40", "$.payload.name"),
            command_id="c-7f3a",
        ),
        id="rejected-partial-ids",
    ),
    pytest.param(
        CommandRejected(
            event_id="e-3", timestamp=1, error=RejectionError("too_large", "record too large")
        ),
        id="rejected-no-ids-no-path",
    ),
]


def event_dict(event: Event) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.to_builtins(event)
    return built


CREATED = event_dict(SessionCreated(**EVENT_FIELDS, command_id="c-7f3a"))
INVALID_EVENTS = [
    pytest.param({k: v for k, v in CREATED.items() if k != "eventId"}, id="missing-eventId"),
    pytest.param({**CREATED, "type": "session.renamed"}, id="unknown-type"),
    pytest.param({**CREATED, "timestamp": 1.5}, id="timestamp-not-integer"),
    pytest.param(
        {**CREATED, "session": {**CREATED["session"], "status": "expired"}}, id="session-status"
    ),
    pytest.param(
        {"type": "command.rejected", "eventId": "e", "timestamp": 1, "error": {"code": "oops"}},
        id="rejected-unknown-code",
    ),
]


@pytest.mark.parametrize("event", VALID_EVENTS)
def test_valid_event_passes_schema_and_decoder(event: Event) -> None:
    doc = event_dict(event)
    errors = [e.message for e in validator(EVENTS.file_name).iter_errors(doc)]
    assert errors == []
    assert event_decoder.decode(msgspec.json.encode(event)) == event


@pytest.mark.parametrize("event", INVALID_EVENTS)
def test_invalid_event_fails_schema_and_decoder(event: dict[str, Any]) -> None:
    assert not validator(EVENTS.file_name).is_valid(event)
    with pytest.raises(msgspec.ValidationError):
        event_decoder.decode(msgspec.json.encode(event))


ADDED_FIELDS = [
    pytest.param({**CREATED, "traceId": "4bf92f35"}, id="event-field"),
    pytest.param({**CREATED, "session": {**CREATED["session"], "cost": 0.42}}, id="session-field"),
    pytest.param(
        {**CREATED, "session": {**CREATED["session"], "artifact": {"recordingUrl": "x"}}},
        id="session-object",
    ),
    pytest.param({**CREATED, "type": "session.expired"}, id="expired-with-commandId"),
]


@pytest.mark.parametrize("event", ADDED_FIELDS)
def test_events_are_open_for_additions_commands_are_not(event: dict[str, Any]) -> None:
    # A later minor version may add fields (Vapi's Session already has cost, costs, artifact):
    # the published schema accepts them, so a consumer validating events does not break.
    assert validator(EVENTS.file_name).is_valid(event)
    # The worker's own decoder stays strict: it describes exactly what this version writes.
    with pytest.raises(msgspec.ValidationError):
        event_decoder.decode(msgspec.json.encode(event))


def test_a_command_with_an_added_field_is_refused_by_the_schema() -> None:
    command = {
        "type": "session.delete",
        "commandId": "c-1",
        "orgId": "org-42",
        "sessionId": "s-1",
        "priority": "high",
    }
    assert not validator(COMMANDS.file_name).is_valid(command)
    assert validator(COMMANDS.file_name).is_valid(
        {k: v for k, v in command.items() if k != "priority"}
    )
