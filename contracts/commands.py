"""The command envelope: a tagged union on ``type``.

One module-level decoder is reused for every record (msgspec's fastest path). New command types
are added as one more tagged Struct and one more member of ``Command``.
"""

import msgspec
from msgspec import Struct

from contracts.fields import Id
from contracts.payloads import CreateSessionDTO, UpdateSessionDTO


class _Command(Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", rename="camel"):
    command_id: Id
    org_id: Id
    session_id: Id


class CreateSession(_Command, frozen=True, tag="session.create"):
    payload: CreateSessionDTO


class UpdateSession(_Command, frozen=True, tag="session.update"):
    payload: UpdateSessionDTO


class DeleteSession(_Command, frozen=True, tag="session.delete"):
    """Deletes the session; carries no payload."""


Command = CreateSession | UpdateSession | DeleteSession

COMMAND_TYPES: frozenset[str] = frozenset(
    str(t.__struct_config__.tag) for t in (CreateSession, UpdateSession, DeleteSession)
)

command_decoder: msgspec.json.Decoder[Command] = msgspec.json.Decoder(Command)
command_encoder = msgspec.json.Encoder()
