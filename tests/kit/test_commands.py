"""encode_command: the record the worker expects, or the worker's own rejection, before Kafka."""

import json
from typing import Any

import msgspec
import pytest

from contracts.commands import CreateSession, DeleteSession, UpdateSession
from contracts.decoding import Decoded, Undecodable, decode_record
from contracts.fields import MAX_NESTING_DEPTH, MESSAGES_MAX_ITEMS
from contracts.messages import DeveloperMessage, UserMessage
from contracts.payloads import CreateSessionDTO, UpdateSessionDTO
from session_client import CommandPublisher, InvalidCommandError, encode_command, new_command_id


def create(**payload: Any) -> CreateSession:
    return CreateSession(
        command_id="c-1", org_id="org-42", session_id="s-1", payload=CreateSessionDTO(**payload)
    )


def test_a_valid_command_becomes_its_record() -> None:
    command = create(name="Support chat", expiration_seconds=3600, assistant_id="asst-1")
    record = encode_command(command)
    assert record.key == b"s-1"
    assert dict(record.headers) == {
        "content-type": b"application/json",
        "command-type": b"session.create",
    }
    assert record.command == command
    assert record.command_type == "session.create"
    assert json.loads(record.value) == {
        "type": "session.create",
        "commandId": "c-1",
        "orgId": "org-42",
        "sessionId": "s-1",
        "payload": {"name": "Support chat", "expirationSeconds": 3600, "assistantId": "asst-1"},
    }
    assert isinstance(decode_record(record.key, record.value, 1 << 20), Decoded)


def test_every_command_type_and_a_fresh_id() -> None:
    ids = {new_command_id() for _ in range(3)}
    assert len(ids) == 3
    update = UpdateSession(
        command_id=ids.pop(), org_id="o", session_id="s", payload=UpdateSessionDTO(name="n")
    )
    delete = DeleteSession(command_id=ids.pop(), org_id="o", session_id="s")
    assert dict(encode_command(update).headers)["command-type"] == b"session.update"
    assert dict(encode_command(delete).headers)["command-type"] == b"session.delete"
    assert b"payload" not in encode_command(delete).value


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(depth):
        node = {"a": node}
    return node


USER = UserMessage(message="hi", time=1, end_time=2, seconds_from_start=0)
# (command, code, path, message): what the worker answers for each.
INVALID: dict[str, tuple[Any, str, str | None, str]] = {
    "name-41": (
        create(name="x" * 41),
        "invalid",
        "$.payload.name",
        "Expected `str` of length <= 40",
    ),
    "expiration-59": (
        create(expiration_seconds=59),
        "invalid",
        "$.payload.expirationSeconds",
        "Expected `int` >= 60",
    ),
    "expiration-as-text": (
        create(expiration_seconds="3600"),
        "invalid",
        "$.payload.expirationSeconds",
        "Expected `int | float`, got `str`",
    ),
    "status-unknown": (
        create(status="paused"),
        "invalid",
        "$.payload.status",
        "Invalid enum value",
    ),
    "id-with-space": (
        CreateSession(command_id="c 1", org_id="o", session_id="s", payload=CreateSessionDTO()),
        "invalid",
        "$.commandId",
        r"Expected `str` matching regex '^[!-z|~]+$(?!\\n)'",  # msgspec shows the repr
    ),
    "too-many-messages": (
        create(messages=[USER] * (MESSAGES_MAX_ITEMS + 1)),
        "invalid",
        "$.payload.messages",
        f"Expected `array` of length <= {MESSAGES_MAX_ITEMS}",
    ),
    "developer-content-missing": (
        create(messages=[DeveloperMessage(content=None)]),  # type: ignore[arg-type]
        "invalid",
        "$.payload.messages[0].content",
        "Expected `str`, got `null`",
    ),
    "too-deep": (
        create(assistant=nested(MAX_NESTING_DEPTH)),
        "invalid",
        "$",
        f"nesting deeper than {MAX_NESTING_DEPTH} levels",
    ),
}


@pytest.mark.parametrize(
    ("command", "code", "path", "message"), INVALID.values(), ids=INVALID.keys()
)
def test_an_invalid_command_raises_the_workers_rejection(
    command: Any, code: str, path: str | None, message: str
) -> None:
    with pytest.raises(InvalidCommandError) as raised:
        encode_command(command)
    error = raised.value
    assert (error.code, error.path, error.message) == (code, path, message)
    assert str(error) == f"{code} at {path}: {message}"
    # Exactly what the worker's decoder says about the same bytes.
    value = msgspec.json.encode(command)
    answer = decode_record(command.session_id.encode(), value, 1 << 20)
    assert isinstance(answer, Undecodable)
    assert answer.rejection == error.rejection
    assert isinstance(error, ValueError)


def test_the_record_limit_is_the_workers() -> None:
    command = create(assistant={"blob": "x" * 2000})
    encode_command(command)  # fits the default 1 MiB
    with pytest.raises(InvalidCommandError) as raised:
        encode_command(command, max_record_bytes=1000)
    assert raised.value.code == "too_large"
    assert raised.value.path is None
    assert raised.value.message.endswith("bytes, limit 1000")


def test_the_delivery_promise_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match="acks"):
        CommandPublisher("localhost:9092", acks=1)
    with pytest.raises(ValueError, match="enable_idempotence"):
        CommandPublisher("localhost:9092", enable_idempotence=False)


@pytest.mark.asyncio
async def test_publishing_needs_a_started_publisher() -> None:
    publisher = CommandPublisher("localhost:9092")
    with pytest.raises(RuntimeError, match="not started"):
        await publisher.publish(create())
    with pytest.raises(InvalidCommandError):  # checked before anything else
        await publisher.publish(create(name="x" * 41))
