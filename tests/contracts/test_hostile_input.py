"""Hostile records through the real decoder boundary: each is rejected with a clear code, path
and message, and nothing raises.

Cases: invalid UTF-8, deep nesting, NaN/Infinity and numbers out of range, trailing bytes,
duplicate keys, ids with control characters or braces, absurd arrays, and rejection messages that
must not carry secrets or chunks of the record back.

`measure()` prints what the nesting and duplicate-key checks cost; it is not a test (no timing
asserts here). Run it by hand:

    .venv/bin/python -c "from tests.contracts.test_hostile_input import measure; measure()"
"""

import functools
import json
import random
import timeit
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from contracts.commands import Command, command_decoder
from contracts.decoding import (
    DUPLICATE_KEY,
    MESSAGE_MAX_CHARS,
    TOO_DEEP,
    Decoded,
    Ids,
    Undecodable,
    decode_record,
)
from contracts.fields import (
    DETECTED_THREATS_MAX_ITEMS,
    HOOKS_MAX_ITEMS,
    MAX_NESTING_DEPTH,
    MESSAGES_MAX_ITEMS,
    TOOL_CALLS_MAX_ITEMS,
)
from contracts.json_guards import deeper_than, duplicate_key, encodes_only_keys_it_decoded
from tests.factories import (
    CANARY_API_SECRET,
    CANARY_AUTH_TOKEN,
    CANARY_SERVER_SECRET,
    create_command,
    delete_command,
    update_command,
)

MAX_BYTES = 1_048_576
SID = "s-hostile-1"
CANARIES = (CANARY_AUTH_TOKEN, CANARY_API_SECRET, CANARY_SERVER_SECRET)

# --- helpers ------------------------------------------------------------------------------


def good() -> dict[str, Any]:
    """A typical create (about 1.2 KB) with the canary secrets in it."""
    return create_command(SID)


def encoded(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def with_raw(doc: dict[str, Any], marker_path: list[str | int], raw: bytes) -> bytes:
    """`doc` encoded, with the JSON text `raw` at `marker_path` (for what json cannot write:
    NaN spelt by hand, 100 000 levels, duplicate keys, bad escapes)."""
    doc = json.loads(json.dumps(doc))
    holder: Any = doc
    for step in marker_path[:-1]:
        holder = holder[step]
    holder[marker_path[-1]] = "@@RAW@@"
    return encoded(doc).replace(b'"@@RAW@@"', raw, 1)


def decode(value: bytes, key: bytes | None = SID.encode()) -> Decoded | Undecodable:
    return decode_record(key, value, MAX_BYTES)


def accepted(value: bytes) -> Decoded:
    result = decode(value)
    assert isinstance(result, Decoded), result
    return result


def rejected(value: bytes, key: bytes | None = SID.encode()) -> Undecodable:
    result = decode(value, key)
    assert isinstance(result, Undecodable), result
    assert_safe(result)
    return result


def assert_rejected(value: bytes, path: str | None, message: str | None = None) -> Undecodable:
    result = rejected(value)
    assert (result.rejection.code, result.rejection.path) == ("invalid", path), result.rejection
    if message is not None:
        assert result.rejection.message == message
    return result


def assert_safe(result: Undecodable) -> None:
    """What any rejection may carry: short printable text, no secret, a printable-ASCII path."""
    message, path = result.rejection.message, result.rejection.path
    assert message
    assert len(message) <= MESSAGE_MAX_CHARS
    assert message.isprintable()
    assert not any(canary in message for canary in CANARIES)
    if path is not None:
        assert path.startswith("$")
        assert path.isascii()
        assert path.isprintable()
        assert len(path) < 4096
        assert not any(canary in path for canary in CANARIES)


def nested(depth: int, kind: str, leaf: bytes = b"1") -> bytes:
    """`depth` arrays or objects inside each other around `leaf`."""
    if kind == "array":
        return b"[" * depth + leaf + b"]" * depth
    return b'{"a":' * depth + leaf + b"}" * depth


# --- 1. invalid UTF-8 ---------------------------------------------------------------------

INVALID_UTF8 = {
    "lone-continuation-byte": b"\x80",
    "invalid-start-byte": b"\xff",
    "overlong-slash": b"\xc0\xaf",
    "utf8-encoded-surrogate": b"\xed\xa0\x80",
    "truncated-sequence": b"\xe2\x82",
    "above-u10ffff": b"\xf4\x90\x80\x80",
}


@pytest.mark.parametrize("raw", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
@pytest.mark.parametrize(
    "where",
    [["payload", "name"], ["payload", "assistant", "name"], ["payload", "messages", 0, "message"]],
    ids=["typed", "opaque", "message"],
)
def test_invalid_utf8_in_a_string_is_invalid_at_the_root(raw: bytes, where: list[Any]) -> None:
    result = assert_rejected(with_raw(good(), where, b'"ok' + raw + b'"'), "$")
    assert result.ids == Ids()


@pytest.mark.parametrize("raw", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
def test_invalid_utf8_in_a_key_or_outside_strings_is_invalid(raw: bytes) -> None:
    in_key = encoded(good()).replace(b'"squad": {', b'"squad": {"k' + raw + b'": 1, ')
    assert_rejected(in_key, "$")
    assert_rejected(raw + encoded(good()), "$")


def test_invalid_utf8_in_the_key_of_the_record_is_a_key_mismatch() -> None:
    result = rejected(encoded(good()), key=b"s-hostile-\xff")
    assert (result.rejection.code, result.rejection.path) == ("invalid", "$.sessionId")


# --- 2. deep nesting ----------------------------------------------------------------------

OPAQUE_SITES = {
    "assistant": ["payload", "assistant", "x"],
    "assistantOverrides": ["payload", "assistantOverrides", "x"],
    "squad": ["payload", "squad", "x"],
    "customer.assistantOverrides": ["payload", "customer", "assistantOverrides", "x"],
    "phoneNumber.server": ["payload", "phoneNumber", "server", "x"],
    "message.metadata": ["payload", "messages", 1, "metadata", "x"],
}


def good_with_every_opaque_site() -> dict[str, Any]:
    doc = good()
    doc["payload"]["customer"]["assistantOverrides"] = {"x": 0}
    doc["payload"]["messages"][1]["metadata"] = {"x": 0}
    return doc


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("site", list(OPAQUE_SITES.values()), ids=list(OPAQUE_SITES))
def test_100000_levels_are_rejected_not_raised(kind: str, site: list[Any]) -> None:
    value = with_raw(good_with_every_opaque_site(), site, nested(100_000, kind))
    result = assert_rejected(value, "$", TOO_DEEP)
    assert result.ids == Ids()  # msgspec stops near Python's recursion limit, before any id


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH - 2, 200, 500, 900])
def test_nesting_past_the_limit_is_rejected_with_the_ids(kind: str, levels: int) -> None:
    # The record is level 1, payload 2, assistant 3: `levels` more inside assistant.x.
    value = with_raw(good(), ["payload", "assistant", "x"], nested(levels, kind))
    result = assert_rejected(value, "$", TOO_DEEP)
    assert result.ids.session_id == SID


@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_at_the_limit_is_accepted_and_kept(kind: str) -> None:
    levels = MAX_NESTING_DEPTH - 3  # record, payload, assistant: the deepest is level 64
    decoded = accepted(with_raw(good(), ["payload", "assistant", "x"], nested(levels, kind)))
    assert decoded.command.session_id == SID


def test_the_limit_counts_levels_not_containers() -> None:
    wide = {"items": [{"a": [1, {"b": []}]} for _ in range(5_000)]}
    accepted(encoded(good() | {"payload": good()["payload"] | {"squad": wide}}))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000,
        "]" * 10_000 + "[" * 10_000,
        '\\"[[[[' * 1_000,  # escaped quotes: strings are cut out by the slow, exact scan
        '[\\"' * 1_000 + "{",
        "}" * 1_000,
    ],
    ids=["opens", "closes-then-opens", "escaped-quotes", "mixed", "closes"],
)
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    doc = good()
    doc["payload"]["squad"]["note"] = json.loads(f'"{text}"')
    doc["payload"]["squad"]["list"] = [[[]] for _ in range(100)]  # many containers, shallow
    accepted(encoded(doc))


def test_depth_check_on_its_own() -> None:
    assert not deeper_than(b"[]", 1)
    assert deeper_than(b"[[]]", 1)
    assert not deeper_than(b'[[],[],[{"a":[]}],"[[[[[[[["]', 4)
    assert deeper_than(b'[[],[],[{"a":[]}],"[[[[[[[["]', 3)
    assert not deeper_than(b'[[],[],[{"a":[[]]}],"]]]]]]]]"]', 5)
    assert deeper_than(b'[[],[],[{"a":[[]]}],"]]]]]]]]"]', 4)
    assert not deeper_than(b'["\\"[[[[[[", []]', 2)
    assert deeper_than(b'["\\"]]]]]]", [[[]]]]', 3)
    interleaved = b"[0," * 40 + b"[]," * 40 + b"0" + b"]" * 40
    assert not deeper_than(b"[" + interleaved + b"]", 42)  # 1 + 40 + the innermost []
    assert deeper_than(b"[" + interleaved + b"]", 41)


def test_deep_nesting_with_another_error_before_it_is_still_answered() -> None:
    doc = good()
    doc["orgId"] = 42  # a wrong type, found before the deep part
    value = with_raw(doc, ["payload", "assistant", "x"], nested(100_000, "array"))
    result = rejected(value)
    assert result.rejection.code == "invalid"
    assert result.rejection.path in ("$.orgId", "$")


def test_deep_nesting_in_a_record_of_unknown_type_is_answered() -> None:
    doc = good()
    doc["type"] = "session.explode"
    value = with_raw(doc, ["payload", "assistant", "x"], nested(100_000, "object"))
    result = rejected(value)
    # Reading the type again for the rejection meets the same depth: `invalid` then.
    assert result.rejection.code in ("invalid", "unsupported")
    assert result.rejection.path == "$.type"


def test_deep_nesting_in_truncated_json_is_invalid() -> None:
    value = encoded(good())[:-1] + b', "x": ' + b"[" * 100_000
    assert rejected(value).rejection.code == "invalid"


# --- 3. NaN, Infinity, numbers out of range -----------------------------------------------

NON_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"+1", b"01", b"1.", b".5"]


@pytest.mark.parametrize("raw", NON_NUMBERS, ids=[r.decode() for r in NON_NUMBERS])
@pytest.mark.parametrize(
    "where",
    [
        ["payload", "expirationSeconds"],
        ["payload", "assistant", "temperature"],
        ["payload", "squad", "members", 0, "weight"],
        ["payload", "messages", 0, "time"],
        ["payload", "messages", 1, "metadata"],
    ],
    ids=["typed", "opaque", "opaque-array", "message", "metadata"],
)
def test_non_json_number_tokens_are_malformed(raw: bytes, where: list[Any]) -> None:
    result = assert_rejected(with_raw(good(), where, raw), "$")
    assert result.rejection.message.startswith("JSON is malformed")


OUT_OF_RANGE = {
    "1e400": b"1e400",
    "-1e400": b"-1e400",
    "1.7976931348623159e308": b"1.7976931348623159e308",
    "5000-digit-integer": b"9" * 5_000,
}


@pytest.mark.parametrize("raw", list(OUT_OF_RANGE.values()), ids=list(OUT_OF_RANGE))
@pytest.mark.parametrize(
    ("where", "path"),
    [
        (["payload", "expirationSeconds"], "$.payload.expirationSeconds"),
        (["payload", "assistant", "temperature"], "$.payload.assistant[...]"),
        (["payload", "squad", "members", 0, "weight"], "$.payload.squad[...][0][...]"),
        (["payload", "messages", 1, "endTime"], "$.payload.messages[1].endTime"),
        (["payload", "messages", 1, "metadata"], "$.payload.messages[1].metadata[...]"),
    ],
    ids=["typed", "opaque", "opaque-array", "message", "metadata"],
)
def test_numbers_out_of_range_are_invalid_with_their_path(
    raw: bytes, where: list[Any], path: str
) -> None:
    if where[-1] == "metadata":
        raw = b'{"n": ' + raw + b"}"
    result = assert_rejected(with_raw(good(), where, raw), path)
    assert "out of range" in result.rejection.message
    assert (result.ids.org_id, result.ids.session_id) == ("org-42", SID)  # read past the number


# --- 4. trailing bytes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [b"x", b"{}", b' {"commandId": "c-2"}', b"\x00", b"]", b"}", b",", b"\xff", b"//", b"\x1a"],
    ids=[
        "letter",
        "object",
        "second-doc",
        "nul",
        "bracket",
        "brace",
        "comma",
        "bad-utf8",
        "comment",
        "ctrl-z",
    ],
)
def test_trailing_bytes_are_invalid_at_the_root(tail: bytes) -> None:
    result = assert_rejected(encoded(good()) + tail, "$")
    assert result.ids == Ids()


@pytest.mark.parametrize("tail", [b" ", b"\n", b"\r\n", b"\t \n"])
def test_trailing_whitespace_is_fine(tail: bytes) -> None:
    accepted(encoded(good()) + tail)


# --- 5. duplicate keys --------------------------------------------------------------------


def duplicated(
    doc: dict[str, Any], where: list[Any], decoy: object, spelt: str | None = None
) -> bytes:
    """`doc` encoded with the last key of `where` written twice: `decoy` first, then the real
    value, the second key spelt `spelt` (escapes included) if given."""
    value = encoded(doc)
    holder: Any = doc
    for step in where[:-1]:
        holder = holder[step]
    name = where[-1]
    real = json.dumps({name: holder[name]})[1:-1].encode()
    again = real if spelt is None else real.replace(json.dumps(name).encode(), spelt.encode(), 1)
    first = json.dumps({name: decoy})[1:-1].encode()
    assert value.count(real) == 1, (name, value)
    return value.replace(real, first + b", " + again, 1)


# (where, the decoy written first, the path reported); a decoy is valid where it stands, so the
# record decodes and only the repetition is wrong. Tags (`type`, `role`) repeat their value:
# with another one msgspec would pick a different Struct and fail on a field instead.
DUPLICATE_SITES: dict[str, tuple[list[Any], object, str]] = {
    "commandId": (["commandId"], "c-decoy", "$.commandId"),
    "sessionId": (["sessionId"], "s-decoy", "$.sessionId"),
    "orgId": (["orgId"], "org-decoy", "$.orgId"),
    "type": (["type"], "session.create", "$.type"),
    "payload.name": (["payload", "name"], "Decoy", "$.payload.name"),
    "payload.expirationSeconds": (
        ["payload", "expirationSeconds"],
        60,
        "$.payload.expirationSeconds",
    ),
    "message.role": (["payload", "messages", 1, "role"], "user", "$.payload.messages[1].role"),
    "message.endTime": (
        ["payload", "messages", 1, "endTime"],
        9,
        "$.payload.messages[1].endTime",
    ),
    "customer.number": (
        ["payload", "customer", "number"],
        "+10000000000",
        "$.payload.customer.number",
    ),
    "twilioAuthToken": (
        ["payload", "phoneNumber", "twilioAuthToken"],
        "decoy",
        "$.payload.phoneNumber.twilioAuthToken",
    ),
    "opaque.server.secret": (
        ["payload", "phoneNumber", "server", "secret"],
        "decoy",
        "$.payload.phoneNumber.server.secret",
    ),
    "opaque-in-array": (
        ["payload", "squad", "members", 0, "assistantId"],
        {"nested": [1]},
        "$.payload.squad.members[0].assistantId",
    ),
    "opaque-odd-key": (["payload", "squad", "x-unknown"], None, "$.payload.squad.x-unknown"),
}


@pytest.mark.parametrize(
    ("where", "decoy", "path"), list(DUPLICATE_SITES.values()), ids=DUPLICATE_SITES
)
def test_a_duplicate_key_is_invalid_with_its_path(
    where: list[Any], decoy: object, path: str
) -> None:
    result = assert_rejected(duplicated(good(), where, decoy), path, DUPLICATE_KEY)
    if path.count(".") == 1:  # a top-level key may be an id: none is echoed
        assert result.ids == Ids()
    else:
        assert result.ids == Ids(result.ids.command_id, "org-42", SID)


@pytest.mark.parametrize(
    ("doc", "where", "path"),
    [
        (update_command(SID, name="n"), ["payload", "name"], "$.payload.name"),
        (update_command(SID, name="n"), ["commandId"], "$.commandId"),
        (delete_command(SID), ["sessionId"], "$.sessionId"),
    ],
    ids=["update-payload", "update-commandId", "delete-sessionId"],
)
def test_duplicate_keys_in_updates_and_deletes(
    doc: dict[str, Any], where: list[Any], path: str
) -> None:
    assert_rejected(duplicated(doc, where, "decoy-1"), path, DUPLICATE_KEY)


def test_a_second_type_is_rejected_whichever_msgspec_reads() -> None:
    value = duplicated(good(), ["type"], "session.delete")  # a delete, or a create?
    assert rejected(value).rejection.code == "invalid"


@pytest.mark.parametrize(
    ("spelt", "path"),
    [
        ('"command\\u0049d"', "$.commandId"),  # the same key, one letter escaped
        ('"\\u0063ommandId"', "$.commandId"),
        ('"commandI\\u0064"', "$.commandId"),
    ],
)
def test_a_duplicate_spelt_with_escapes_is_still_a_duplicate(spelt: str, path: str) -> None:
    assert_rejected(duplicated(good(), ["commandId"], "c-decoy", spelt), path, DUPLICATE_KEY)


def odd_keys(keys: list[str], values: list[str]) -> bytes:
    """A good create whose squad has these raw JSON key and value texts, in this order."""
    members = b", ".join(f"{k}: {v}".encode() for k, v in zip(keys, values, strict=True))
    return encoded(good()).replace(b'"squad": {', b'"squad": {' + members + b", ", 1)


@pytest.mark.parametrize(
    ("keys", "values", "path"),
    [
        # Colons in values, in keys, written escaped: the fast count must not be fooled.
        (['"a"', '"a"'], ['"x:y"', '"z"'], '$.payload.squad.a'),
        (['"a"', '"b"', '"a"'], ['"\\u003a"', '"::"', '"q"'], "$.payload.squad.a"),
        (['"a:b"', '"a\\u003ab"'], ["1", "2"], '$.payload.squad["a:b"]'),
        (['"a"', '"a"', '"c"'], ["1", "2", '"\\u003a\\u003A"'], "$.payload.squad.a"),
        (['"q\\"k"', '"q\\u0022k"'], ["1", "2"], '$.payload.squad["q\\"k"]'),
        (['"a"', '"a"', '"c"'], ["1", "2", '"\\":\\":"'], "$.payload.squad.a"),
        (['"\\u003a"', '":"'], ["1", "2"], '$.payload.squad[":"]'),
        (['"a b"', '"a\\u0020b"'], ["1", "2"], '$.payload.squad["a b"]'),
        (['"\\u2028"', '"\\u2028"'], ["1", "2"], '$.payload.squad["\\u2028"]'),
        (['"\\u0000"', '"\\u0000"'], ["1", "2"], '$.payload.squad["\\u0000"]'),
        (['""', '""'], ["1", "2"], '$.payload.squad[""]'),
        ([f'"{"k" * 64}"', f'"{"k" * 64}"'], ["1", "2"], "$.payload.squad." + "k" * 64),
        ([f'"{"k" * 65}"', f'"{"k" * 65}"'], ["1", "2"], "$.payload.squad[...]"),
        ([f'"{"k " * 21}"', f'"{"k " * 21}"'], ["1", "2"], "$.payload.squad[...]"),
        (['"a"', '"b"', '"a"'], ['{"a": 1}', "[]", "3"], "$.payload.squad.a"),
        (['"a"', '"b"'], ['{"a": 1, "a": 2}', "[]"], "$.payload.squad.a.a"),
        (['"a"', '"b"'], ['[{}, [{"c": 1, "c": 1}]]', "[]"], "$.payload.squad.a[1][0].c"),
    ],
)  # fmt: skip
def test_duplicates_next_to_colons_quotes_and_escapes(
    keys: list[str], values: list[str], path: str
) -> None:
    assert_rejected(odd_keys(keys, values), path, DUPLICATE_KEY)


@pytest.mark.parametrize(
    ("keys", "values"),
    [
        (['"a"', '"A"'], ["1", "2"]),
        (['"a:"', '"a"'], ['"::"', '"\\u003a"']),
        (['"a\\"b"', '"a\\\\"'], ['"\\":"', '"\\\\"']),
        (['"\\u003a"', '";"'], ['"\\u003b"', '":"']),
    ],
)
def test_distinct_keys_are_fine_whatever_they_contain(keys: list[str], values: list[str]) -> None:
    accepted(odd_keys(keys, values))


def test_equal_keys_in_different_objects_are_fine() -> None:
    doc = good()  # "role", "message", "name", "time" repeat across objects, never within one
    assert encoded(doc).count(b'"role"') == 5
    accepted(encoded(doc))


def _random_text(rng: random.Random) -> str:
    """JSON string text from a small alphabet, so keys collide, spelt with random escapes."""
    out = []
    for _ in range(rng.randint(0, 3)):
        char = rng.choice('a:"\\b')
        if char in '"\\':
            out.append("\\" + char if rng.random() < 0.7 else f"\\u{ord(char):04x}")
        elif rng.random() < 0.3:
            out.append(f"\\u{ord(char):04x}" if rng.random() < 0.5 else f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _random_json(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 4 or roll < 0.3:
        return rng.choice([_random_text(rng), "1", "2.5", "null", "true"])
    if roll < 0.5:
        return "[" + ", ".join(_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    members = (
        f"{_random_text(rng)}:{_random_json(rng, depth + 1)}" for _ in range(rng.randint(0, 4))
    )
    return "{" + ",".join(members) + "}"


def _has_duplicate(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise KeyError("duplicate")
    return dict(pairs)


def test_the_duplicate_check_agrees_with_a_plain_parser_on_random_documents() -> None:
    rng = random.Random(648)  # seeded: a failure reproduces
    seen = {True: 0, False: 0}
    for _ in range(3_000):
        doc = encoded(good()).replace(
            b'"squad": {', b'"squad": {"r": ' + _random_json(rng, 1).encode() + b", ", 1
        )
        try:
            json.loads(doc, object_pairs_hook=_has_duplicate)
            expected = False
        except KeyError:
            expected = True
        seen[expected] += 1
        command = command_decoder.decode(doc)
        for decoded in (command, None):  # re-encoding the command; decoding again untyped
            found = duplicate_key(doc, decoded)
            assert (found is not None) == expected, doc
            assert found != []  # a path when found, never "unreadable"
        result = decode(doc)
        assert isinstance(result, Undecodable) == expected
    assert min(seen.values()) > 300  # both outcomes were exercised


def test_the_fast_duplicate_check_re_encodes_the_decoded_command() -> None:
    # If this fails, a contract type now makes msgspec write keys a record did not have (a
    # field default, a tag outside a union, a datetime...): the check stays exact but decodes
    # every record a second time. Prefer `X | UnsetType = UNSET` for optional fields.
    assert encodes_only_keys_it_decoded(mi.type_info(Command))


class _Plain(msgspec.Struct):
    a: int
    b: str | msgspec.UnsetType = msgspec.UNSET


class _Defaulted(msgspec.Struct):
    a: int = 0


class _TagA(msgspec.Struct, tag=True):
    a: int


class _TagB(msgspec.Struct, tag=True):
    b: int


class _Holder(msgspec.Struct):
    inner: _TagA


class _When(msgspec.Struct):
    at: datetime


@pytest.mark.parametrize(
    ("kind", "exact"),
    [
        (_Plain, True),
        (list[_Plain], True),
        (dict[str, _Plain], True),
        (_TagA | _TagB, True),
        (list[_TagA | _TagB], True),
        (_Defaulted, False),  # an absent `a` is written as 0
        (list[_Defaulted], False),
        (_TagA, False),  # the tag is optional when read, always written
        (_Holder, False),
        (_When, False),  # "Z" may come back as "+00:00"
    ],
)
def test_which_types_encode_only_the_keys_they_decoded(kind: object, exact: bool) -> None:
    assert encodes_only_keys_it_decoded(mi.type_info(kind)) is exact


# --- 6. ids with control characters or braces ----------------------------------------------

HOSTILE_IDS = {
    "nul": "s\x00x",
    "newline": "s\nx",
    "trailing-newline": "s-1\n",
    "carriage-return": "s\rx",
    "tab": "s\tx",
    "escape": "s\x1b[31mx",
    "del": "s\x7fx",
    "line-separator": "s\u2028x",
    "paragraph-separator": "s\u2029x",
    "next-line": "s\u0085x",
    "bidi-override": "s\u202ex",
    "zero-width-space": "s\u200bx",
    "open-brace": "s{x",
    "close-brace": "s}x",
    "hash-tag": "{s}",
    "space": "s x",
    "non-ascii-lookalike": "s\u2010x",
    "empty": "",
    "too-long": "s" * 129,
}


@pytest.mark.parametrize("value", list(HOSTILE_IDS.values()), ids=list(HOSTILE_IDS))
@pytest.mark.parametrize("field", ["commandId", "orgId", "sessionId"])
def test_hostile_ids_are_invalid_and_not_echoed(field: str, value: str) -> None:
    doc = good()
    doc[field] = value
    key = value.encode() if field == "sessionId" else SID.encode()
    result = rejected(encoded(doc), key)
    assert (result.rejection.code, result.rejection.path) == ("invalid", f"$.{field}")
    assert value not in (result.ids.command_id, result.ids.org_id, result.ids.session_id)


# --- 7. absurd arrays ---------------------------------------------------------------------


def message(role: str = "developer", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"role": role, "content": "x"}
    if role == "user":
        base = {"role": "user", "message": "m", "time": 1, "endTime": 2, "secondsFromStart": 0}
    return base | fields


def tool_call(i: int) -> dict[str, Any]:
    return {"id": f"call-{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}


ARRAYS: dict[str, tuple[Callable[[int], dict[str, Any]], int, str]] = {
    "create-messages": (
        lambda n: create_command(SID, messages=[message() for _ in range(n)]),
        MESSAGES_MAX_ITEMS,
        "$.payload.messages",
    ),
    "update-messages": (
        lambda n: update_command(SID, messages=[message() for _ in range(n)]),
        MESSAGES_MAX_ITEMS,
        "$.payload.messages",
    ),
    "tool_calls": (
        lambda n: create_command(
            SID, messages=[message("assistant", tool_calls=[tool_call(i) for i in range(n)])]
        ),
        TOOL_CALLS_MAX_ITEMS,
        "$.payload.messages[0].tool_calls",
    ),
    "detectedThreats": (
        lambda n: create_command(
            SID, messages=[message("user", detectedThreats=["prompt-injection"] * n)]
        ),
        DETECTED_THREATS_MAX_ITEMS,
        "$.payload.messages[0].detectedThreats",
    ),
    "hooks": (
        lambda n: create_command(
            SID,
            phoneNumber={
                "twilioAccountSid": "AC1",
                "twilioPhoneNumber": "+14155550199",
                "hooks": [{"on": "call.ringing", "do": []}] * n,
            },
        ),
        HOOKS_MAX_ITEMS,
        "$.payload.phoneNumber.hooks",
    ),
}


@pytest.mark.parametrize(("build", "limit", "path"), list(ARRAYS.values()), ids=list(ARRAYS))
def test_arrays_are_accepted_up_to_their_limit(
    build: Callable[[int], dict[str, Any]], limit: int, path: str
) -> None:
    accepted(encoded(build(limit)))


@pytest.mark.parametrize("extra", [1, 30_000])
@pytest.mark.parametrize(("build", "limit", "path"), list(ARRAYS.values()), ids=list(ARRAYS))
def test_arrays_past_their_limit_are_invalid_with_their_path(
    build: Callable[[int], dict[str, Any]], limit: int, path: str, extra: int
) -> None:
    value = encoded(build(limit + extra))
    if len(value) > MAX_BYTES:
        assert rejected(value).rejection.code == "too_large"
        return
    result = assert_rejected(value, path)
    assert result.rejection.message == f"Expected `array` of length <= {limit}"
    assert result.ids.session_id == SID


def test_opaque_arrays_are_bounded_by_the_record_size_only() -> None:
    doc = good()
    doc["payload"]["squad"]["members"] = [0] * 300_000
    value = encoded(doc)
    assert len(value) < MAX_BYTES
    accepted(value)
    doc["payload"]["squad"]["members"] = [0] * 400_000
    result = decode_record(SID.encode(), encoded(doc), MAX_BYTES)
    assert isinstance(result, Undecodable)
    assert result.rejection.code == "too_large"


# --- 8. what rejection messages carry -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"status": CANARY_AUTH_TOKEN}, "$.payload.status"),
        ({"messages": [{"role": CANARY_API_SECRET, "content": "x"}]}, "$.payload.messages[0].role"),
        ({"name": CANARY_SERVER_SECRET * 3}, "$.payload.name"),
        ({"expirationSeconds": CANARY_AUTH_TOKEN}, "$.payload.expirationSeconds"),
        ({"customer": {"number": CANARY_AUTH_TOKEN * 3}}, "$.payload.customer.number"),
    ],
    ids=["enum", "tag", "too-long", "wrong-type", "customer"],
)
def test_a_secret_in_the_wrong_field_is_not_echoed(change: dict[str, Any], path: str) -> None:
    doc = good()
    doc["payload"].update(change)
    assert_rejected(encoded(doc), path)  # and no canary in it: see assert_safe


def test_an_unknown_type_is_not_echoed() -> None:
    doc = good()
    doc["type"] = CANARY_API_SECRET
    result = rejected(encoded(doc))
    assert (result.rejection.code, result.rejection.path) == ("unsupported", "$.type")


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("x\nevil\x1b[31m" * 5, "[...]"),
        ("k" * 100_000, "[...]"),
        ("a b", '["a b"]'),
        ("\u2028", '["\\u2028"]'),
        ("plain_name", ".plain_name"),
    ],
    ids=["control-characters", "huge", "space", "line-separator", "plain"],
)
def test_an_unknown_field_path_stays_short_and_printable(name: str, step: str) -> None:
    doc = good()
    doc["payload"]["customer"][name] = 1
    result = assert_rejected(encoded(doc), "$.payload.customer" + step)
    assert result.rejection.message.startswith("Object contains unknown field `")


@pytest.mark.parametrize(
    "value",
    [
        encoded(good())[:-2],
        encoded(good()).replace(b'"Support chat"', b'"' + b"\x01" * 5000 + b'"'),
        encoded(good()).replace(b'"Support chat"', b'"' + CANARY_AUTH_TOKEN.encode()),
        b'{"commandId": "' + b"\xe2\x80\xa8" * 50_000 + b'"}',
        b"\x00" * 100_000,
        b"[" * 500_000,
    ],
    ids=["truncated", "control-characters", "unterminated-secret", "separators", "nuls", "opens"],
)
def test_malformed_records_get_short_printable_messages(value: bytes) -> None:
    result = rejected(value)
    assert result.rejection.code == "invalid"
    assert CANARY_AUTH_TOKEN.encode() not in result.rejection.message.encode()


# --- the cost of the checks, by hand ------------------------------------------------------


def _per_call_us(fn: Callable[[bytes], object], value: bytes, number: int) -> float:
    def call() -> object:
        return fn(value)

    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6


def measure() -> None:  # pragma: no cover - run by hand, see the module docstring
    """Prints the per-record cost of decoding and of each added check, for a typical 1.2 KB
    create, a typical-shaped 1 MiB create (1000 messages of about 1 KB each), and the worst
    cases found: a 1 MiB record of shallow brackets and one that takes the exact fallback."""
    typical = encoded(create_command(SID))
    filler = "lorem ipsum " * 83
    large_doc = create_command(
        SID,
        messages=[message(content=f"{i} {filler}") for i in range(MESSAGES_MAX_ITEMS)],
    )
    large = encoded(large_doc)
    brackets_doc = good()
    brackets_doc["payload"]["squad"]["x"] = json.loads(
        "[" + ",".join(["[[],[[]],{}]"] * 40_000) + "]"
    )
    brackets = encoded(brackets_doc)
    escaped_colon = encoded(good()).replace(b'"Support chat"', b'"Support\\u003a chat"')
    escaped_large = large.replace(b'"Support chat"', b'"Support\\u003a chat"')
    cases = [
        ("typical create", typical, 20_000),
        ("1 MiB, 1000 messages", large, 20),
        ("1 MiB, 200k shallow containers", brackets, 10),
        ("typical, escaped colon (exact path)", escaped_colon, 20_000),
        ("1 MiB, escaped colon (exact path)", escaped_large, 10),
    ]
    print(
        f"{'record':38s} {'bytes':>9s} {'msgspec':>9s} {'depth':>8s} {'dup':>8s}"
        f" {'dup-untyped':>11s} {'decode_record':>13s} {'before':>8s}   (us per record)"
    )
    for label, value, number in cases:
        assert len(value) <= MAX_BYTES, label
        assert isinstance(decode(value), Decoded), label
        command = command_decoder.decode(value)
        msgspec_us = _per_call_us(command_decoder.decode, value, number)
        depth_us = _per_call_us(lambda v: deeper_than(v, MAX_NESTING_DEPTH), value, number)
        dup_us = _per_call_us(functools.partial(_duplicate_of, command), value, number)
        untyped_us = _per_call_us(duplicate_key, value, number)
        total_us = _per_call_us(decode, value, number)
        before_us = _per_call_us(_decode_without_checks, value, number)
        print(
            f"{label:38s} {len(value):>9,d} {msgspec_us:9.1f} {depth_us:8.1f} {dup_us:8.1f}"
            f" {untyped_us:11.1f} {total_us:13.1f} {before_us:8.1f}"
        )


def _duplicate_of(command: object, value: bytes) -> object:  # pragma: no cover - for measure()
    return duplicate_key(value, command)


def _decode_without_checks(value: bytes) -> object:  # pragma: no cover - for measure()
    """What decode_record did on success before the nesting and duplicate checks."""
    if len(value) > MAX_BYTES:
        return None
    command = command_decoder.decode(value)
    return Decoded(command) if SID.encode().decode() == command.session_id else None
