"""Every payload and envelope rule of the contract, through the real decoder boundary.

Each rule is accepted at its limit and rejected just past it, with the rejection's code and the
exact JSON path. Limits are Vapi's (``vapi-sessions.openapi.json``: CreateSessionDTO,
UpdateSessionDTO, the five message types, ToolCall, CreateCustomerDTO,
ImportTwilioPhoneNumberDTO) and the public contract's (envelope ids, key, size).
"""

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from contracts.commands import Command, DeleteSession
from contracts.decoding import Decoded, Ids, Undecodable, decode_record
from contracts.payloads import CreateSessionDTO, UpdateSessionDTO

SID = "5b0c7c5e-4f59-4f4e-9d0a-3b8f0f6e2a11"
CID = "c-7f3a"
OID = "org-42"
MAX_BYTES = 1_000_000
ABSENT: Any = object()  # marks a field left out of the record

BOTH_KINDS = pytest.mark.parametrize("kind", ["session.create", "session.update"])

# --- helpers ------------------------------------------------------------------------------


def command(
    kind: str = "session.create",
    payload: Any = ABSENT,
    *,
    command_id: Any = CID,
    org_id: Any = OID,
    session_id: Any = SID,
) -> dict[str, Any]:
    """A command document; `ABSENT` leaves a field out."""
    doc = {"commandId": command_id, "type": kind, "orgId": org_id, "sessionId": session_id}
    if payload is not ABSENT:
        doc["payload"] = payload
    return {name: value for name, value in doc.items() if value is not ABSENT}


def decode(doc: Any, key: bytes | None = SID.encode()) -> Decoded | Undecodable:
    value = doc if isinstance(doc, bytes) else msgspec.json.encode(doc)
    return decode_record(key, value, MAX_BYTES)


def accepted(doc: Any, key: bytes | None = SID.encode()) -> Command:
    result = decode(doc, key)
    assert isinstance(result, Decoded), result
    return result.command


def rejected(doc: Any, key: bytes | None = SID.encode()) -> Undecodable:
    result = decode(doc, key)
    assert isinstance(result, Undecodable), result
    return result


def assert_invalid_at(doc: Any, path: str) -> Undecodable:
    result = rejected(doc)
    assert (result.rejection.code, result.rejection.path) == ("invalid", path), result.rejection
    return result


def payload_struct(cmd: Command) -> CreateSessionDTO | UpdateSessionDTO:
    assert not isinstance(cmd, DeleteSession), cmd
    return cmd.payload


def payload_of(cmd: Command) -> dict[str, Any]:
    """The decoded payload as JSON builtins: equal to the input when nothing was lost."""
    built: dict[str, Any] = msgspec.to_builtins(payload_struct(cmd))
    return built


def without(doc: dict[str, Any], field: str) -> dict[str, Any]:
    return {name: value for name, value in doc.items() if name != field}


# --- session payload rules shared by create and update --------------------------------------

MESSAGES: dict[str, dict[str, Any]] = {  # each role with exactly its required fields
    "system": {"role": "system", "message": "be brief", "time": 1, "secondsFromStart": 0},
    "user": {"role": "user", "message": "hi", "time": 1, "endTime": 2.5, "secondsFromStart": 0.5},
    "assistant": {"role": "assistant"},
    "tool": {"role": "tool", "content": "42", "tool_call_id": "call-1"},
    "developer": {"role": "developer", "content": "note"},
}
FULL_MESSAGES: dict[str, dict[str, Any]] = {  # each role with every optional field too
    "system": MESSAGES["system"],
    "user": {
        **MESSAGES["user"],
        "duration": 1.5,
        "isFiltered": False,
        "detectedThreats": ["prompt-injection"],
        "originalMessage": "hi!",
        "metadata": {"any": {"nested": [1, None]}},
        "speakerLabel": "caller",
    },
    "assistant": {
        "role": "assistant",
        "content": "checking",
        "refusal": "no",
        "tool_calls": [
            {"id": "call-1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
        "name": "helper",
        "metadata": {"k": "v"},
    },
    "tool": {**MESSAGES["tool"], "name": "lookup", "metadata": {}},
    "developer": {**MESSAGES["developer"], "name": "dev", "metadata": {}},
}
REQUIRED = {
    "system": ("message", "time", "secondsFromStart"),
    "user": ("message", "time", "endTime", "secondsFromStart"),
    "assistant": (),
    "tool": ("content", "tool_call_id"),
    "developer": ("content",),
}
NAMED_ROLES = ("assistant", "tool", "developer")  # roles with `name` and `content` limits
FIRST = MESSAGES["system"]  # put before the message under test, so the path shows index 1


def tool_call(**function: Any) -> dict[str, Any]:
    return {
        "id": "call-1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"} | function,
    }


def assistant_with(*calls: object) -> dict[str, Any]:
    return {"role": "assistant", "tool_calls": list(calls)}


SHARED_ACCEPTED = [
    pytest.param({}, id="empty"),
    pytest.param({"name": ""}, id="name-0"),
    pytest.param({"name": "n" * 40}, id="name-40"),
    pytest.param({"name": "é" * 40}, id="name-40-non-ascii"),
    pytest.param({"name": "😀" * 40}, id="name-40-astral"),
    pytest.param({"status": "active"}, id="status-active"),
    pytest.param({"status": "completed"}, id="status-completed"),
    pytest.param({"expirationSeconds": 60}, id="expiration-60"),
    pytest.param({"expirationSeconds": 60.0}, id="expiration-60.0"),
    pytest.param({"expirationSeconds": 60.5}, id="expiration-60.5"),
    pytest.param({"expirationSeconds": 86_400}, id="expiration-86400"),
    pytest.param({"expirationSeconds": 2_592_000}, id="expiration-2592000"),
    pytest.param({"expirationSeconds": 2_592_000.0}, id="expiration-2592000.0"),
    pytest.param({"messages": []}, id="messages-empty"),
    pytest.param({"messages": list(MESSAGES.values())}, id="messages-all-roles"),
    *(pytest.param({"messages": [m]}, id=f"{role}-required-only") for role, m in MESSAGES.items()),
    *(
        pytest.param({"messages": [m]}, id=f"{role}-all-fields")
        for role, m in FULL_MESSAGES.items()
    ),
    *(
        pytest.param({"messages": [{**MESSAGES[role], "name": "n" * 40}]}, id=f"{role}-name-40")
        for role in NAMED_ROLES
    ),
    *(
        pytest.param(
            {"messages": [{**MESSAGES[role], "content": "c" * 10_000}]}, id=f"{role}-content-10000"
        )
        for role in NAMED_ROLES
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "refusal": "r" * 10_000}]}, id="assistant-refusal-10000"
    ),
    pytest.param({"messages": [assistant_with()]}, id="tool_calls-empty"),
    pytest.param({"messages": [assistant_with(tool_call(name="f" * 80))]}, id="function-name-80"),
    pytest.param({"messages": [assistant_with(tool_call(name=""))]}, id="function-name-0"),
    pytest.param(
        {"messages": [{**MESSAGES["user"], "time": 1.5, "endTime": 2, "secondsFromStart": -1}]},
        id="user-numbers-int-or-float",
    ),
]

SHARED_REJECTED = [
    # name: string, at most 40 characters
    pytest.param({"name": "n" * 41}, "$.payload.name", id="name-41"),
    pytest.param({"name": "é" * 41}, "$.payload.name", id="name-41-non-ascii"),
    pytest.param({"name": 5}, "$.payload.name", id="name-int"),
    pytest.param({"name": None}, "$.payload.name", id="name-null"),
    # status: enum
    pytest.param({"status": "deleted"}, "$.payload.status", id="status-unknown"),
    pytest.param({"status": "Active"}, "$.payload.status", id="status-wrong-case"),
    pytest.param({"status": ""}, "$.payload.status", id="status-empty"),
    pytest.param({"status": None}, "$.payload.status", id="status-null"),
    # expirationSeconds: a number, 60..2592000
    pytest.param({"expirationSeconds": 59}, "$.payload.expirationSeconds", id="expiration-59"),
    pytest.param({"expirationSeconds": 59.999}, "$.payload.expirationSeconds", id="exp-59.999"),
    pytest.param({"expirationSeconds": 2_592_001}, "$.payload.expirationSeconds", id="exp-2592001"),
    pytest.param(
        {"expirationSeconds": 2_592_000.5}, "$.payload.expirationSeconds", id="exp-2592000.5"
    ),
    pytest.param({"expirationSeconds": 0}, "$.payload.expirationSeconds", id="expiration-0"),
    pytest.param({"expirationSeconds": -1}, "$.payload.expirationSeconds", id="expiration--1"),
    pytest.param({"expirationSeconds": "3600"}, "$.payload.expirationSeconds", id="exp-string"),
    pytest.param({"expirationSeconds": True}, "$.payload.expirationSeconds", id="exp-true"),
    pytest.param({"expirationSeconds": None}, "$.payload.expirationSeconds", id="exp-null"),
    pytest.param({"expirationSeconds": 10**20}, "$.payload.expirationSeconds", id="exp-huge-int"),
    # messages: an array of role-tagged objects
    pytest.param({"messages": {}}, "$.payload.messages", id="messages-object"),
    pytest.param({"messages": None}, "$.payload.messages", id="messages-null"),
    pytest.param({"messages": [FIRST, "hi"]}, "$.payload.messages[1]", id="message-string"),
    pytest.param({"messages": [FIRST, {}]}, "$.payload.messages[1].role", id="role-missing"),
    pytest.param(
        {"messages": [FIRST, {"role": "bot"}]}, "$.payload.messages[1].role", id="role-unknown"
    ),
    pytest.param(
        {"messages": [FIRST, {**MESSAGES["user"], "role": "User"}]},
        "$.payload.messages[1].role",
        id="role-wrong-case",
    ),
    pytest.param(
        {"messages": [FIRST, {"role": 1}]}, "$.payload.messages[1].role", id="role-not-string"
    ),
    *(
        pytest.param(
            {"messages": [FIRST, without(MESSAGES[role], field)]},
            f"$.payload.messages[1].{field}",
            id=f"{role}-missing-{field}",
        )
        for role, fields in REQUIRED.items()
        for field in fields
    ),
    pytest.param(
        {"messages": [FIRST, {**MESSAGES["user"], "endTime": "2"}]},
        "$.payload.messages[1].endTime",
        id="user-endTime-string",
    ),
    pytest.param(
        {"messages": [FIRST, {**MESSAGES["system"], "time": True}]},
        "$.payload.messages[1].time",
        id="system-time-bool",
    ),
    pytest.param(
        {"messages": [FIRST, {**MESSAGES["user"], "detectedThreats": ["a", 1]}]},
        "$.payload.messages[1].detectedThreats[1]",
        id="user-detectedThreats-item",
    ),
    pytest.param(
        {"messages": [FIRST, {**MESSAGES["user"], "metadata": []}]},
        "$.payload.messages[1].metadata",
        id="user-metadata-not-object",
    ),
    pytest.param(
        {"messages": [FIRST, {**MESSAGES["user"], "isFiltered": "no"}]},
        "$.payload.messages[1].isFiltered",
        id="user-isFiltered-string",
    ),
    *(
        pytest.param(
            {"messages": [FIRST, {**MESSAGES[role], "name": "n" * 41}]},
            "$.payload.messages[1].name",
            id=f"{role}-name-41",
        )
        for role in NAMED_ROLES
    ),
    *(
        pytest.param(
            {"messages": [FIRST, {**MESSAGES[role], "content": "c" * 10_001}]},
            "$.payload.messages[1].content",
            id=f"{role}-content-10001",
        )
        for role in NAMED_ROLES
    ),
    pytest.param(
        {"messages": [FIRST, {"role": "assistant", "refusal": "r" * 10_001}]},
        "$.payload.messages[1].refusal",
        id="assistant-refusal-10001",
    ),
    pytest.param(
        {"messages": [FIRST, {"role": "tool", "content": "c", "tool_call_id": 1}]},
        "$.payload.messages[1].tool_call_id",
        id="tool-call-id-int",
    ),
    # ToolCall: id, type, function required; function: name (<= 80) and arguments required
    pytest.param(
        {"messages": [FIRST, assistant_with(tool_call(), tool_call(name="f" * 81))]},
        "$.payload.messages[1].tool_calls[1].function.name",
        id="function-name-81",
    ),
    *(
        pytest.param(
            {"messages": [FIRST, assistant_with(without(tool_call(), field))]},
            f"$.payload.messages[1].tool_calls[0].{field}",
            id=f"tool_call-missing-{field}",
        )
        for field in ("id", "type", "function")
    ),
    *(
        pytest.param(
            {
                "messages": [
                    FIRST,
                    assistant_with(
                        {**tool_call(), "function": without(tool_call()["function"], field)}
                    ),
                ]
            },
            f"$.payload.messages[1].tool_calls[0].function.{field}",
            id=f"function-missing-{field}",
        )
        for field in ("name", "arguments")
    ),
    pytest.param(
        {"messages": [FIRST, assistant_with("call-1")]},
        "$.payload.messages[1].tool_calls[0]",
        id="tool_call-not-object",
    ),
    pytest.param(
        {"messages": [FIRST, {"role": "assistant", "tool_calls": {}}]},
        "$.payload.messages[1].tool_calls",
        id="tool_calls-not-array",
    ),
]


@BOTH_KINDS
@pytest.mark.parametrize("payload", SHARED_ACCEPTED)
def test_shared_payload_accepted_and_kept(kind: str, payload: dict[str, Any]) -> None:
    assert payload_of(accepted(command(kind, payload))) == payload


@BOTH_KINDS
@pytest.mark.parametrize(("payload", "path"), SHARED_REJECTED)
def test_shared_payload_rejected(kind: str, payload: dict[str, Any], path: str) -> None:
    assert_invalid_at(command(kind, payload), path)


@BOTH_KINDS
def test_expiration_absent_is_left_for_the_default(kind: str) -> None:
    payload = payload_struct(accepted(command(kind, {"name": "no expiry given"})))
    assert payload.expiration_seconds is msgspec.UNSET


@BOTH_KINDS
@pytest.mark.parametrize(("given", "kept"), [(3600, int), (3600.0, float), (60.5, float)])
def test_expiration_keeps_its_number_class(kind: str, given: float, kept: type) -> None:
    value = payload_struct(accepted(command(kind, {"expirationSeconds": given}))).expiration_seconds
    assert type(value) is kept
    assert value == given


# --- create-only rules: customer, phone number, opaque configurations ----------------------

PHONE = {"twilioAccountSid": "AC123", "twilioPhoneNumber": "+14155550101"}
NESTED: dict[str, Any] = {  # unknown and nested keys of every JSON kind
    "provider": "openai",
    "x-not-in-any-schema": {"deeper": {"list": [1, 2.5, None, True, "s", {"k": []}]}},
    "credentials": [{"provider": "x", "apiKey": "not-inspected-here"}],
    "": "empty key",
    "ünïcode": "☎",
    "big": 12345678901234567890,
    "neg": -0.25,
}

CREATE_ACCEPTED = [
    pytest.param({"assistantId": "asst-1", "squadId": "sq-1"}, id="ids"),
    pytest.param({"customerId": "cu-1", "phoneNumberId": "pn-1"}, id="ref-ids"),
    pytest.param({"customer": {}}, id="customer-empty"),
    pytest.param({"customer": {"number": "123"}}, id="customer-number-3"),
    pytest.param({"customer": {"number": "1" * 40}}, id="customer-number-40"),
    pytest.param({"customer": {"extension": "1" * 10}}, id="customer-extension-10"),
    *(
        pytest.param({"customer": {field: "x" * 40}}, id=f"customer-{field}-40")
        for field in ("name", "email", "externalId")
    ),
    pytest.param(
        {"customer": {"numberE164CheckEnabled": False, "sipUri": "sip:a@b", "extension": ""}},
        id="customer-other-fields",
    ),
    pytest.param({"phoneNumber": PHONE}, id="phone-required-only"),
    pytest.param({"phoneNumber": {**PHONE, "name": "p" * 40}}, id="phone-name-40"),
    pytest.param(
        {
            "phoneNumber": {
                **PHONE,
                "smsEnabled": False,
                "twilioApiKey": "SK1",
                "assistantId": "a",
                "workflowId": "w",
                "squadId": "s",
                "hooks": [],
            }
        },
        id="phone-other-fields",
    ),
]

CREATE_REJECTED = [
    pytest.param({"customer": {"number": "12"}}, "$.payload.customer.number", id="cust-number-2"),
    pytest.param(
        {"customer": {"number": "1" * 41}}, "$.payload.customer.number", id="cust-number-41"
    ),
    pytest.param(
        {"customer": {"extension": "1" * 11}}, "$.payload.customer.extension", id="cust-ext-11"
    ),
    *(
        pytest.param(
            {"customer": {field: "x" * 41}}, f"$.payload.customer.{field}", id=f"cust-{field}-41"
        )
        for field in ("name", "email", "externalId")
    ),
    pytest.param(
        {"customer": {"numberE164CheckEnabled": "yes"}},
        "$.payload.customer.numberE164CheckEnabled",
        id="cust-e164-string",
    ),
    pytest.param({"customer": "+14155550100"}, "$.payload.customer", id="customer-string"),
    pytest.param({"customer": None}, "$.payload.customer", id="customer-null"),
    *(
        pytest.param(
            {"phoneNumber": without(PHONE, field)},
            f"$.payload.phoneNumber.{field}",
            id=f"phone-missing-{field}",
        )
        for field in PHONE
    ),
    pytest.param({"phoneNumber": {}}, "$.payload.phoneNumber.twilioAccountSid", id="phone-empty"),
    pytest.param(
        {"phoneNumber": {**PHONE, "name": "p" * 41}}, "$.payload.phoneNumber.name", id="phone-41"
    ),
    pytest.param(
        {"phoneNumber": {**PHONE, "twilioAccountSid": None}},
        "$.payload.phoneNumber.twilioAccountSid",
        id="phone-sid-null",
    ),
    pytest.param(
        {"phoneNumber": {**PHONE, "smsEnabled": 1}},
        "$.payload.phoneNumber.smsEnabled",
        id="phone-smsEnabled-int",
    ),
    pytest.param({"phoneNumber": []}, "$.payload.phoneNumber", id="phone-array"),
    pytest.param({"assistantId": 1}, "$.payload.assistantId", id="assistantId-int"),
    pytest.param({"customerId": None}, "$.payload.customerId", id="customerId-null"),
]

# Where opaque configurations sit in a create payload: (payload with a value there, path).
OPAQUE_SITES: dict[str, tuple[Callable[[object], dict[str, Any]], str]] = {
    "assistant": (lambda v: {"assistant": v}, "$.payload.assistant"),
    "assistantOverrides": (lambda v: {"assistantOverrides": v}, "$.payload.assistantOverrides"),
    "squad": (lambda v: {"squad": v}, "$.payload.squad"),
    "customer.assistantOverrides": (
        lambda v: {"customer": {"assistantOverrides": v}},
        "$.payload.customer.assistantOverrides",
    ),
    "phoneNumber.server": (
        lambda v: {"phoneNumber": {**PHONE, "server": v}},
        "$.payload.phoneNumber.server",
    ),
    "phoneNumber.fallbackDestination": (
        lambda v: {"phoneNumber": {**PHONE, "fallbackDestination": v}},
        "$.payload.phoneNumber.fallbackDestination",
    ),
    "phoneNumber.hooks-item": (
        lambda v: {"phoneNumber": {**PHONE, "hooks": [{"on": "call.ringing"}, v]}},
        "$.payload.phoneNumber.hooks[1]",
    ),
}
NOT_OBJECTS = [
    pytest.param([], id="array"),
    pytest.param("config", id="string"),
    pytest.param(1, id="number"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("payload", CREATE_ACCEPTED)
def test_create_payload_accepted_and_kept(payload: dict[str, Any]) -> None:
    assert payload_of(accepted(command("session.create", payload))) == payload


@pytest.mark.parametrize(("payload", "path"), CREATE_REJECTED)
def test_create_payload_rejected(payload: dict[str, Any], path: str) -> None:
    assert_invalid_at(command("session.create", payload), path)


@pytest.mark.parametrize("site", OPAQUE_SITES)
def test_opaque_config_kept_verbatim(site: str) -> None:
    build, _ = OPAQUE_SITES[site]
    payload = build(NESTED)
    assert payload_of(accepted(command("session.create", payload))) == payload


@pytest.mark.parametrize("site", OPAQUE_SITES)
@pytest.mark.parametrize("value", NOT_OBJECTS)
def test_opaque_config_must_be_an_object(site: str, value: object) -> None:
    build, path = OPAQUE_SITES[site]
    assert_invalid_at(command("session.create", build(value)), path)


def test_hooks_must_be_an_array() -> None:
    payload = {"phoneNumber": {**PHONE, "hooks": {"on": "call.ringing"}}}
    assert_invalid_at(command("session.create", payload), "$.payload.phoneNumber.hooks")


# --- unknown fields in typed objects --------------------------------------------------------

# (document, path of the object holding the field, the unknown field's name)
UNKNOWN_FIELDS = [
    pytest.param(command(payload={"assistantID": "a"}), "$.payload", "assistantID", id="create"),
    pytest.param(
        command(payload={"expiration_seconds": 60}), "$.payload", "expiration_seconds", id="snake"
    ),
    *(
        pytest.param(
            command("session.update", {field: value}),
            "$.payload",
            field,
            id=f"update-{field}-not-updatable",
        )
        for field, value in [
            ("assistantId", "asst-1"),
            ("assistant", {}),
            ("assistantOverrides", {}),
            ("squadId", "sq-1"),
            ("squad", {}),
            ("customer", {}),
            ("customerId", "cu-1"),
            ("phoneNumberId", "pn-1"),
            ("phoneNumber", PHONE),
            ("id", SID),
            ("orgId", OID),
        ]
    ),
    pytest.param({**command(payload={}), "extra": 1}, "$", "extra", id="envelope"),
    pytest.param(command("session.delete", {}), "$", "payload", id="delete-with-payload"),
    pytest.param(command("session.delete", None), "$", "payload", id="delete-with-null-payload"),
    pytest.param(
        command(payload={"customer": {"phone": "1"}}), "$.payload.customer", "phone", id="customer"
    ),
    pytest.param(
        command(payload={"phoneNumber": {**PHONE, "twilioSid": "x"}}),
        "$.payload.phoneNumber",
        "twilioSid",
        id="phone",
    ),
    pytest.param(
        command(payload={"messages": [FIRST, {**MESSAGES["system"], "name": "n"}]}),
        "$.payload.messages[1]",
        "name",
        id="system-message-name",
    ),
    pytest.param(
        command(payload={"messages": [FIRST, {**MESSAGES["user"], "content": "c"}]}),
        "$.payload.messages[1]",
        "content",
        id="user-message-content",
    ),
    pytest.param(
        command(payload={"messages": [FIRST, {"role": "assistant", "toolCalls": []}]}),
        "$.payload.messages[1]",
        "toolCalls",
        id="assistant-camel-toolCalls",
    ),
    pytest.param(
        command(payload={"messages": [FIRST, {**MESSAGES["tool"], "toolCallId": "x"}]}),
        "$.payload.messages[1]",
        "toolCallId",
        id="tool-camel-toolCallId",
    ),
    pytest.param(
        command(payload={"messages": [FIRST, {**MESSAGES["developer"], "message": "m"}]}),
        "$.payload.messages[1]",
        "message",
        id="developer-message",
    ),
    pytest.param(
        command(payload={"messages": [FIRST, assistant_with({**tool_call(), "index": 0})]}),
        "$.payload.messages[1].tool_calls[0]",
        "index",
        id="tool_call",
    ),
    pytest.param(
        command(payload={"messages": [FIRST, assistant_with(tool_call(strict=True))]}),
        "$.payload.messages[1].tool_calls[0].function",
        "strict",
        id="function",
    ),
]


@pytest.mark.parametrize(("doc", "holder", "field"), UNKNOWN_FIELDS)
def test_unknown_field_rejected(doc: dict[str, Any], holder: str, field: str) -> None:
    rejection = rejected(doc).rejection
    assert rejection.code == "invalid"
    assert f"unknown field `{field}`" in rejection.message
    assert rejection.path in (holder, f"{holder}.{field}")


@pytest.mark.parametrize(("doc", "holder", "field"), UNKNOWN_FIELDS)
def test_unknown_field_path_names_the_field(doc: dict[str, Any], holder: str, field: str) -> None:
    assert_invalid_at(doc, f"{holder}.{field}")


# --- envelope: ids, type, payload presence --------------------------------------------------

ID_FIELDS = {"commandId": "command_id", "orgId": "org_id", "sessionId": "session_id"}
GOOD_IDS = [
    pytest.param("a", id="1-char"),
    pytest.param("i" * 128, id="128-chars"),
    pytest.param("!\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az|~", id="all-punctuation"),
    pytest.param("5b0c7c5e-4f59-4f4e-9d0a-3b8f0f6e2a11", id="uuid"),
]
BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param("i" * 129, id="129-chars"),
    pytest.param("a b", id="space"),
    pytest.param(" a", id="leading-space"),
    pytest.param("{a}", id="braces"),
    pytest.param("a{", id="open-brace"),
    pytest.param("a}", id="close-brace"),
    pytest.param("a\n", id="trailing-newline"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\x00", id="nul"),
    pytest.param("a\x7f", id="del"),
    pytest.param("a\u0085", id="c1-control"),
    pytest.param("sé", id="non-ascii"),
    pytest.param(5, id="int"),
    pytest.param(None, id="null"),
    pytest.param(["a"], id="array"),
]


def with_id(field: str, value: Any) -> tuple[dict[str, Any], bytes | None]:
    """A delete with one id replaced, and the record key that matches its sessionId."""
    doc = {**command("session.delete"), field: value}
    key = doc.get("sessionId")
    return doc, key.encode() if isinstance(key, str) else SID.encode()


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("value", GOOD_IDS)
def test_id_accepted(field: str, value: str) -> None:
    doc, key = with_id(field, value)
    assert getattr(accepted(doc, key), ID_FIELDS[field]) == value


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("value", BAD_IDS)
def test_id_rejected(field: str, value: object) -> None:
    doc, key = with_id(field, value)
    result = rejected(doc, key)
    assert (result.rejection.code, result.rejection.path) == ("invalid", f"$.{field}")
    assert getattr(result.ids, ID_FIELDS[field]) is None  # a bad id is never echoed
    if isinstance(value, str) and value:
        assert value not in result.rejection.message


@pytest.mark.parametrize("field", ID_FIELDS)
def test_id_required(field: str) -> None:
    assert_invalid_at(without(command("session.delete"), field), f"$.{field}")


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        pytest.param("session.bogus", "unsupported", id="unknown"),
        pytest.param("session.Create", "unsupported", id="wrong-case"),
        pytest.param("session.created", "unsupported", id="an-event-type"),
        pytest.param("", "unsupported", id="empty"),
        pytest.param(ABSENT, "invalid", id="missing"),
        pytest.param(None, "invalid", id="null"),
        pytest.param(1, "invalid", id="int"),
        pytest.param(["session.create"], "invalid", id="array"),
    ],
)
def test_type_rule(kind: Any, code: str) -> None:
    result = rejected(command(kind, {}))
    assert (result.rejection.code, result.rejection.path) == (code, "$.type")
    assert result.ids == Ids(CID, OID, SID)


@pytest.mark.parametrize("kind", ["session.create", "session.update", "session.delete"])
def test_each_command_type_accepted(kind: str) -> None:
    cmd = accepted(command(kind, ABSENT if kind == "session.delete" else {}))
    assert (cmd.command_id, cmd.org_id, cmd.session_id) == (CID, OID, SID)


@BOTH_KINDS
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(ABSENT, id="missing"),
        pytest.param(None, id="null"),
        pytest.param([], id="array"),
        pytest.param("name", id="string"),
    ],
)
def test_payload_must_be_an_object(kind: str, payload: Any) -> None:
    assert_invalid_at(command(kind, payload), "$.payload")


# --- record key, size, and bytes that are not a command -------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(None, id="no-key"),
        pytest.param(b"", id="empty-key"),
        pytest.param(b"another-session", id="other-session"),
        pytest.param(SID.upper().encode(), id="different-case"),
        pytest.param(SID.encode() + b"\n", id="trailing-newline"),
        pytest.param(b"\xff" + SID.encode(), id="not-utf8"),
    ],
)
def test_key_must_equal_session_id(key: bytes | None) -> None:
    result = rejected(command("session.delete"), key)
    assert (result.rejection.code, result.rejection.path) == ("invalid", "$.sessionId")
    assert result.ids == Ids(CID, OID, SID)


def test_size_limit() -> None:
    value = msgspec.json.encode(command("session.create", {"name": "x"}))
    padded = value[:-1] + b" " * 10 + value[-1:]  # whitespace is part of the record size
    assert isinstance(decode_record(SID.encode(), padded, len(padded)), Decoded)

    result = decode_record(SID.encode(), padded, len(padded) - 1)
    assert isinstance(result, Undecodable)
    assert (result.rejection.code, result.rejection.path) == ("too_large", None)
    assert result.ids == Ids()  # not parsed at all


def test_too_large_is_not_parsed() -> None:
    result = decode_record(SID.encode(), b"\xff not json" * 100, 10)
    assert isinstance(result, Undecodable)
    assert result.rejection.code == "too_large"


VALID = msgspec.json.encode(command("session.create", {"name": "x"}))
WITH_EXPIRATION = VALID.replace(b'"name":"x"', b'"expirationSeconds":%s')

MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="whitespace"),
    pytest.param(b"{", id="truncated"),
    pytest.param(VALID[:-1], id="missing-brace"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"{'commandId': 'c'}", id="single-quotes"),
    pytest.param(VALID.replace(b"}}", b"},}"), id="trailing-comma"),
    pytest.param(VALID + b" x", id="trailing-bytes"),
    pytest.param(VALID + VALID, id="two-documents"),
    pytest.param(VALID + b"\x00", id="trailing-nul"),
    pytest.param(WITH_EXPIRATION % b"NaN", id="NaN"),
    pytest.param(WITH_EXPIRATION % b"Infinity", id="Infinity"),
    pytest.param(WITH_EXPIRATION % b"-Infinity", id="-Infinity"),
    pytest.param(b"\xef\xbb\xbf" + VALID, id="utf8-bom"),
    pytest.param(b"\xff" + VALID, id="invalid-utf8-outside-string"),
    pytest.param(VALID.replace(b'"x"', b'"\\ud800"'), id="lone-surrogate-escape"),
    pytest.param(VALID.replace(b'"x"', b'"\xff"'), id="invalid-utf8-in-value"),
    pytest.param(
        VALID.replace(b'"x"', b'"\xed\xa0\x80"'),
        id="utf8-encoded-surrogate",
    ),
    pytest.param(VALID.replace(b'"name"', b'"n\xc3"'), id="invalid-utf8-in-key"),
    pytest.param(VALID.replace(CID.encode(), b"c-\xe9"), id="latin1-in-commandId"),
]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_record_is_invalid(value: bytes) -> None:
    result = decode(value)
    assert isinstance(result, Undecodable), result
    assert result.rejection.code == "invalid"
    assert result.ids == Ids()


def test_number_out_of_range_is_invalid() -> None:
    result = decode(WITH_EXPIRATION % b"1e400")
    assert isinstance(result, Undecodable), result
    assert (result.rejection.code, result.rejection.path) == (
        "invalid",
        "$.payload.expirationSeconds",
    )


def test_tombstone_is_invalid() -> None:
    result = decode_record(SID.encode(), None, MAX_BYTES)
    assert isinstance(result, Undecodable)
    assert result.rejection.code == "invalid"
    assert result.ids == Ids()


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param([], id="array"),
        pytest.param("session.create", id="string"),
        pytest.param(1, id="number"),
        pytest.param(None, id="null"),
    ],
)
def test_document_must_be_an_object(doc: object) -> None:
    result = assert_invalid_at(doc, "$")
    assert result.ids == Ids()


# --- ids carried by rejections --------------------------------------------------------------


def test_rejection_carries_every_readable_id() -> None:
    result = assert_invalid_at(command(payload={"name": "n" * 41}), "$.payload.name")
    assert result.ids == Ids(CID, OID, SID)


def test_rejection_carries_only_the_valid_ids() -> None:
    doc = command(payload={"name": "n" * 41}, command_id="c 1", org_id=OID, session_id="s{1}")
    result = rejected(doc, b"s{1}")
    assert result.ids == Ids(None, OID, None)


def test_rejection_carries_ids_of_a_command_missing_its_type() -> None:
    result = assert_invalid_at(command(ABSENT, {}), "$.type")
    assert result.ids == Ids(CID, OID, SID)


def test_rejection_reads_no_ids_when_absent() -> None:
    result = assert_invalid_at({"type": "session.delete"}, "$.commandId")
    assert result.ids == Ids()
