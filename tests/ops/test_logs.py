"""`session-worker run`'s log: one JSON line per record outcome, no secrets, level honoured."""

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


async def test_each_outcome_is_one_json_line_with_its_ids_and_no_secret(
    harness: WorkerHarness, tmp_path: Path
) -> None:
    command = create_command()
    lines = await run_worker_on(harness, tmp_path / "worker.log", "info", [command])

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
    assert applied["level"] == "info"
    text = "\n".join(lines)
    assert CANARY_AUTH_TOKEN not in text
    assert CANARY_API_SECRET not in text


async def test_the_log_level_setting_hides_lower_levels(
    harness: WorkerHarness, tmp_path: Path
) -> None:
    lines = await run_worker_on(harness, tmp_path / "worker.log", "warning", [create_command()])
    levels = {json.loads(line).get("level") for line in lines if line.startswith("{")}
    assert levels <= {"warning", "error", "critical"}
