"""AsyncAPI 3.0 document of the three topics, generated from the contract Structs.

``contracts/asyncapi.json`` is a checked-in copy, beside the JSON Schemas, for teams that read
AsyncAPI (code generators, catalogues, reviewers). ``python -m contracts.asyncapi write``
regenerates it, ``python -m contracts.asyncapi check`` fails when it is stale. Importing this
module does no I/O.

The payload schemas are msgspec's, as in ``contracts.schema``, with one change: msgspec writes
OpenAPI's ``discriminator`` object on tagged unions, while an AsyncAPI Schema Object's
``discriminator`` is a property *name* whose values are schema names, which ours are not
(``session.create`` is not ``CreateSession``). It is left out: every union member pins its tag
with a one-value ``enum``, so the choice stays unambiguous.

Topic names, header names and topic settings are the worker's defaults, repeated here because
``contracts`` imports nothing from ``worker``; a test (tests/kit/test_asyncapi.py) keeps them
equal.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import msgspec

from contracts.commands import Command
from contracts.events import CommandRejected, Event, RejectionCode
from contracts.fields import ID_PATTERN
from contracts.generated import write_or_check
from contracts.schema import open_for_additions
from contracts.wire import (
    COMMANDS_TOPIC,
    CONTENT_TYPE_JSON,
    CONTRACT_VERSION,
    DEAD_LETTER_TOPIC,
    EVENTS_TOPIC,
    HEADER_COMMAND_TYPE,
    HEADER_CONTENT_TYPE,
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_PATH,
    HEADER_EVENT_ID,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    MAX_MESSAGE_BYTES,
    RETENTION_MS,
)

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_PATH = Path(__file__).parent / "asyncapi.json"  # a path only; nothing is read at import

KAFKA_BINDING_VERSION = "0.5.0"
_SCHEMAS = "#/components/schemas/"


def _tag(struct: type[msgspec.Struct]) -> str:
    return str(struct.__struct_config__.tag)


def _message_key(struct: type[msgspec.Struct]) -> str:
    """`session.create` -> `sessionCreate`, a component name AsyncAPI accepts (no dots)."""
    head, _, tail = _tag(struct).partition(".")
    return head + tail[:1].upper() + tail[1:]


COMMAND_STRUCTS: tuple[type[msgspec.Struct], ...] = get_args(Command)
EVENT_STRUCTS: tuple[type[msgspec.Struct], ...] = get_args(Event)


def _is_openapi_discriminator(key: str, value: Any) -> bool:
    return key == "discriminator" and isinstance(value, dict) and "propertyName" in value


def _without_discriminators(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _without_discriminators(v)
            for k, v in node.items()
            if not _is_openapi_discriminator(k, v)
        }
    if isinstance(node, list):
        return [_without_discriminators(item) for item in node]
    return node


def _payload_schemas() -> dict[str, Any]:
    """Commands strict, events open for additions (see `contracts.schema`). A type both use
    (the messages, the customer) gets a second, open definition for events: `<Name>InEvent`."""
    _, commands = msgspec.json.schema_components(COMMAND_STRUCTS, ref_template=_SCHEMAS + "{name}")
    _, events = msgspec.json.schema_components(EVENT_STRUCTS, ref_template=_SCHEMAS + "{name}")
    renamed = {name: f"{name}InEvent" for name in commands.keys() & events.keys()}
    events = {
        renamed.get(name, name): open_for_additions(_with_refs_renamed(schema, renamed))
        for name, schema in events.items()
    }
    cleaned: dict[str, Any] = _without_discriminators({**commands, **events})
    return cleaned


def _with_refs_renamed(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                _SCHEMAS + renamed.get(v.removeprefix(_SCHEMAS), v.removeprefix(_SCHEMAS))
                if k == "$ref" and isinstance(v, str) and v.startswith(_SCHEMAS)
                else _with_refs_renamed(v, renamed)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_with_refs_renamed(item, renamed) for item in node]
    return node


def _string(description: str, **rules: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **rules}


def _header_schemas() -> dict[str, Any]:
    digits = {"pattern": "^[0-9]+$"}
    return {
        "CommandHeaders": {
            "title": "CommandHeaders",
            "description": (
                "Set by the client kit; optional for other producers. The worker reads the "
                "command type from the value and ignores headers."
            ),
            "type": "object",
            "properties": {
                HEADER_CONTENT_TYPE: _string("Media type of the value", enum=[CONTENT_TYPE_JSON]),
                HEADER_COMMAND_TYPE: _string(
                    "The value's `type`", enum=sorted(_tag(s) for s in COMMAND_STRUCTS)
                ),
            },
        },
        "DeadLetterHeaders": {
            "title": "DeadLetterHeaders",
            "description": (
                "Why the record was rejected and where it came from. UTF-8 text; never a "
                "payload value (no secrets)."
            ),
            "type": "object",
            "properties": {
                HEADER_ERROR_CODE: _string("Rejection code", enum=list(get_args(RejectionCode))),
                HEADER_ERROR_MESSAGE: _string(
                    "Why, at most 300 characters; never quotes the value", maxLength=300
                ),
                HEADER_ERROR_PATH: _string(
                    "JSON path of the offending value (`$` for undecodable JSON); absent for "
                    "`too_large`"
                ),
                HEADER_EVENT_ID: _string("eventId of the matching command.rejected event"),
                HEADER_SOURCE_TOPIC: _string("Topic the record was read from"),
                HEADER_SOURCE_PARTITION: _string("Its partition, in decimal", **digits),
                HEADER_SOURCE_OFFSET: _string("Its offset, in decimal", **digits),
            },
            "required": [
                HEADER_ERROR_CODE,
                HEADER_ERROR_MESSAGE,
                HEADER_SOURCE_TOPIC,
                HEADER_SOURCE_PARTITION,
                HEADER_SOURCE_OFFSET,
            ],
        },
    }


def _key_binding(description: str) -> dict[str, Any]:
    return {
        "kafka": {
            "key": {"type": "string", "description": description},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


SESSION_KEY = "sessionId, UTF-8: all records of one session share a partition, in order"
REJECTION_KEY = (
    "The sessionId if one could be read from the command, else the command record's key "
    "(may be absent)"
)


def _struct_message(
    struct: type[msgspec.Struct], *, headers: str | None = None, key: str = SESSION_KEY
) -> dict[str, Any]:
    doc = (struct.__doc__ or "").strip()
    message: dict[str, Any] = {
        "name": _tag(struct),
        "title": struct.__name__,
        "contentType": CONTENT_TYPE_JSON,
        "payload": {"$ref": _SCHEMAS + struct.__name__},
        "bindings": _key_binding(key),
    }
    if doc:
        message["summary"] = doc.splitlines()[0]
    if headers is not None:
        message["headers"] = {"$ref": _SCHEMAS + headers}
    return message


def _messages() -> dict[str, Any]:
    messages = {
        _message_key(s): _struct_message(s, headers="CommandHeaders") for s in COMMAND_STRUCTS
    }
    messages.update({_message_key(s): _struct_message(s) for s in EVENT_STRUCTS})
    messages[_message_key(CommandRejected)] = _struct_message(CommandRejected, key=REJECTION_KEY)
    messages["deadLetter"] = {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "A rejected command record, byte for byte, with why it was rejected",
        "description": (
            "The value is the original record value, unchanged (it may be malformed JSON, too "
            "large, or a valid command the worker refused); it is as sensitive as the commands "
            "topic. Each dead letter has a `command.rejected` event with the same reason."
        ),
        "headers": {"$ref": _SCHEMAS + "DeadLetterHeaders"},
        "payload": {"description": "The original record value, any bytes"},
        "bindings": _key_binding("The original record key, unchanged (may be absent)"),
    }
    return messages


def _channel(topic: str, title: str, description: str, messages: Sequence[str]) -> dict[str, Any]:
    return {
        "address": topic,
        "title": title,
        "description": description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
        "bindings": {
            "kafka": {
                "topicConfiguration": {
                    "cleanup.policy": ["delete"],
                    "retention.ms": RETENTION_MS[topic],
                    "max.message.bytes": MAX_MESSAGE_BYTES,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _operation(action: str, channel: str, summary: str, messages: Sequence[str]) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages],
    }


def build() -> dict[str, Any]:
    """The document as a dict, written from the session worker's point of view."""
    commands = [_message_key(s) for s in COMMAND_STRUCTS]
    events = [_message_key(s) for s in EVENT_STRUCTS]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Session worker",
            "version": CONTRACT_VERSION,
            "description": (
                "Upstream services publish session commands; the worker keeps each live session "
                "in Redis and publishes its lifecycle events. Every topic name is configurable "
                "(the addresses here are the defaults). Ids (`commandId`, `orgId`, `sessionId`) "
                f"match `{ID_PATTERN}`. Delivery is at least once: drop repeated `eventId`s, "
                "keep the highest `version` per session. Versioning rule: docs/clients.md."
            ),
        },
        "defaultContentType": CONTENT_TYPE_JSON,
        "servers": {
            "local": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "The default of KAFKA_BOOTSTRAP_SERVERS",
            }
        },
        "channels": {
            "commands": _channel(
                COMMANDS_TOPIC,
                "Session commands",
                "Commands for the worker, keyed by sessionId (the key must equal the value's "
                "`sessionId`). `commandId` is the idempotency key: a repeat is applied once.",
                commands,
            ),
            "events": _channel(
                EVENTS_TOPIC,
                "Session lifecycle events",
                "One event per applied command, expiry or rejection, keyed by sessionId (a "
                "rejection whose sessionId could not be read keeps the command record's key, "
                "which may be absent).",
                events,
            ),
            "deadLetters": _channel(
                DEAD_LETTER_TOPIC,
                "Rejected command records",
                "Every rejected command record, with error.* and source.* headers.",
                ["deadLetter"],
            ),
        },
        "operations": {
            "receiveCommands": _operation(
                "receive", "commands", "The worker consumes commands", commands
            ),
            "sendEvents": _operation("send", "events", "The worker publishes events", events),
            "sendDeadLetters": _operation(
                "send", "deadLetters", "The worker dead-letters rejected records", ["deadLetter"]
            ),
        },
        "components": {
            "schemas": {**_payload_schemas(), **_header_schemas()},
            "messages": _messages(),
        },
    }


def render() -> str:
    """The exact text of the checked-in file: two-space indent, keys in the order written (the
    AsyncAPI reading order), trailing newline."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def write(path: Path = DOCUMENT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8", newline="\n")
    return path


def is_stale(path: Path = DOCUMENT_PATH) -> bool:
    """Whether the file at `path` is missing or differs from what the Structs give."""
    try:
        return path.read_text(encoding="utf-8") != render()
    except FileNotFoundError:
        return True


def main(argv: Sequence[str] | None = None) -> int:
    return write_or_check(
        argv,
        module="contracts.asyncapi",
        what="the AsyncAPI document",
        option="path",
        default=DOCUMENT_PATH,
        write=lambda path: [write(path)],
        stale=lambda path: [path] if is_stale(path) else [],
        up_to_date="asyncapi.json is up to date",
    )


if __name__ == "__main__":
    raise SystemExit(main())
