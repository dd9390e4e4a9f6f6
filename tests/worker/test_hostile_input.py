"""Hostile records end to end, through real Kafka and Redis: each gets one `command.rejected`
with a clear code and one dead letter (its original bytes), the worker carries on with the next
record, and secret values appear in no event, no dead-letter header, no Redis value and no log
line. The decoder's own cases are in tests/contracts/test_hostile_input.py."""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from contracts.decoding import DUPLICATE_KEY, MESSAGE_MAX_CHARS, TOO_DEEP
from tests.factories import (
    CANARY_API_SECRET,
    CANARY_AUTH_TOKEN,
    CANARY_SERVER_SECRET,
    create_command,
    create_payload,
    delete_command,
    new_id,
    update_command,
)
from tests.support import Record, WorkerHarness, WorkerProcess, stored_session
from worker.keys import KeySpace
from worker.session_record import parse_record
from worker.snapshot_codec import unpack_snapshot

pytestmark = pytest.mark.asyncio(loop_scope="function")

# Markers to search for, not secrets.
CANARY_CREDENTIAL_KEY = "canary-credential-api-key-3c4d"
CANARY_ASSISTANT_SECRET = "canary-assistant-server-secret-9e0f"
CANARIES = (
    CANARY_AUTH_TOKEN,
    CANARY_API_SECRET,
    CANARY_SERVER_SECRET,
    CANARY_CREDENTIAL_KEY,
    CANARY_ASSISTANT_SECRET,
)


# --- building hostile records ---------------------------------------------------------------

Build = Callable[[str], tuple[bytes, bytes]]  # sessionId -> (record key, record value)


def _raw_at(doc: dict[str, Any], where: list[str | int], raw: bytes) -> bytes:
    """`doc` as JSON with the text `raw` at `where` (what json.dumps cannot write)."""
    doc = json.loads(json.dumps(doc))
    holder: Any = doc
    for step in where[:-1]:
        holder = holder[step]
    holder[where[-1]] = "@@RAW@@"
    return json.dumps(doc).encode().replace(b'"@@RAW@@"', raw, 1)


def _record(value: bytes | dict[str, Any], session_id: str) -> tuple[bytes, bytes]:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return session_id.encode(), body


def _nested(levels: int, opening: bytes, closing: bytes) -> bytes:
    return opening * levels + b"0" + closing * levels


def _with(session_id: str, **payload: Any) -> dict[str, Any]:
    return create_command(session_id, **payload)


def _invalid_utf8(sid: str) -> tuple[bytes, bytes]:
    return _record(_raw_at(_with(sid), ["payload", "name"], b'"Sup\xffport"'), sid)


def _deep(levels: int, site: str, opening: bytes, closing: bytes) -> Build:
    def build(sid: str) -> tuple[bytes, bytes]:
        raw = _nested(levels, opening, closing)
        return _record(_raw_at(_with(sid), ["payload", site, "x"], raw), sid)

    return build


def _raw_value(where: list[str | int], raw: bytes) -> Build:
    def build(sid: str) -> tuple[bytes, bytes]:
        return _record(_raw_at(_with(sid), where, raw), sid)

    return build


def _trailing(sid: str) -> tuple[bytes, bytes]:
    return _record(json.dumps(_with(sid)).encode() + b' {"type": "session.delete"}', sid)


def _duplicate(where: list[str | int], decoy: object) -> Build:
    """The key at `where` written twice: `decoy` first, then the real value."""

    def build(sid: str) -> tuple[bytes, bytes]:
        doc = _with(sid)
        holder: Any = doc
        for step in where[:-1]:
            holder = holder[step]
        real = json.dumps({where[-1]: holder[where[-1]]})[1:-1].encode()
        first = json.dumps({where[-1]: decoy})[1:-1].encode()
        return _record(json.dumps(doc).encode().replace(real, first + b", " + real, 1), sid)

    return build


def _id(field: str, value: str) -> Build:
    def build(sid: str) -> tuple[bytes, bytes]:
        doc = _with(sid)
        doc[field] = value
        return _record(doc, value if field == "sessionId" else sid)

    return build


def _payload(**changes: Any) -> Build:
    def build(sid: str) -> tuple[bytes, bytes]:
        return _record(_with(sid, **changes), sid)

    return build


def _unknown_field(sid: str) -> tuple[bytes, bytes]:
    doc = _with(sid)
    doc["payload"]["customer"]["x\n\x1b[31mevil" * 1000] = CANARY_AUTH_TOKEN
    return _record(doc, sid)


def _message(role: str = "developer", **fields: Any) -> dict[str, Any]:
    if role == "user":
        return {"role": "user", "message": "m", "time": 1, "endTime": 2, "secondsFromStart": 0}
    return {"role": role, "content": "x", **fields}


def _tool_call(i: int) -> dict[str, Any]:
    return {"id": f"call-{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@dataclass(frozen=True)
class Hostile:
    build: Build
    code: str
    path: str | None
    message: str | None = None  # the exact message, when it is ours


HOSTILE: dict[str, Hostile] = {
    "invalid-utf8": Hostile(_invalid_utf8, "invalid", "$", "record value is not valid UTF-8"),
    "100k-nested-arrays": Hostile(
        _deep(100_000, "assistant", b"[", b"]"), "invalid", "$", TOO_DEEP
    ),
    "100k-nested-objects": Hostile(
        _deep(100_000, "squad", b'{"a":', b"}"), "invalid", "$", TOO_DEEP
    ),
    # msgspec decodes this one; walking it to redact credentials would pass Python's
    # recursion limit (two frames per level).
    "500-nested-objects": Hostile(
        _deep(500, "assistantOverrides", b'{"a":', b"}"), "invalid", "$", TOO_DEEP
    ),
    "nan": Hostile(_raw_value(["payload", "assistant", "temperature"], b"NaN"), "invalid", "$"),
    "infinity": Hostile(
        _raw_value(["payload", "squad", "members", 0, "weight"], b"-Infinity"), "invalid", "$"
    ),
    "1e400": Hostile(
        _raw_value(["payload", "assistantOverrides", "variableValues"], b"1e400"),
        "invalid",
        "$.payload.assistantOverrides[...]",
        "Number out of range",
    ),
    "trailing-bytes": Hostile(_trailing, "invalid", "$"),
    "duplicate-commandId": Hostile(
        _duplicate(["commandId"], "c-decoy"), "invalid", "$.commandId", DUPLICATE_KEY
    ),
    "duplicate-sessionId": Hostile(
        _duplicate(["sessionId"], "s-decoy"), "invalid", "$.sessionId", DUPLICATE_KEY
    ),
    "duplicate-in-opaque": Hostile(
        _duplicate(["payload", "squad", "members", 0, "assistantId"], "asst-decoy"),
        "invalid",
        "$.payload.squad.members[0].assistantId",
        DUPLICATE_KEY,
    ),
    "duplicate-secret": Hostile(
        _duplicate(["payload", "phoneNumber", "twilioAuthToken"], CANARY_API_SECRET),
        "invalid",
        "$.payload.phoneNumber.twilioAuthToken",
        DUPLICATE_KEY,
    ),
    "id-with-nul": Hostile(_id("commandId", "c\x00-1"), "invalid", "$.commandId"),
    "id-with-line-separator": Hostile(_id("orgId", "org\u2028-1"), "invalid", "$.orgId"),
    "id-with-braces": Hostile(_id("sessionId", "{s}-" + new_id("b")), "invalid", "$.sessionId"),
    "id-with-newline": Hostile(_id("sessionId", new_id("s") + "\n"), "invalid", "$.sessionId"),
    "1001-messages": Hostile(
        _payload(messages=[_message() for _ in range(1001)]),
        "invalid",
        "$.payload.messages",
        "Expected `array` of length <= 1000",
    ),
    "129-tool-calls": Hostile(
        _payload(messages=[_message("assistant", tool_calls=[_tool_call(i) for i in range(129)])]),
        "invalid",
        "$.payload.messages[0].tool_calls",
        "Expected `array` of length <= 128",
    ),
    "101-hooks": Hostile(
        _payload(
            phoneNumber={
                "twilioAccountSid": "AC1",
                "twilioPhoneNumber": "+14155550199",
                "hooks": [{"on": "call.ringing"}] * 101,
            }
        ),
        "invalid",
        "$.payload.phoneNumber.hooks",
        "Expected `array` of length <= 100",
    ),
    "unknown-field-with-hostile-name": Hostile(
        _unknown_field, "invalid", "$.payload.customer[...]"
    ),
    "secret-in-an-enum": Hostile(
        _payload(status=CANARY_AUTH_TOKEN), "invalid", "$.payload.status", "Invalid enum value"
    ),
}


# --- checks ---------------------------------------------------------------------------------


def _assert_no_canary(data: bytes | str, where: str) -> None:
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    for canary in CANARIES:
        assert canary not in text, f"{canary} found in {where}"


def _assert_safe_rejection(error: dict[str, Any]) -> None:
    message = error["message"]
    assert 0 < len(message) <= MESSAGE_MAX_CHARS
    assert message.isprintable()
    path = error.get("path")
    if path is not None:
        assert path.isascii()
        assert path.isprintable()


async def _redis_dump(redis_client: aioredis.Redis, prefix: str) -> list[bytes]:
    """Every key under the test's prefix and everything stored in it."""
    seen: list[Any] = []
    async for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000):
        seen.append(key)
        kind = _text(await redis_client.type(key))
        if kind == "string":
            # Snapshots are stored compressed: a secret would not show as text in them.
            value = await redis_client.get(key)
            assert isinstance(value, bytes)
            if b":r:" in key:  # the session record: its fields, then its copy of the snapshot
                record = parse_record(value)
                seen += [value.partition(b"\x1e")[0], record.snapshot() or b""]
            else:
                seen.append(unpack_snapshot(value))
        elif kind == "hash":
            for field, value in (await redis_client.hgetall(key)).items():
                seen += [field, value]
        elif kind == "zset":
            seen += await redis_client.zrange(key, 0, -1)
        elif kind == "list":
            seen += await redis_client.lrange(key, 0, -1)
        elif kind == "set":
            seen += await redis_client.smembers(key)
        else:
            raise AssertionError(f"unexpected Redis type {kind} at {key!r}")
    return [item if isinstance(item, bytes) else str(item).encode() for item in seen]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- every hostile record, one batch ----------------------------------------------------------


async def test_every_hostile_record_is_rejected_and_the_worker_carries_on(
    harness: WorkerHarness, redis_client: aioredis.Redis
) -> None:
    sent: dict[bytes, tuple[str, bytes]] = {}  # value -> (case, key)
    goods = []
    for case, hostile in HOSTILE.items():
        key, value = hostile.build(new_id("s"))
        assert value not in sent
        sent[value] = (case, key)
        good = create_command()
        goods.append(good)
        await harness.send(value, key=key)
        await harness.send(good)
    await harness.run_until_idle()

    events = [e.json() for e in await harness.events.wait_count(2 * len(HOSTILE))]
    dead = await harness.dead_letters.wait_count(len(HOSTILE))
    assert {e["commandId"] for e in events if e["type"] == "session.created"} == {
        g["commandId"] for g in goods
    }
    rejections = {e["eventId"]: e for e in events if e["type"] == "command.rejected"}
    assert len(rejections) == len(HOSTILE)

    answered = set()
    for letter in dead:
        assert letter.value in sent, "a dead letter that is not an original record"
        case, key = sent[letter.value]  # the value is the original, byte for byte
        hostile = HOSTILE[case]
        answered.add(case)
        assert letter.key == key, case
        _assert_dead_letter_headers(letter, hostile, case, harness.settings.commands_topic)
        event = rejections[letter.headers["error.event_id"].decode()]
        assert event["error"]["code"] == hostile.code, (case, event)
        assert event["error"].get("path") == hostile.path, (case, event)
        if hostile.message is not None:
            assert event["error"]["message"] == hostile.message, (case, event)
        _assert_safe_rejection(event["error"])
        _assert_no_canary(json.dumps(event), f"the rejection of {case}")
    assert answered == set(HOSTILE)  # one dead letter each, none twice
    assert len(dead) == len(HOSTILE)

    # Nothing of a hostile record reached Redis: only the good sessions exist.
    keys = KeySpace(harness.settings.key_prefix)
    live = {k async for k in redis_client.scan_iter(match=f"{keys.prefix}:*:s:*")}
    assert live == {keys.session(g["sessionId"]).live.encode() for g in goods}


def _assert_dead_letter_headers(letter: Record, hostile: Hostile, case: str, topic: str) -> None:
    headers = letter.headers
    assert headers["error.code"] == hostile.code.encode(), case
    assert headers.get("error.path") == (None if hostile.path is None else hostile.path.encode())
    assert headers["source.topic"] == topic.encode()
    for name, value in headers.items():
        _assert_no_canary(value, f"dead-letter header {name} of {case}")
        assert value.decode("ascii", "replace").isprintable(), (case, name, value)


# --- a running worker meets them one at a time --------------------------------------------------


@pytest.mark.parametrize(
    "case", ["100k-nested-arrays", "500-nested-objects", "duplicate-commandId", "invalid-utf8"]
)
async def test_a_running_worker_answers_each_and_applies_the_next(
    case: str, harness: WorkerHarness
) -> None:
    harness.start_worker()
    hostile = HOSTILE[case]
    key, value = hostile.build(new_id("s"))
    await harness.send(value, key=key)
    (rejected,) = [e.json() for e in await harness.events.wait_count(1)]
    assert (rejected["type"], rejected["error"]["code"]) == ("command.rejected", hostile.code)
    assert rejected["error"].get("path") == hostile.path

    good = create_command()
    await harness.send(good)
    events = [e.json() for e in await harness.events.wait_count(2)]
    assert (events[1]["type"], events[1]["commandId"]) == ("session.created", good["commandId"])
    (letter,) = await harness.dead_letters.wait_count(1)
    assert letter.value == value


# --- canaries: secrets go nowhere ------------------------------------------------------------


def _secret_laden_payload(**changes: Any) -> dict[str, Any]:
    """Every canary in its place: Twilio's typed secrets, and credentials inside the opaque
    assistant (kept because no assistantId is given) and phone-number server."""
    payload = create_payload(
        assistant={
            "name": "Agent",
            "credentials": [{"provider": "openai", "apiKey": CANARY_CREDENTIAL_KEY}],
            "server": {"url": "https://example.com/a", "secret": CANARY_ASSISTANT_SECRET},
        },
        **changes,
    )
    del payload["assistantId"]
    assert json.dumps(payload).count("canary-") == len(CANARIES)
    return payload


async def _take_canaries_through_the_worker(
    harness: WorkerHarness, redis_client: aioredis.Redis, wait: Callable[[int], Awaitable[None]]
) -> None:
    """Create, four kinds of rejection and an update, then a delete; checks events, dead-letter
    headers and Redis after each half. `wait(n)` returns once n events are out."""
    sid = new_id("s")
    create = {**create_command(sid), "payload": _secret_laden_payload()}
    too_long = {**create_command(new_id("s")), "payload": _secret_laden_payload(name="x" * 41)}
    wrong_field = {**create_command(new_id("s")), "payload": _secret_laden_payload()}
    wrong_field["payload"]["status"] = CANARY_AUTH_TOKEN  # a secret in the wrong place
    conflict = {**create_command(sid), "payload": _secret_laden_payload(name="Again")}
    _, repeated_key = _duplicate(["payload", "phoneNumber", "twilioAuthToken"], CANARY_API_SECRET)(
        new_id("s")
    )
    for command in (create, too_long, wrong_field, conflict):
        await harness.send(command)
    await harness.send(repeated_key, key=json.loads(repeated_key)["sessionId"])
    await harness.send(update_command(sid, name="Renamed", status="active"))
    await wait(6)
    live = await redis_client.get(KeySpace(harness.settings.key_prefix).session(sid).live)
    assert live is not None
    snapshot = stored_session(live)  # the secrets were replaced, not dropped
    assert snapshot["phoneNumber"]["twilioAuthToken"] == "[redacted]"
    assert snapshot["phoneNumber"]["twilioApiSecret"] == "[redacted]"
    assert snapshot["assistant"]["credentials"][0]["apiKey"] == "[redacted]"
    assert snapshot["assistant"]["server"]["secret"] == "[redacted]"
    for stored in await _redis_dump(redis_client, harness.settings.key_prefix):
        _assert_no_canary(stored, "Redis while the session lives")

    await harness.send(delete_command(sid))
    await wait(7)
    for stored in await _redis_dump(redis_client, harness.settings.key_prefix):
        _assert_no_canary(stored, "Redis after the delete")

    events = await harness.events.settle(0.5)
    kinds = sorted(e.json()["type"] for e in events)
    assert kinds == sorted(
        ["session.created", "session.updated", "session.deleted"] + ["command.rejected"] * 4
    )
    for event in events:
        assert event.value is not None
        _assert_no_canary(event.value, f"event {event.json()['type']}")
    for event in events:
        if event.json()["type"] == "command.rejected":
            _assert_safe_rejection(event.json()["error"])
    letters = await harness.dead_letters.wait_count(4)
    assert len(letters) == 4
    for letter in letters:
        for name, value in letter.headers.items():
            _assert_no_canary(value, f"dead-letter header {name}")
        # The value is the original record, byte for byte, canaries and all: the contract.


async def test_canary_secrets_go_nowhere_in_process(
    harness: WorkerHarness, redis_client: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process the worker logs through structlog's defaults (every level, to stdout); the
    # setting is passed anyway. The subprocess test below goes through the configured logging.
    harness.start_worker(log_level="debug")

    async def wait(count: int) -> None:
        await harness.events.wait_count(count)

    await _take_canaries_through_the_worker(harness, redis_client, wait)
    await harness.stop_workers()
    logged = capsys.readouterr()
    assert "rejected" in logged.out + logged.err  # the outcomes were logged: the check has teeth
    _assert_no_canary(logged.out, "stdout")
    _assert_no_canary(logged.err, "stderr")


async def test_canary_secrets_go_nowhere_from_a_worker_process_logging_at_debug(
    harness: WorkerHarness, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(harness.settings.replace(log_level="debug", log_format="json"), log_path)
    worker.start()
    try:

        async def wait(count: int) -> None:
            await harness.events.wait_count(count, timeout_s=60)

        await _take_canaries_through_the_worker(harness, redis_client, wait)
        assert worker.terminate() == 0
    finally:
        worker.ensure_stopped()
    logged = log_path.read_text(encoding="utf-8", errors="replace")
    assert "rejected" in logged  # the outcomes were logged: the check has teeth
    _assert_no_canary(logged, "the worker's log")
