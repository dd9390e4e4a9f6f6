"""Structural checks msgspec does not make: nesting depth and repeated object keys.

Both run on every record that decodes, so both are cheap unless the record is unusual; see
`contracts.decoding` for why each matters.
"""

import json
import re
from typing import Any

import msgspec
import msgspec.inspect as mi
from msgspec import NODEFAULT

# A key shown in a path as `.name`; any other key as `["..."]` (short) or `[...]` (long), so a
# path stays printable ASCII and short whatever keys a record has.
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]{0,63}")
KEY_SHOWN_MAX_CHARS = 40


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
