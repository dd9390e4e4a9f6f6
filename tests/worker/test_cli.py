"""The command line against real services."""

import asyncio
import subprocess
import sys

import pytest

from tests.factories import CANARY_AUTH_TOKEN, create_command, delete_command
from tests.support import WorkerHarness, settings_env

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def _cli(harness: WorkerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`session-worker ARGS` as a user runs it, with this test's settings in the environment."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "worker", *args],
        env=settings_env(harness.settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_get_prints_the_live_snapshot_redacted_with_its_ttl(harness: WorkerHarness) -> None:
    command = create_command(expirationSeconds=3600)
    await harness.send(command)
    await harness.run_until_idle()

    shown = await _cli(harness, "get", command["sessionId"])
    assert shown.returncode == 0, shown.stderr
    assert f'"id": "{command["sessionId"]}"' in shown.stdout
    assert CANARY_AUTH_TOKEN not in shown.stdout
    assert '"twilioAuthToken": "[redacted]"' in shown.stdout
    ttl_s = float(shown.stdout.rsplit("expires in ", 1)[1].split()[0])
    assert 3590 < ttl_s <= 3600
    assert "version 1" in shown.stdout


async def test_get_says_clearly_when_a_session_does_not_exist(harness: WorkerHarness) -> None:
    missing = await _cli(harness, "get", "no-such-session")
    assert missing.returncode == 1
    assert "session 'no-such-session' not found" in missing.stderr

    command = create_command()
    await harness.send(command)
    await harness.send(delete_command(command["sessionId"]))
    await harness.run_until_idle()
    gone = await _cli(harness, "get", command["sessionId"])
    assert gone.returncode == 1
    assert "not found (deleted, version 2)" in gone.stderr


async def test_a_bad_setting_is_named(harness: WorkerHarness) -> None:
    result = await _cli(harness, "get", "x", "--batch-max-records", "0")
    assert result.returncode == 2
    assert "SW_BATCH_MAX_RECORDS=0: must be greater than 0" in result.stderr
