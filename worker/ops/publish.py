"""`session-worker publish`: commands from JSON lines to the commands topic, keyed by sessionId.

Each line is sent as it is (byte for byte, so number forms and key order stay what the author
wrote). A line that is not a JSON object with a string `sessionId` is reported with its line
number and not sent; blank lines are skipped. Delivery is awaited (acks=all, idempotent
producer, the worker's own producer settings), and the report says how many were acknowledged.
"""

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from worker.settings import Settings

READ_CHUNK_BYTES = 1 << 20  # lines are read in ~1 MiB chunks, off the event loop
WINDOW = 1000  # deliveries awaited in groups of this many: bounded memory, still pipelined


@dataclass(slots=True)
class PublishReport:
    topic: str
    sent: int = 0
    acknowledged: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (line number, Kafka error)

    @property
    def ok(self) -> bool:
        return not self.invalid and not self.failed and self.acknowledged == self.sent

    def summary(self) -> str:
        text = f"{self.acknowledged} of {self.sent} commands acknowledged by {self.topic}"
        if self.invalid:
            text += f"; {len(self.invalid)} invalid line(s) not sent"
        if self.failed:
            text += f"; {len(self.failed)} failed"
        return text


def parse_line(line: bytes) -> tuple[bytes, bytes] | str:
    """(key, value) to send, or why the line cannot be sent."""
    value = line.strip()
    try:
        command = json.loads(value)
    except UnicodeDecodeError:
        return "not UTF-8"
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(command, dict):
        return "not a JSON object"
    session_id = command.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        return "no string sessionId (it is the record key)"
    return session_id.encode(), value


async def publish_lines(
    settings: Settings,
    stream: IO[bytes],
    *,
    advance: Callable[[int], None] = lambda n: None,
) -> PublishReport:
    report = PublishReport(settings.commands_topic)
    producer = AIOKafkaProducer(**settings.to_producer_params())
    await producer.start()
    try:
        pending: list[tuple[int, asyncio.Future[object]]] = []
        number = 0
        while lines := await asyncio.to_thread(stream.readlines, READ_CHUNK_BYTES):
            for line in lines:
                number += 1
                advance(1)
                if not line.strip():
                    continue
                parsed = parse_line(line)
                if isinstance(parsed, str):
                    report.invalid.append((number, parsed))
                    continue
                key, value = parsed
                try:
                    delivery = await producer.send(settings.commands_topic, value, key=key)
                except MessageSizeTooLargeError as exc:
                    report.failed.append((number, repr(exc)))
                    continue
                report.sent += 1
                pending.append((number, delivery))
                if len(pending) >= WINDOW:
                    await _settle(pending, report)
        await _settle(pending, report)
    finally:
        await producer.stop()
    return report


async def _settle(
    pending: list[tuple[int, "asyncio.Future[object]"]], report: PublishReport
) -> None:
    results = await asyncio.gather(*(d for _, d in pending), return_exceptions=True)
    for (number, _), result in zip(pending, results, strict=True):
        if isinstance(result, BaseException):
            report.failed.append((number, repr(result)))
        else:
            report.acknowledged += 1
    pending.clear()
