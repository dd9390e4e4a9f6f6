"""contracts/asyncapi.json: current with the Structs, a valid AsyncAPI 3.0.0 document, and in
agreement with the worker (topics, headers, topic settings) and with real records.

Validity is checked with the official AsyncAPI 3.0.0 JSON Schema (vendored from the npm package
@asyncapi/specs 6.11.1, see VENDORED.md) and the `jsonschema` library's draft-07 validator; the
references and the operation/channel rule that a JSON Schema cannot express are checked here.
"""

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs in dev deps
from referencing import Registry
from referencing.jsonschema import DRAFT7

from contracts import asyncapi
from contracts.commands import COMMAND_TYPES, CreateSession
from contracts.payloads import CreateSessionDTO
from session_client import EVENT_TYPES, encode_command
from tests.compat.releases import COMMAND_FILES, EVENT_FILES, fixture_id
from worker.ops.topics import plan
from worker.settings import Settings

SPEC_PATH = Path(__file__).parent / "asyncapi-3.0.0.schema.json"
SPEC_SHA256 = "d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626"  # 6.11.1
DOC_URI = "urn:session-worker:asyncapi"


@cache
def spec_validator() -> Draft7Validator:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    assert spec["$schema"] == "http://json-schema.org/draft-07/schema"
    return Draft7Validator(spec)


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(asyncapi.DOCUMENT_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def payload_validator(message_key: str) -> Draft7Validator:
    """Validates a record value against a message's payload schema, inside the document."""
    doc = document()
    registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT7.create_resource(doc))
    ref = doc["components"]["messages"][message_key]["payload"]["$ref"]
    return Draft7Validator({"$ref": DOC_URI + ref}, registry=registry)


def message_key(record_type: str) -> str:
    key: str
    (key,) = [
        k for k, m in document()["components"]["messages"].items() if m["name"] == record_type
    ]
    return key


# --- current and valid -----------------------------------------------------------------------


def test_checked_in_document_is_up_to_date() -> None:
    assert asyncapi.DOCUMENT_PATH.read_text(encoding="utf-8") == asyncapi.render(), (
        "contracts/asyncapi.json is stale: run `python -m contracts.asyncapi write`"
    )
    assert asyncapi.render() == asyncapi.render()  # deterministic


def test_cli_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert asyncapi.main(["check"]) == 0
    path = tmp_path / "asyncapi.json"
    assert asyncapi.main(["check", "--path", str(path)]) == 1
    assert "is missing" in capsys.readouterr().err
    assert asyncapi.main(["write", "--path", str(path)]) == 0
    assert asyncapi.main(["check", "--path", str(path)]) == 0
    path.write_text(path.read_text(encoding="utf-8").replace('"0.1.0"', '"0.0.9"'))
    assert asyncapi.main(["check", "--path", str(path)]) == 1
    assert "is out of date" in capsys.readouterr().err


def test_vendored_schema_is_the_published_one() -> None:
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() == SPEC_SHA256


def test_document_is_valid_asyncapi_3_0_0() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in spec_validator().iter_errors(doc)]
    assert errors == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split("/")

    def change(doc: dict[str, Any]) -> None:
        node = doc
        for step in parents:
            node = node[step]
        node[last] = value

    return change


BROKEN = {
    "version-2": _set("asyncapi", "2.6.0"),
    "action-publish": _set("operations/sendEvents/action", "publish"),
    "openapi-discriminator": _set(
        "components/schemas/Session/discriminator", {"propertyName": "status"}
    ),
    "message-unknown-field": _set("components/messages/sessionCreate/key", "sessionId"),
    "binding-wrong-type": _set(
        "channels/events/bindings/kafka/topicConfiguration/retention.ms", "7d"
    ),
}


@pytest.mark.parametrize("change", BROKEN.values(), ids=BROKEN.keys())
def test_validator_rejects_a_broken_document(change: Callable[[dict[str, Any]], None]) -> None:
    doc = copy.deepcopy(document())
    change(doc)
    assert not spec_validator().is_valid(doc)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves() -> None:
    doc = document()
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = doc
        for step in ref[2:].split("/"):
            assert step in node, f"{ref} does not resolve"
            node = node[step]


def test_operations_send_only_their_channels_messages() -> None:
    doc = document()
    for name, operation in doc["operations"].items():
        channel = operation["channel"]["$ref"].removeprefix("#/channels/")
        for message in operation["messages"]:
            prefix = f"#/channels/{channel}/messages/"
            assert message["$ref"].startswith(prefix), (name, message)
            assert message["$ref"].removeprefix(prefix) in doc["channels"][channel]["messages"]


# --- in agreement with the Structs and the worker --------------------------------------------


def test_one_message_per_command_and_event_type() -> None:
    doc = document()
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == COMMAND_TYPES | EVENT_TYPES | {"dead-letter"}
    channel_messages = {
        channel: set(doc["channels"][channel]["messages"])
        for channel in ("commands", "events", "deadLetters")
    }
    assert {message_key(t) for t in COMMAND_TYPES} == channel_messages["commands"]
    assert {message_key(t) for t in EVENT_TYPES} == channel_messages["events"]


def test_the_kits_command_headers_and_the_topic_plan_match_the_document() -> None:
    # Topic names and header names are defined once (contracts/wire.py); what is checked here is
    # what is built from them: the headers the kit sets and the topics `topics` creates.
    doc = document()
    schemas = doc["components"]["schemas"]
    record = encode_command(
        CreateSession(command_id="c-1", org_id="o-1", session_id="s-1", payload=CreateSessionDTO())
    )
    headers = {name: value.decode() for name, value in record.headers}
    assert Draft7Validator(schemas["CommandHeaders"]).is_valid(headers)
    assert set(headers) == set(schemas["CommandHeaders"]["properties"])
    for topic in plan(Settings(), partitions=1):
        (channel,) = [c for c in doc["channels"].values() if c["address"] == topic.name]
        configured = channel["bindings"]["kafka"]["topicConfiguration"]
        assert configured["retention.ms"] == int(topic.config["retention.ms"])
        assert configured["max.message.bytes"] == int(topic.config["max.message.bytes"])
        assert configured["cleanup.policy"] == [topic.config["cleanup.policy"]]


@pytest.mark.parametrize("path", COMMAND_FILES + EVENT_FILES, ids=fixture_id)
def test_recorded_records_match_their_message_schema(path: Path) -> None:
    value = json.loads(path.read_bytes())
    validator = payload_validator(message_key(value["type"]))
    assert [e.message for e in validator.iter_errors(value)] == []


def test_message_schema_rejects_what_the_worker_rejects() -> None:
    command = json.loads(COMMAND_FILES[0].read_bytes())
    validator = payload_validator(message_key(command["type"]))
    assert not validator.is_valid({**command, "commandId": "has space"})
    assert not validator.is_valid({**command, "unknownField": 1})
    assert not validator.is_valid({**command, "payload": {"name": "x" * 41}})
