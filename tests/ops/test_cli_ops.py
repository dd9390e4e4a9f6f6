"""The operator's commands against real Kafka and Redis, each run as a user runs it."""

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.factories import create_command, delete_command, update_command
from tests.ops.helpers import cli
from tests.support import Record, TopicReader, WorkerHarness, settings_env
from worker.ops.topics import plan
from worker.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_topics_creates_then_checks_and_names_what_differs(
    services_settings: Settings,
) -> None:
    s = services_settings
    created = await cli(s, "topics", "--partitions", "2")
    assert created.returncode == 0, created.stderr
    assert f"{s.commands_topic}: created" in created.stdout

    same = await cli(s, "topics", "--partitions", "2", "--check")
    assert same.returncode == 0, same.stderr
    assert f"{s.events_topic}: ok" in same.stdout

    again = await cli(s, "topics", "--partitions", "2")
    assert again.returncode == 0
    assert f"{s.dead_letter_topic}: exists" in again.stdout

    more = await cli(s, "topics", "--partitions", "4", "--check")
    assert more.returncode == 1
    assert f"{s.commands_topic}: differs: partitions 2, expected 4" in more.stdout
    assert "topics differ" in more.stderr


async def test_topics_check_reports_missing_topics_and_other_settings(
    services_settings: Settings,
) -> None:
    s = services_settings
    dead_letters = next(t for t in plan(s, 2) if t.name == s.dead_letter_topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await admin.start()
    try:
        wrong = {**dead_letters.config, "retention.ms": "3600000", "cleanup.policy": "compact"}
        await admin.create_topics([NewTopic(s.dead_letter_topic, 2, 1, topic_configs=wrong)])
    finally:
        await admin.close()
    checked = await cli(s, "topics", "--partitions", "2", "--check")
    assert checked.returncode == 1
    assert f"{s.commands_topic}: differs: missing" in checked.stdout
    line = next(x for x in checked.stdout.splitlines() if x.startswith(s.dead_letter_topic))
    assert "cleanup.policy compact, expected delete" in line
    assert "retention.ms 3600000, expected 2592000000" in line


async def test_publish_sends_valid_lines_keyed_by_session_and_reports_the_rest(
    harness: WorkerHarness, tmp_path: Path
) -> None:
    first, second = create_command(), create_command()
    lines = [
        json.dumps(first),
        "{not json",
        "",
        json.dumps(second),
        '["a list"]',
        json.dumps({"commandId": "c-1", "type": "session.delete", "orgId": "o"}),
    ]
    path = tmp_path / "commands.jsonl"
    path.write_text("\n".join(lines) + "\n")

    published = await cli(harness.settings, "publish", str(path))
    assert published.returncode == 1  # some lines were not sent
    assert "2 of 2 commands acknowledged" in published.stdout
    assert "3 invalid line(s) not sent" in published.stdout
    assert "line 2: invalid JSON" in published.stderr
    assert "line 5: not a JSON object" in published.stderr
    assert "line 6: no string sessionId" in published.stderr

    commands = await _read_all(harness.settings, harness.settings.commands_topic, 2)
    assert {(r.key, r.value) for r in commands} == {
        (first["sessionId"].encode(), json.dumps(first).encode()),
        (second["sessionId"].encode(), json.dumps(second).encode()),
    }


async def test_publish_reads_stdin_and_the_worker_applies_it(harness: WorkerHarness) -> None:
    command = create_command()
    published = await cli(harness.settings, "publish", stdin=json.dumps(command) + "\n")
    assert published.returncode == 0, published.stderr
    assert "1 of 1 commands acknowledged" in published.stdout
    await harness.run_until_idle()
    events = await harness.events.wait_count(1)
    assert events[0].json()["type"] == "session.created"

    missing = await cli(harness.settings, "publish", "/no/such/file.jsonl")
    assert missing.returncode == 1
    assert "No such file" in missing.stderr


async def test_tail_from_the_beginning_filters_by_type_and_session(
    harness: WorkerHarness,
) -> None:
    kept, other = create_command(), create_command()
    for command in (
        kept,
        other,
        update_command(kept["sessionId"], name="Renamed"),
        delete_command(other["sessionId"]),
    ):
        await harness.send(command)
    await harness.run_until_idle()
    await harness.events.wait_count(4)

    created = await cli(
        harness.settings, "tail", "--from-beginning", "--type", "session.created", "--limit", "2"
    )
    assert created.returncode == 0, created.stderr
    assert "from the beginning" in created.stderr
    shown = [json.loads(line) for line in created.stdout.splitlines()]
    assert [e["type"] for e in shown] == ["session.created", "session.created"]

    one = await cli(
        harness.settings, "tail", "--from-beginning", "--session", kept["sessionId"], "--limit", "2"
    )
    types = [json.loads(line)["type"] for line in one.stdout.splitlines()]
    assert types == ["session.created", "session.updated"]
    assert {json.loads(line)["sessionId"] for line in one.stdout.splitlines()} == {
        kept["sessionId"]
    }

    bad_type = await cli(harness.settings, "tail", "--type", "session.exploded")
    assert bad_type.returncode == 2
    assert "invalid choice" in bad_type.stderr


async def test_tail_starts_at_the_end_by_default(harness: WorkerHarness) -> None:
    before = create_command()
    await harness.send(before)
    await harness.run_until_idle()
    await harness.events.wait_count(1)

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "tail",
        "--limit",
        "1",
        env=settings_env(harness.settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        ready = await asyncio.wait_for(process.stderr.readline(), 20)
        assert b"from the end" in ready
        after = create_command()
        await harness.send(after)
        await harness.run_until_idle()
        out, _ = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    (event,) = [json.loads(line) for line in out.decode().splitlines()]
    assert event["sessionId"] == after["sessionId"]


async def test_dlq_lists_reasons_and_replays_chosen_records(harness: WorkerHarness) -> None:
    s = harness.settings
    orphan = delete_command("s-orphan")  # not_found: the session does not exist yet
    await harness.send(orphan)
    await harness.send(b"{broken", key=b"k-broken")
    await harness.run_until_idle()
    letters = await harness.dead_letters.wait_count(2)

    listed = await cli(s, "dlq")
    assert listed.returncode == 0, listed.stderr
    assert "2 dead letter(s)" in listed.stderr
    assert "not_found $.sessionId: session not found  key=s-orphan" in listed.stdout
    assert "invalid $:" in listed.stdout

    as_json = await cli(s, "dlq", "list", "--json")
    described = [json.loads(line) for line in as_json.stdout.splitlines()]
    by_key = {d["key"]: d for d in described}
    assert by_key["s-orphan"]["error"] == {
        "code": "not_found",
        "message": "session not found",
        "path": "$.sessionId",
    }
    assert by_key["s-orphan"]["source"]["topic"] == s.commands_topic
    assert "value" not in by_key["s-orphan"]  # the original command is never printed

    orphan_letter = next(r for r in letters if r.key == b"s-orphan")
    position = f"{orphan_letter.partition}:{orphan_letter.offset}"
    dry = await cli(s, "dlq", "replay", "--offset", position, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "1 dead letter(s) would be replayed" in dry.stdout

    replayed = await cli(s, "dlq", "replay", "--offset", position, "--offset", "0:999")
    assert replayed.returncode == 1  # 0:999 is not there
    assert "1 dead letter(s) replayed" in replayed.stdout
    assert "not found: 0:999" in replayed.stdout

    everything = await cli(s, "dlq", "replay", "--all")
    assert everything.returncode == 0, everything.stderr
    assert "2 dead letter(s) replayed" in everything.stdout

    commands = await _read_all(s, s.commands_topic, 5)
    replays = [r for r in commands if r.key in (b"s-orphan", b"k-broken")]
    assert sorted((r.key or b"", r.value or b"") for r in replays) == sorted(
        [
            (b"s-orphan", json.dumps(orphan).encode()),
            (b"s-orphan", json.dumps(orphan).encode()),
            (b"s-orphan", json.dumps(orphan).encode()),
            (b"k-broken", b"{broken"),
            (b"k-broken", b"{broken"),
        ]
    )

    usage = await cli(s, "dlq", "replay")
    assert usage.returncode == 2
    assert "one of the arguments --offset --all is required" in usage.stderr
    bad = await cli(s, "dlq", "replay", "--offset", "zero")
    assert bad.returncode == 2
    assert "is not PARTITION:OFFSET" in bad.stderr


async def test_commands_say_clearly_when_kafka_is_not_there(settings: Settings) -> None:
    nowhere = settings.replace(kafka_bootstrap_servers="127.0.0.1:1")
    result = await cli(nowhere, "dlq")
    assert result.returncode == 1
    assert "session-worker dlq: KafkaConnectionError" in result.stderr
    assert "Traceback" not in result.stderr


async def _read_all(settings: Settings, topic: str, count: int) -> list[Record]:
    reader = TopicReader(settings.kafka_bootstrap_servers, topic)
    await reader.start()
    try:
        return await reader.wait_count(count)
    finally:
        await reader.stop()


@pytest.fixture
def services_settings(settings: Settings) -> Settings:
    """This test's settings with topic names that do not exist yet."""
    run = uuid.uuid4().hex[:10]
    return settings.replace(
        commands_topic=f"n{run}.commands",
        events_topic=f"n{run}.events",
        dead_letter_topic=f"n{run}.commands.dlq",
    )
