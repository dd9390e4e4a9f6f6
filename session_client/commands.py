"""A command Struct to the exact record the worker expects, checked the way the worker checks it.

`encode_command` builds the value (msgspec JSON of the Struct), the key (its sessionId, UTF-8)
and the headers, then runs the value through `contracts.decoding.decode_record`: the decoder the
worker runs on every record, with the same limits. A command the worker would reject raises
`InvalidCommandError` with the rejection the worker would give (code, message, path), so it never
reaches Kafka. Building a Struct does not check its constraints (msgspec checks them on decode),
which is why this step exists.
"""

import uuid
from dataclasses import dataclass

import msgspec

from contracts.commands import Command
from contracts.decoding import Decoded, decode_record
from contracts.wire import (
    CONTENT_TYPE_JSON,
    HEADER_COMMAND_TYPE,
    HEADER_CONTENT_TYPE,
    MAX_RECORD_BYTES,
)
from session_client.errors import InvalidCommandError

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One command as it goes to Kafka, already checked."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    command: Command  # as the worker will decode it

    @property
    def command_type(self) -> str:
        return _type_of(self.command)


def new_command_id() -> str:
    """A fresh commandId (a random UUID). Keep it with the command: sending the same command
    again with the same id is how a retry stays harmless."""
    return str(uuid.uuid4())


def encode_command(command: Command, *, max_record_bytes: int = MAX_RECORD_BYTES) -> CommandRecord:
    """The record for `command`, or `InvalidCommandError` if the worker would reject it.

    `max_record_bytes` must be the worker's `SW_MAX_RECORD_BYTES` (default 1 MiB).
    """
    value = _encoder.encode(command)
    try:
        key: bytes | None = command.session_id.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):  # not even a string: the decoder says why
        key = None
    decoded = decode_record(key, value, max_record_bytes)
    if not isinstance(decoded, Decoded):
        raise InvalidCommandError(decoded.rejection, decoded.ids)
    checked = decoded.command
    key = checked.session_id.encode("utf-8")
    headers = (
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.encode()),
        (HEADER_COMMAND_TYPE, _type_of(checked).encode()),
    )
    return CommandRecord(key=key, value=value, headers=headers, command=checked)


def _type_of(command: Command) -> str:
    return str(type(command).__struct_config__.tag)
