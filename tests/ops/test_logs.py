"""`session-worker run`'s log: a JSON line per batch, per record at debug; no secrets; levels."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.factories import CANARY_API_SECRET, CANARY_AUTH_TOKEN, create_command
from tests.support import WorkerHarness, WorkerProcess

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def run_worker_on(
    harness: WorkerHarness, log_path: Path, level: str, commands: list[dict[str, Any]]
) -> list[str]:
    """Runs `session-worker run` until it has answered `commands`; returns its log lines."""
    settings = harness.settings.replace(log_level=level, log_format="json")
    process = WorkerProcess(settings, log_path)
    process.start()
    try:
        for command in commands:
            await harness.send(command)
        await harness.events.wait_count(len(commands))
        assert await asyncio.to_thread(process.terminate) == 0
    finally:
        process.ensure_stopped()
    return (await asyncio.to_thread(log_path.read_text)).splitlines()


async def test_at_info_each_batch_is_one_json_line_with_its_offsets(
    harness: WorkerHarness, tmp_path: Path
) -> None:
    commands = [create_command() for _ in range(3)]
    lines = await run_worker_on(harness, tmp_path / "worker.log", "info", commands)

    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert not [r for r in records if r.get("event") == "command applied"]
    batches = [r for r in records if r.get("event") == "batch committed"]
    assert sum(b["records"] for b in batches) == 3
    assert sum(b["outcomes"]["applied"] for b in batches) == 3
    assert all(b["level"] == "info" and b["duration_ms"] >= 0 for b in batches)
    spans = [span for b in batches for span in b["offsets"].values()]
    assert sum(last - first + 1 for first, last in spans) == 3
    topics = {name.rsplit(":", 1)[0] for b in batches for name in b["offsets"]}
    assert topics == {harness.settings.commands_topic}


async def test_at_debug_each_outcome_is_one_json_line_with_its_ids_and_no_secret(
    harness: WorkerHarness, tmp_path: Path
) -> None:
    command = create_command()
    lines = await run_worker_on(harness, tmp_path / "worker.log", "debug", [command])

    records = [json.loads(line) for line in lines if line.startswith("{")]
    (applied,) = [r for r in records if r.get("event") == "command applied"]
    assert applied["outcome"] == "applied"
    assert applied["topic"] == harness.settings.commands_topic
    assert isinstance(applied["partition"], int)
    assert applied["offset"] == 0
    assert applied["command_id"] == command["commandId"]
    assert applied["session_id"] == command["sessionId"]
    assert applied["org_id"] == command["orgId"]
    assert applied["duration_ms"] >= 0
    assert applied["level"] == "debug"
    text = "\n".join(lines)
    assert CANARY_AUTH_TOKEN not in text
    assert CANARY_API_SECRET not in text


async def test_the_log_level_setting_hides_lower_levels(
    harness: WorkerHarness, tmp_path: Path
) -> None:
    lines = await run_worker_on(harness, tmp_path / "worker.log", "warning", [create_command()])
    levels = {json.loads(line).get("level") for line in lines if line.startswith("{")}
    assert levels <= {"warning", "error", "critical"}
