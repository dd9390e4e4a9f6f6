"""Turns a command record into a `Command` or a `Rejection`; decode errors stop here.

Decoding happens once per record, with the module-level msgspec decoder. Only the error path does
extra work: it reads what ids it can for the rejection event and tells an unknown `type` apart
from a malformed command.
"""

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from contracts.commands import COMMAND_TYPES, Command, command_decoder
from worker.errors import Rejection

_PATH = re.compile(r" - at `(\$[^`]*)`$")
# msgspec names the object, not the field, for these two; the path should end at the field.
_FIELD_ERROR = re.compile(r"Object (?:missing required|contains unknown) field `([^`]+)`")
MESSAGE_MAX_CHARS = 300  # a rejection explains; it does not carry the record back


@dataclass(frozen=True, slots=True)
class Ids:
    """Whatever ids a rejected record carried, for the rejection event."""

    command_id: str | None = None
    org_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    command: Command


@dataclass(frozen=True, slots=True)
class Undecodable:
    rejection: Rejection
    ids: Ids


def decode_record(key: bytes | None, value: bytes | None, max_bytes: int) -> Decoded | Undecodable:
    if value is None:
        return Undecodable(Rejection("invalid", "record has no value (tombstone)", "$"), Ids())
    if len(value) > max_bytes:
        # Not parsed at all: a huge record costs no CPU beyond its arrival.
        return Undecodable(
            Rejection("too_large", f"record value is {len(value)} bytes, limit {max_bytes}"),
            Ids(),
        )
    try:
        command = command_decoder.decode(value)
    except msgspec.ValidationError as exc:
        return Undecodable(_validation_rejection(str(exc), value), _read_ids(value))
    except msgspec.DecodeError as exc:
        return Undecodable(Rejection("invalid", _printable(str(exc)), "$"), Ids())
    except UnicodeDecodeError:
        return Undecodable(Rejection("invalid", "record value is not valid UTF-8", "$"), Ids())
    key_text = _key_text(key)
    if key_text != command.session_id:
        shown = "no key" if key_text is None else "a different key"
        return Undecodable(
            Rejection(
                "invalid", f"record has {shown}; the key must equal sessionId", "$.sessionId"
            ),
            Ids(command.command_id, command.org_id, command.session_id),
        )
    return Decoded(command)


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _validation_rejection(message: str, value: bytes) -> Rejection:
    match = _PATH.search(message)
    path = match.group(1) if match else "$"
    text = message[: match.start()] if match else message
    named = _FIELD_ERROR.fullmatch(text)
    if named:
        path = f"{path}.{named.group(1)}"
    if path == "$.type":
        kind = _read_type(value)
        if isinstance(kind, str) and kind not in COMMAND_TYPES:
            return Rejection(
                "unsupported",
                f"unknown command type; expected one of {', '.join(sorted(COMMAND_TYPES))}",
                "$.type",
            )
    return Rejection("invalid", _printable(text), path)


def _generic(value: bytes) -> Any:
    try:
        return msgspec.json.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def _printable(message: str) -> str:
    """msgspec quotes offending enum and tag values: keep them short and free of control
    characters, so a hostile record cannot write into logs or headers through its rejection."""
    clean = "".join(c if c.isprintable() else "?" for c in message)
    if len(clean) > MESSAGE_MAX_CHARS:
        clean = clean[: MESSAGE_MAX_CHARS - 3] + "..."
    return clean


def _read_type(value: bytes) -> object:
    doc = _generic(value)
    return doc.get("type") if isinstance(doc, dict) else None


def _read_ids(value: bytes) -> Ids:
    doc = _generic(value)
    if not isinstance(doc, dict):
        return Ids()

    def text(name: str) -> str | None:
        item = doc.get(name)
        # Only ids that would themselves be valid are echoed: a rejection must not carry
        # arbitrary text from a hostile record.
        if isinstance(item, str) and _VALID_ID.fullmatch(item):
            return item
        return None

    return Ids(text("commandId"), text("orgId"), text("sessionId"))


_VALID_ID = re.compile(r"[!-z|~]{1,128}")
