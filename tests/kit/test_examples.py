"""The examples in docs/clients.md run, against the real broker and a running worker.

Every `python` and `sh` block of the guide is named by an `<!-- example: NAME -->` line just
above it and run here, with the broker address and topic names replaced by the test's own. kcat
(Debian package `kcat`) is the second, independent client: it publishes what the worker applies
and reads what the worker emits; its tests are skipped only when it is not installed.
"""

import asyncio
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.decoding import Decoded, decode_record
from session_client import read_event
from session_client.events import event_type
from tests.support import TopicReader, WorkerHarness
from worker.settings import Settings

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "clients.md"
RUNNABLE = {"python", "sh"}
BLOCK_TIMEOUT_S = 30.0
GUIDE_SESSION = "5b0c7c5e-4f59-4f4e-9d0a-3b8f0f6e2a11"  # the sessionId the Python examples use

_FENCE = re.compile(
    r"(?:^<!-- example: (?P<name>[\w-]+) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.DOTALL | re.MULTILINE,
)
_DEFAULTS = re.compile(
    r"sessions\.commands\.dlq|sessions\.commands|sessions\.events|localhost:9092"
)
KCAT = shutil.which("kcat")
needs_kcat = pytest.mark.skipif(
    KCAT is None, reason="kcat is not installed (Debian: apt-get install -y kcat)"
)


@dataclass(frozen=True)
class Example:
    name: str | None
    lang: str
    body: str


def examples() -> list[Example]:
    text = GUIDE.read_text(encoding="utf-8")
    return [Example(m["name"], m["lang"], m["body"]) for m in _FENCE.finditer(text)]


def example(name: str) -> Example:
    (found,) = [e for e in examples() if e.name == name]
    return found


def localised(body: str, settings: Settings) -> str:
    """The example with the test's broker and topics instead of the defaults."""
    own = {
        "localhost:9092": settings.kafka_bootstrap_servers,
        "sessions.commands": settings.commands_topic,
        "sessions.events": settings.events_topic,
        "sessions.commands.dlq": settings.dead_letter_topic,
    }
    return _DEFAULTS.sub(lambda m: own[m.group(0)], body)


async def run(name: str, settings: Settings) -> str:
    """Runs the example without blocking the worker's event loop; returns its stdout."""
    block = example(name)
    body = localised(block.body, settings)
    argv = [sys.executable, "-c", body] if block.lang == "python" else ["bash", "-c", body]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(ROOT)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers  # for examples that read it
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), BLOCK_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"example {name} failed:\n{err.decode()}"
    return out.decode()


def test_every_runnable_block_is_named_and_run_here() -> None:
    runnable = [e for e in examples() if e.lang in RUNNABLE]
    assert all(e.name for e in runnable), "name every python/sh block: <!-- example: NAME -->"
    assert {e.name for e in runnable} == PYTHON_EXAMPLES | KCAT_EXAMPLES
    assert all(e.lang in RUNNABLE | {"text", "json"} for e in examples())


PYTHON_EXAMPLES = {"publish-python", "publish-python-sync", "example-view", "connection-from-env"}
KCAT_EXAMPLES = {"publish-kcat", "publish-kcat-invalid", "consume-kcat", "dead-letters-kcat"}


@pytest.mark.asyncio
async def test_python_examples(harness: WorkerHarness) -> None:
    harness.start_worker()
    settings = harness.settings
    out = await run("publish-python", settings)
    assert re.search(r"^acknowledged: partition \d+, offset 0$", out, re.MULTILINE), out
    assert "refused: invalid at $.payload.name: Expected `str` of length <= 40\n" in out
    out = await run("publish-python-sync", settings)
    assert out.startswith("acknowledged: offset 1"), out

    records = await harness.events.wait_count(2)
    events = [read_event(r.value) for r in records]
    assert [event_type(e) for e in events] == ["session.created", "session.updated"]
    assert {r.key for r in records} == {GUIDE_SESSION.encode()}

    out = await run("connection-from-env", settings)
    assert out == f"connected to {settings.kafka_bootstrap_servers} over PLAINTEXT\n", out

    out = await run("example-view", settings)
    assert out.splitlines() == [
        f"applied   session.created   {GUIDE_SESSION} v1",
        f"applied   session.updated   {GUIDE_SESSION} v2",
        "live sessions: 1",
        f"  {GUIDE_SESSION} v2 active Renamed",
    ]


@needs_kcat
@pytest.mark.asyncio
async def test_kcat_examples(harness: WorkerHarness) -> None:
    harness.start_worker()
    settings = harness.settings
    await run("publish-kcat", settings)
    await run("publish-kcat-invalid", settings)

    # kcat wrote what the kit writes: the key, the headers, a value the worker's decoder
    # accepts (the invalid one is the worker's to answer).
    commands = TopicReader(settings.kafka_bootstrap_servers, settings.commands_topic)
    await commands.start()
    try:
        written = await commands.wait_count(2)
    finally:
        await commands.stop()
    by_key = {r.key: r for r in written}
    valid = by_key[b"s-kcat-1"]
    assert valid.headers == {"content-type": b"application/json", "command-type": b"session.create"}
    decoded = decode_record(valid.key, valid.value, settings.max_record_bytes)
    assert isinstance(decoded, Decoded)
    assert (decoded.command.session_id, decoded.command.command_id) == ("s-kcat-1", "c-kcat-1")

    await harness.events.wait_count(2)
    await harness.dead_letters.wait_count(1)

    out = await run("consume-kcat", settings)
    lines = [line.split(" ", 1) for line in out.splitlines()]
    read = {key: read_event(value.encode()) for key, value in lines}
    assert {key: event_type(e) for key, e in read.items()} == {
        "s-kcat-1": "session.created",
        "s-kcat-2": "command.rejected",
    }
    rejected = read["s-kcat-2"]
    assert getattr(rejected, "error", None) is not None

    out = await run("dead-letters-kcat", settings)
    (line,) = out.splitlines()
    key, headers = line.split(" ", 1)
    assert key == "s-kcat-2"
    shown = dict(item.split("=", 1) for item in headers.split(","))  # no comma in these values
    assert shown["error.code"] == "invalid"
    assert shown["error.path"] == "$.payload.name"
    assert shown["source.topic"] == settings.commands_topic
    assert set(shown) == {
        "error.code",
        "error.message",
        "error.path",
        "error.event_id",
        "source.topic",
        "source.partition",
        "source.offset",
    }
