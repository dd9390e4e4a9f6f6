"""Turns a command record into a `Command` or a `Rejection`; decode errors stop here.

Decoding happens once per record, with the module-level msgspec decoder. Two checks msgspec does
not make run on every record that decodes, each cheap unless the record is unusual:

- nesting depth (`MAX_NESTING_DEPTH`): opaque configuration is `dict[str, Any]`, so only this
  bounds how deep a record may go before the worker's own recursive code (redaction, encoding)
  would hit Python's recursion limit. msgspec itself raises `RecursionError` somewhere near 1000
  levels; that is caught and answered the same way.
- duplicate object keys: msgspec keeps the last of two equal keys, other parsers may keep the
  first, so a record such as `{"commandId": "a", ..., "commandId": "b"}` means different commands
  to different readers. Such a record is rejected with the path of the repeated key.

Only the error path does extra work: it reads what ids it can for the rejection event and tells
an unknown `type` apart from a malformed command.
"""

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from contracts.commands import COMMAND_TYPES, Command, command_decoder
from contracts.fields import MAX_NESTING_DEPTH
from contracts.json_guards import deeper_than, duplicate_key, encodes_only_keys_it_decoded, member
from contracts.rejection import Rejection

_PATH = re.compile(r" - at `(\$[^`]*)`$")
# msgspec names the object, not the field, for these two; the path should end at the field.
_FIELD_ERROR = re.compile(r"Object (?:missing required|contains unknown) field `([^`]+)`")
# msgspec quotes the offending value for enums and tags ("Invalid enum value 'x'"): a value in the
# wrong field may be a credential, so the rejection names the field (its path), never the value.
_ECHOED_VALUE = re.compile(r"(Invalid (?:enum )?value) .*", re.DOTALL)
MESSAGE_MAX_CHARS = 300  # a rejection explains; it does not carry the record back

TOO_DEEP = f"nesting deeper than {MAX_NESTING_DEPTH} levels"
DUPLICATE_KEY = "duplicate key in an object: JSON parsers disagree on which value counts"
UNREADABLE = "JSON that another parser reads differently"


class Ids(msgspec.Struct, frozen=True, gc=False):
    """Whatever ids a rejected record carried, for the rejection event."""

    command_id: str | None = None
    org_id: str | None = None
    session_id: str | None = None


class Decoded(msgspec.Struct, frozen=True, gc=False):
    command: Command


class Undecodable(msgspec.Struct, frozen=True, gc=False):
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
    except RecursionError:
        # msgspec gives up near Python's recursion limit, far deeper than the contract's.
        return Undecodable(Rejection("invalid", TOO_DEEP, "$"), Ids())
    if deeper_than(value, MAX_NESTING_DEPTH):
        return Undecodable(Rejection("invalid", TOO_DEEP, "$"), _ids_of(command))
    duplicate = duplicate_key(value, command if _COMMAND_KEYS_EXACT else None)
    if duplicate is not None:
        if not duplicate:
            return Undecodable(Rejection("invalid", UNREADABLE, "$"), Ids())
        # A key repeated at the top may be an id: echo none of them, that is the ambiguity.
        echoed = Ids() if len(duplicate) == 1 else _ids_of(command)
        return Undecodable(Rejection("invalid", DUPLICATE_KEY, "$" + "".join(duplicate)), echoed)
    key_text = _key_text(key)
    if key_text != command.session_id:
        shown = "no key" if key_text is None else "a different key"
        return Undecodable(
            Rejection(
                "invalid", f"record has {shown}; the key must equal sessionId", "$.sessionId"
            ),
            _ids_of(command),
        )
    return Decoded(command)


# Checked once: True for the contract as it is (a test says so), so the hot path re-encodes the
# decoded command instead of decoding the record a second time.
_COMMAND_KEYS_EXACT = encodes_only_keys_it_decoded(mi.type_info(Command))


def _ids_of(command: Command) -> Ids:
    return Ids(command.command_id, command.org_id, command.session_id)


# --- the error path --------------------------------------------------------------------------


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
        path += member(named.group(1))
    echoed = _ECHOED_VALUE.fullmatch(text)
    if echoed:
        text = echoed.group(1)
    if path == "$.type":
        kind = _read_head(value).type
        if isinstance(kind, str) and kind not in COMMAND_TYPES:
            return Rejection(
                "unsupported",
                f"unknown command type; expected one of {', '.join(sorted(COMMAND_TYPES))}",
                "$.type",
            )
    return Rejection("invalid", _printable(text), path)


def _printable(message: str) -> str:
    """Keep rejection messages short and free of control characters, so a hostile record
    cannot write into logs or headers through its rejection."""
    clean = "".join(c if c.isprintable() else "?" for c in message)
    if len(clean) > MESSAGE_MAX_CHARS:
        clean = clean[: MESSAGE_MAX_CHARS - 3] + "..."
    return clean


class _Head(msgspec.Struct, rename="camel"):
    """The top-level fields a rejection reports; everything else is skipped unread (so a number
    out of range or a wrong type elsewhere does not hide the ids)."""

    command_id: Any = None
    org_id: Any = None
    session_id: Any = None
    type: Any = None


_head_decoder = msgspec.json.Decoder(_Head)


def _read_head(value: bytes) -> _Head:
    try:
        return _head_decoder.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _Head()


def _read_ids(value: bytes) -> Ids:
    head = _read_head(value)

    def valid(item: object) -> str | None:
        # Only ids that would themselves be valid are echoed: a rejection must not carry
        # arbitrary text from a hostile record.
        if isinstance(item, str) and _VALID_ID.fullmatch(item):
            return item
        return None

    return Ids(valid(head.command_id), valid(head.org_id), valid(head.session_id))


_VALID_ID = re.compile(r"[!-z|~]{1,128}")
