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

import json
import re
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi
from msgspec import NODEFAULT

from contracts.commands import COMMAND_TYPES, Command, command_decoder
from contracts.fields import MAX_NESTING_DEPTH
from worker.errors import Rejection

_PATH = re.compile(r" - at `(\$[^`]*)`$")
# msgspec names the object, not the field, for these two; the path should end at the field.
_FIELD_ERROR = re.compile(r"Object (?:missing required|contains unknown) field `([^`]+)`")
# msgspec quotes the offending value for enums and tags ("Invalid enum value 'x'"): a value in the
# wrong field may be a credential, so the rejection names the field (its path), never the value.
_ECHOED_VALUE = re.compile(r"(Invalid (?:enum )?value) .*", re.DOTALL)
MESSAGE_MAX_CHARS = 300  # a rejection explains; it does not carry the record back
# A key shown in a path as `.name`; any other key as `["..."]` (short) or `[...]` (long), so a
# path stays printable ASCII and short whatever keys a record has.
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]{0,63}")
KEY_SHOWN_MAX_CHARS = 40

TOO_DEEP = f"nesting deeper than {MAX_NESTING_DEPTH} levels"
DUPLICATE_KEY = "duplicate key in an object: JSON parsers disagree on which value counts"
UNREADABLE = "JSON that another parser reads differently"


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


def _ids_of(command: Command) -> Ids:
    return Ids(command.command_id, command.org_id, command.session_id)


# --- nesting depth ---------------------------------------------------------------------------

# Depth does not care which kind of container: `{}` count as `[]`; quotes are kept to find strings.
_OPEN_CLOSE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_NOT_OPENING = bytes(b for b in range(256) if b not in b"[{")
_ESCAPED_QUOTE_OR_BACKSLASH = re.compile(rb'\\[\\"]')
_PREFILTER_MAX_BYTES = 65_536  # larger records nearly always have many containers: skip to exact


def deeper_than(value: bytes, limit: int) -> bool:
    """Whether valid JSON `value` nests more than `limit` arrays/objects inside each other.

    C-speed byte operations only. A record with at most `limit` opening brackets in all, strings
    included, is not (one `bytes.translate`: the common case). Otherwise escaped backslashes and
    quotes are dropped, so that every quote left opens or closes a string, then everything but
    brackets and quotes; the text between quotes is cut out, and innermost `[]` pairs are removed
    one level per pass. A run of more opening brackets than levels left ends it early.
    """
    if len(value) <= _PREFILTER_MAX_BYTES and len(value.translate(None, _NOT_OPENING)) <= limit:
        return False
    if b"\\" in value:  # memchr: most records have no escape at all
        value = _ESCAPED_QUOTE_OR_BACKSLASH.sub(b"", value)
    kept = value.translate(_OPEN_CLOSE, _NOT_STRUCTURE)
    if kept.count(b"[") <= limit:
        return False
    nest = b"".join(kept.split(b'"')[::2])  # quotes alternate: even parts are outside strings
    for done in range(limit):
        if not nest:
            return False
        if b"[" * (limit - done + 1) in nest:
            return True
        nest = nest.replace(b"[]", b"")
    return bool(nest)


# --- duplicate keys --------------------------------------------------------------------------

_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def duplicate_key(value: bytes, decoded: object = None) -> list[str] | None:
    """The path steps (`.name`, `[2]`) to the first repeated key in any object of valid JSON
    `value`; None when there is none; an empty list when the standard library's parser cannot
    read what msgspec read.

    Fast proof of absence, by counting colons. Every key in `value` is followed by exactly one
    structural colon; every other colon is inside a string. Encoding what msgspec decoded
    (compact) writes one colon per key it kept plus the same string colons, as long as no colon
    was written as an escape (`\\u003a`, checked) and the encoding writes no key the record did
    not have (see `encodes_only_keys_it_decoded`). A repeated key that msgspec dropped takes its
    colon with it, so equal counts prove there is none. `decoded` is the record as decoded
    against the contract (re-encoding it costs about a third of decoding), or None to decode
    `value` again without a type. When the counts differ, or an escaped colon makes them
    unreliable, the standard library's parser, which shows every member of every object,
    decides and finds the path.
    """
    if not (b"\\" in value and b"\\u003" in value):
        try:
            kept = _encoder.encode(_any_decoder.decode(value) if decoded is None else decoded)
        except (msgspec.MsgspecError, RecursionError):
            kept = b""
        if kept.count(b":") == value.count(b":"):
            return None
    return _find_duplicate(value)


_KEY_FREE = (
    mi.AnyType, mi.NoneType, mi.BoolType, mi.IntType, mi.FloatType, mi.StrType, mi.LiteralType,
    mi.EnumType,
)  # fmt: skip
_ITEMS = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)


def encodes_only_keys_it_decoded(
    kind: mi.Type, seen: set[type] | None = None, *, tag_demanded: bool = False
) -> bool:
    """Whether msgspec, encoding a value it decoded as `kind`, writes only object keys that the
    JSON had: no Struct field has a default (it would be written although absent), and a tag
    is written only where decoding demanded it (a union of several tagged Structs). Also no
    type whose text may change its colons (datetimes...): such a type makes this False, and
    the duplicate check then decodes the record again untyped, which is always exact.
    """
    seen = set() if seen is None else seen
    if isinstance(kind, mi.Metadata):
        return encodes_only_keys_it_decoded(kind.type, seen, tag_demanded=tag_demanded)
    if isinstance(kind, _KEY_FREE):
        return True
    if isinstance(kind, _ITEMS):
        return encodes_only_keys_it_decoded(kind.item_type, seen)
    if isinstance(kind, mi.DictType):
        return isinstance(kind.key_type, mi.StrType) and encodes_only_keys_it_decoded(
            kind.value_type, seen
        )
    if isinstance(kind, mi.UnionType):
        demanded = sum(isinstance(t, mi.StructType) for t in kind.types) > 1
        return all(encodes_only_keys_it_decoded(t, seen, tag_demanded=demanded) for t in kind.types)
    if isinstance(kind, mi.StructType):
        if kind.tag is not None and not tag_demanded:
            return False
        if kind.cls in seen:
            return True
        seen.add(kind.cls)
        return not kind.array_like and all(
            (f.required or (f.default is NODEFAULT and f.default_factory is NODEFAULT))
            and encodes_only_keys_it_decoded(f.type, seen)
            for f in kind.fields
        )
    return False


# Checked once: True for the contract as it is (a test says so), so the hot path re-encodes the
# decoded command instead of decoding the record a second time.
_COMMAND_KEYS_EXACT = encodes_only_keys_it_decoded(mi.type_info(Command))


class _Members(list[tuple[str, Any]]):
    """A JSON object as the standard library's parser saw it: every member, in order."""


def _ignore(_: str) -> None:
    return None


def _find_duplicate(value: bytes) -> list[str] | None:
    repeated = False

    def members(pairs: list[tuple[str, Any]]) -> _Members:
        nonlocal repeated
        repeated = repeated or len({name for name, _ in pairs}) != len(pairs)
        return _Members(pairs)

    try:
        doc = json.loads(
            value,
            object_pairs_hook=members,
            parse_int=_ignore,  # values do not matter here; skip building them
            parse_float=_ignore,
            parse_constant=_ignore,
        )
    except (ValueError, RecursionError):
        # msgspec read it and the standard library cannot: two parsers disagree on this record.
        return []
    return _walk(doc) if repeated else None


def _walk(node: list[Any]) -> list[str] | None:
    """Steps to the first repeated key: an object's own keys first, then its members in order;
    the steps come out innermost first and are reversed once at the top."""
    found = _walk_reversed(node)
    return None if found is None else found[::-1]


def _walk_reversed(node: list[Any]) -> list[str] | None:
    if isinstance(node, _Members):
        seen: set[str] = set()
        for name, _ in node:
            if name in seen:
                return [member(name)]
            seen.add(name)
        for name, item in node:
            if isinstance(item, list) and (found := _walk_reversed(item)) is not None:
                found.append(member(name))
                return found
    else:
        for i, item in enumerate(node):
            if isinstance(item, list) and (found := _walk_reversed(item)) is not None:
                found.append(f"[{i}]")
                return found
    return None


def member(name: str) -> str:
    """`name` as a step of a JSON path: `.name` when plain, `["n m"]` or `[...]` otherwise."""
    if _PLAIN_KEY.fullmatch(name):
        return "." + name
    if len(name) <= KEY_SHOWN_MAX_CHARS:
        return "[" + json.dumps(name, ensure_ascii=True) + "]"
    return "[...]"


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
