"""Records a release's compatibility fixtures: the commands its kit writes and the events its
worker emits, byte for byte, from a real run.

    python -m tests.compat.record_fixtures 0.2.0

Run once per release, on the release's code, and commit the new directory. Never re-record an
existing release: its files stand for what that release's producers and worker wrote, and
tests/compat/test_fixtures.py checks that the current Structs still read them. Takes about 70 s
(one session is left to expire: 60 s is the contract's minimum). Starts its own Kafka and Redis
(or uses KAFKA_BOOTSTRAP_SERVERS / REDIS_URL).
"""

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from contracts.commands import Command, CreateSession, DeleteSession, UpdateSession
from contracts.messages import (
    AssistantMessage,
    DeveloperMessage,
    SystemMessage,
    ToolCall,
    ToolCallFunction,
    ToolMessage,
    UserMessage,
)
from contracts.payloads import (
    CreateCustomerDTO,
    CreateSessionDTO,
    ImportTwilioPhoneNumberDTO,
    UpdateSessionDTO,
)
from session_client import CommandPublisher
from tests.support import WorkerHarness, fresh_settings, services_for_tests

FIXTURES = Path(__file__).parent / "fixtures"
ORG = "org-compat"
MAX_RECORD_BYTES = 65_536  # the recording worker's limit, so a too_large record stays small


FULL_PAYLOAD = CreateSessionDTO(
    name="Support chat",
    status="active",
    expiration_seconds=3600,
    assistant_id="asst-1",
    assistant={"model": {"provider": "openai"}, "note": "ignored: assistantId is given"},
    assistant_overrides={"variableValues": {"plan": "gold"}, "x-future": [1, 2.5, None]},
    squad={"members": [{"assistantId": "asst-2"}]},
    messages=[
        SystemMessage(message="Be brief.", time=1_795_494_600_000, seconds_from_start=0),
        UserMessage(
            message="Where is my order?",
            time=1_795_494_601_000,
            end_time=1_795_494_602_500.5,
            seconds_from_start=1,
            duration=1.5,
            is_filtered=False,
            detected_threats=[],
            original_message="Where is my order?",
            metadata={"channel": "web", "apiKey": "compat-not-a-real-key"},
            speaker_label="customer",
        ),
        AssistantMessage(
            content="Checking.",
            tool_calls=[
                ToolCall(
                    id="call-1",
                    type="function",
                    function=ToolCallFunction(arguments='{"order": 7}', name="lookup_order"),
                )
            ],
            name="helper",
        ),
        ToolMessage(content="shipped", tool_call_id="call-1", name="lookup_order"),
        DeveloperMessage(content="Stay on topic.", metadata={"rule": 3}),
        AssistantMessage(refusal="I cannot share that."),
    ],
    customer=CreateCustomerDTO(
        number_e164_check_enabled=True,
        extension="12",
        assistant_overrides={"firstMessage": "Hi Ada"},
        number="+14155550100",
        sip_uri="sip:ada@example.com",
        name="Ada",
        email="ada@example.com",
        external_id="crm-7",
    ),
    customer_id="cust-1",
    phone_number_id="pn-1",
    phone_number=ImportTwilioPhoneNumberDTO(
        twilio_account_sid="AC123",
        twilio_phone_number="+14155550199",
        fallback_destination={"type": "number", "number": "+14155550111"},
        hooks=[{"on": "call.ringing", "do": [{"type": "say", "exampleSecret": "x"}]}],
        sms_enabled=True,
        twilio_auth_token="compat-auth-token",
        twilio_api_key="compat-api-key",
        twilio_api_secret="compat-api-secret",
        name="Front desk",
        assistant_id="asst-1",
        workflow_id="wf-1",
        squad_id="sq-1",
        server={"url": "https://example.com/hook", "secret": "compat-server-secret"},
    ),
)


def valid_commands() -> list[tuple[str, Command]]:
    """(file name, command), in the order they are sent; every one is applied."""

    def envelope(name: str, session: str) -> dict[str, str]:
        return {"command_id": f"c-{name}", "org_id": ORG, "session_id": f"s-{session}"}

    return [
        (
            "create-minimal",
            CreateSession(**envelope("create-minimal", "min"), payload=CreateSessionDTO()),
        ),
        ("create-full", CreateSession(**envelope("create-full", "full"), payload=FULL_PAYLOAD)),
        (
            "create-completed",
            CreateSession(
                **envelope("create-completed", "done"),
                payload=CreateSessionDTO(name="Closed at once", status="completed"),
            ),
        ),
        (
            "create-expiring",
            CreateSession(
                **envelope("create-expiring", "exp"),
                payload=CreateSessionDTO(name="Short-lived", expiration_seconds=60.5),
            ),
        ),
        (
            "update-name",
            UpdateSession(
                **envelope("update-name", "full"), payload=UpdateSessionDTO(name="Renamed")
            ),
        ),
        (
            "update-messages-expiration",
            UpdateSession(
                **envelope("update-messages-expiration", "full"),
                payload=UpdateSessionDTO(
                    expiration_seconds=7200,
                    messages=[
                        UserMessage(message="Thanks", time=1, end_time=2, seconds_from_start=0)
                    ],
                ),
            ),
        ),
        (
            "update-complete",
            UpdateSession(
                **envelope("update-complete", "full"), payload=UpdateSessionDTO(status="completed")
            ),
        ),
        ("delete", DeleteSession(**envelope("delete", "full"))),
    ]


# A command as a producer in another language might write it: its own key order and spacing.
HAND_WRITTEN = (
    b'{\n  "type": "session.create",\n  "sessionId": "s-hand",\n  "orgId": "org-compat",\n'
    b'  "commandId": "c-create-hand-written",\n  "payload": {\n    "expirationSeconds": 120,\n'
    b'    "name": "Written by hand",\n    "squadId": "sq-9"\n  }\n}\n'
)

# (event file suffix, key, value): each is rejected with the code in its name.
BAD_RECORDS: list[tuple[str, bytes | None, bytes]] = [
    (
        "invalid",
        b"s-bad",
        b'{"commandId":"c-bad","type":"session.create","orgId":"org-compat",'
        b'"sessionId":"s-bad","payload":{"name":"' + b"x" * 41 + b'"}}',
    ),
    ("invalid-json", b"s-bad", b'{"commandId": "c-broken", '),
    ("too_large", b"s-big", b'{"pad":"' + b"x" * MAX_RECORD_BYTES + b'"}'),
    (
        "unsupported",
        b"s-bad",
        b'{"commandId":"c-archive","type":"session.archive","orgId":"org-compat",'
        b'"sessionId":"s-bad"}',
    ),
    (
        "not_found",
        b"s-nobody",
        b'{"commandId":"c-update-nobody","type":"session.update","orgId":"org-compat",'
        b'"sessionId":"s-nobody","payload":{"name":"x"}}',
    ),
    (
        "conflict",
        b"s-min",
        b'{"commandId":"c-create-again","type":"session.create","orgId":"org-compat",'
        b'"sessionId":"s-min","payload":{}}',
    ),
]


async def record(release: str) -> Path:
    target = FIXTURES / release
    if target.exists():
        raise SystemExit(f"{target} exists: a release's fixtures are never re-recorded")
    commands = valid_commands()
    with services_for_tests() as services:
        settings = await fresh_settings(
            services.bootstrap_servers,
            services.redis_url,
            partitions=1,  # one partition: the events come out in the order sent
            key_prefix=f"compat-{release}",
            max_record_bytes=MAX_RECORD_BYTES,
        )
        async with WorkerHarness(settings) as harness:
            harness.start_worker()
            async with CommandPublisher(
                settings.kafka_bootstrap_servers,
                topic=settings.commands_topic,
                max_record_bytes=MAX_RECORD_BYTES,
            ) as publisher:
                written = {name: publisher.encode(command) for name, command in commands}
                for record_ in written.values():
                    await publisher.publish_records([record_])
            await harness.send(HAND_WRITTEN, key="s-hand")
            for _, key, value in BAD_RECORDS:
                await harness.send(value, key=key)
            expected = len(commands) + 1 + len(BAD_RECORDS) + 1  # and one expiry
            records = await harness.events.wait_count(expected, timeout_s=120)
    events = [r.value or b"" for r in records]

    (target / "commands").mkdir(parents=True)
    (target / "events").mkdir()
    for name, record_ in written.items():
        (target / "commands" / f"{name}.json").write_bytes(record_.value)
    (target / "commands" / "create-hand-written.json").write_bytes(HAND_WRITTEN)
    for value in events:
        event = json.loads(value)
        path = target / "events" / f"{event['type']}--{_cause(event)}.json"
        if path.exists():
            raise RuntimeError(f"two events would be written to {path}")
        path.write_bytes(value)
    return target


def _cause(event: dict[str, object]) -> str:
    """What made the worker emit `event`, for its file name."""
    if event["type"] == "session.expired":
        return "expiry"
    if event["type"] == "command.rejected":
        error = event["error"]
        assert isinstance(error, dict)
        code = error["code"]
        if code == "invalid" and error.get("path") == "$":
            return "invalid-json"
        return str(code)
    command_id = str(event["commandId"])
    return command_id.removeprefix("c-")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compat.record_fixtures")
    parser.add_argument("release", help="the release being recorded, e.g. 0.2.0")
    args = parser.parse_args(argv)
    print(f"wrote {asyncio.run(record(args.release))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
