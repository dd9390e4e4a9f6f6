"""A steady load of valid commands, and the ledger of every command sent."""

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from tests.factories import create_command, delete_command, update_command


@dataclass(frozen=True)
class Sent:
    command_id: str
    session_id: str
    type: str
    command: dict[str, Any]


@dataclass
class Ledger:
    """Every command the broker acknowledged, per session in send order."""

    sent: list[Sent] = field(default_factory=list)
    by_session: dict[str, list[Sent]] = field(default_factory=dict)

    def add(self, command: dict[str, Any]) -> None:
        entry = Sent(command["commandId"], command["sessionId"], command["type"], command)
        self.sent.append(entry)
        self.by_session.setdefault(entry.session_id, []).append(entry)


class LoadGenerator:
    """Creates sessions, updates, completes and deletes them at a steady rate.

    Every command is valid when sent in order, so each one must be applied exactly once: a
    rejection, a missing or a doubled transition is a fault of the worker.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        rate_per_s: float,
        seed: int,
        expiration_s: int = 3600,
    ) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=120_000,
        )
        self._topic = topic
        self._interval_s = 1 / rate_per_s
        self._random = random.Random(seed)
        self._expiration_s = expiration_s
        self._active: list[str] = []
        self.ledger = Ledger()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def _next(self) -> dict[str, Any]:
        r = self._random.random()
        if not self._active or r < 0.35:
            command = create_command(expirationSeconds=self._expiration_s)
            self._active.append(command["sessionId"])
            return command
        sid = self._random.choice(self._active)
        if r < 0.80:
            return update_command(sid, name=f"n{self._random.randrange(10**6)}")
        self._active.remove(sid)
        if r < 0.88:
            return update_command(sid, status="completed")
        return delete_command(sid)

    async def send(self, command: dict[str, Any]) -> None:
        await self._producer.send_and_wait(
            self._topic, json.dumps(command).encode(), key=command["sessionId"].encode()
        )
        self.ledger.add(command)

    async def run(self, seconds: float) -> None:
        """Sends for `seconds`, keeping the rate; a broker outage pauses it, losing nothing."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        pending: list[asyncio.Future[Any]] = []
        commands: list[dict[str, Any]] = []
        next_at = loop.time()
        while loop.time() < end:
            command = self._next()
            pending.append(
                await self._producer.send(
                    self._topic, json.dumps(command).encode(), key=command["sessionId"].encode()
                )
            )
            commands.append(command)
            if len(pending) >= 50:
                await self._settle(pending, commands)
            next_at += self._interval_s
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await self._settle(pending, commands)

    async def _settle(
        self, pending: list[asyncio.Future[Any]], commands: list[dict[str, Any]]
    ) -> None:
        await asyncio.gather(*pending)  # the idempotent producer retries until acknowledged
        for command in commands:
            self.ledger.add(command)
        pending.clear()
        commands.clear()
