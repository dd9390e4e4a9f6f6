"""One call from an events-topic record value to the contract's event Structs, as a tolerant
reader: `read_event(value)`.

The contract's own decoder (`contracts.events.event_decoder`) is strict: it rejects any field
it does not know, which is right for checking what this release emits and wrong for a consumer,
which must keep working when the worker adds an optional field (a minor version, see
docs/clients.md). So `read_event`:

- returns the same Structs as the strict decoder (`SessionCreated`, ..., `CommandRejected`);
- ignores fields it does not know, at every level (envelope, session, messages, error);
- returns `UnknownEvent` for an event type it does not know, to be skipped (new event types are
  minor too);
- raises `InvalidEventError` with a JSON path for anything else: not JSON, a known field with a
  wrong type or value, a missing required field.

Cost: the strict decoder runs first (one pass, the common case); only a record it refuses is
decoded again untyped, stripped of unknown fields and converted.
"""

import re
from dataclasses import dataclass
from typing import Any, get_args

import msgspec
import msgspec.inspect as mi

from contracts.events import Event, event_decoder
from session_client.errors import InvalidEventError


def _event_structs() -> dict[str, mi.StructType]:
    """Each event Struct's type information, by its `type` tag."""
    found = {}
    for cls in get_args(Event):
        info = mi.type_info(cls)
        if not isinstance(info, mi.StructType) or info.tag is None:
            raise TypeError(f"{cls!r} is not a tagged Struct")
        found[str(info.tag)] = info
    return found


_STRUCTS = _event_structs()
EVENT_TYPES: frozenset[str] = frozenset(_STRUCTS)
_ITEMS = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)
_PATH = re.compile(r" - at `(\$[^`]*)`$")


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event of a type this release does not know (a newer minor added it): skip it."""

    type: str
    event_id: str | None
    session_id: str | None
    value: bytes


def read_event(value: bytes | None) -> Event | UnknownEvent:
    """The event in a record value, read tolerantly (see the module docstring)."""
    if value is None:
        raise InvalidEventError("record has no value (tombstone)")
    try:
        return event_decoder.decode(value)
    except msgspec.ValidationError:
        pass  # an unknown field or type, or a real error: the lenient path tells which
    except _UNDECODABLE as exc:
        raise _undecodable(exc) from exc
    return _read_leniently(value)


# What msgspec raises for bytes that are not JSON it can read (invalid UTF-8 inside a string
# surfaces as UnicodeDecodeError, absurd nesting as RecursionError).
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _undecodable(exc: Exception) -> InvalidEventError:
    if isinstance(exc, UnicodeDecodeError):
        return InvalidEventError("not valid UTF-8")
    if isinstance(exc, RecursionError):
        return InvalidEventError("nested too deeply")
    return InvalidEventError(_text(str(exc)))


def _read_leniently(value: bytes) -> Event | UnknownEvent:
    try:
        document = msgspec.json.decode(value)
    except _UNDECODABLE as exc:  # the strict decoder may have stopped before the bad part
        raise _undecodable(exc) from exc
    if not isinstance(document, dict):
        raise InvalidEventError("an event is a JSON object")
    kind = document.get("type")
    if not isinstance(kind, str):
        raise InvalidEventError("missing or non-string `type`", "$.type")
    info = _STRUCTS.get(kind)
    if info is None:
        return UnknownEvent(
            type=kind,
            event_id=_str_or_none(document.get("eventId")),
            session_id=_str_or_none(document.get("sessionId")),
            value=value,
        )
    try:
        event: Event = msgspec.convert(_known_only(document, info), Event)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH.search(message)
        if match is None:
            raise InvalidEventError(_text(message)) from exc
        raise InvalidEventError(_text(message[: match.start()]), match.group(1)) from exc
    return event


def _known_only(value: Any, kind: mi.Type) -> Any:
    """`value` (untyped JSON) without the object members `kind` does not define."""
    if isinstance(kind, mi.Metadata):
        return _known_only(value, kind.type)
    if isinstance(kind, mi.UnionType):
        return _known_only(value, _member(value, kind))
    if isinstance(kind, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in kind.fields}
        kept = {k: _known_only(v, fields[k]) for k, v in value.items() if k in fields}
        if kind.tag_field is not None and kind.tag_field in value:
            kept[kind.tag_field] = value[kind.tag_field]
        return kept
    if isinstance(kind, _ITEMS) and isinstance(value, list):
        return [_known_only(item, kind.item_type) for item in value]
    if isinstance(kind, mi.DictType) and isinstance(value, dict):
        # Opaque configuration is `dict[str, Any]`: kept verbatim, as the worker keeps it.
        return {k: _known_only(v, kind.value_type) for k, v in value.items()}
    return value


def _member(value: Any, union: mi.UnionType) -> mi.Type:
    """The union member `value` will be converted to (tagged Structs by their tag); AnyType,
    which keeps the value as it is, when none fits: the conversion then says what is wrong."""
    for member in union.types:
        inner = member.type if isinstance(member, mi.Metadata) else member
        if isinstance(value, dict):
            if isinstance(inner, mi.StructType) and (
                inner.tag_field is None or value.get(inner.tag_field) == inner.tag
            ):
                return member
            if isinstance(inner, mi.DictType):
                return member
        elif isinstance(value, list) and isinstance(inner, _ITEMS):
            return member
    return mi.AnyType()


def _str_or_none(item: object) -> str | None:
    return item if isinstance(item, str) else None


def _text(message: str) -> str:
    """Short and printable: the record came from outside."""
    clean = "".join(c if c.isprintable() else "?" for c in message)
    return clean if len(clean) <= 300 else clean[:297] + "..."


def event_type(event: Event | UnknownEvent) -> str:
    """The event's `type` as on the wire (`session.created`, ...)."""
    if isinstance(event, UnknownEvent):
        return event.type
    return str(type(event).__struct_config__.tag)
