"""Commands for the benchmark: realistic creates, updates and deletes, encoded once.

A create carries what a typical call setup sends: a name, an `assistantId` (or, one time in
four, a small inline `assistant`), 2-10 messages, a customer and a Twilio phone number (whose
secrets the worker redacts). `reference_create` is the payload of `tests/factories.py`, the one
the known 3.3 KiB-per-session figure was taken with, so the two can be compared.

Every command is valid when the stream is read in order: updates and deletes only name sessions
created earlier in the same stream, and a deleted session is never named again.
"""

import random
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from devenv.sample import full_payload

_encoder = msgspec.json.Encoder()

_USER_LINES = (
    "Hi, I need to change the delivery address on my order.",
    "Where is my package? It was due yesterday.",
    "Can I get a refund for the second item?",
    "My card was charged twice for the same subscription.",
    "I'd like to upgrade to the annual plan.",
    "The app keeps logging me out on my phone.",
)
_ASSISTANT_LINES = (
    "Sure, I can help with that. Could you confirm the order number?",
    "Thanks. I see the order; let me check the carrier status.",
    "I have found the duplicate charge and started a refund.",
    "Done. You will receive a confirmation email shortly.",
)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One command as it goes on the wire, and what the benchmark needs to follow it."""

    command_id: str
    session_id: str
    kind: str  # create | update | delete
    value: bytes

    @property
    def key(self) -> bytes:
        return self.session_id.encode()


@dataclass(frozen=True, slots=True)
class Mix:
    """Shares of a command stream; the rest of 1.0 after creates and updates are deletes."""

    creates: float = 0.70
    updates: float = 0.20


CREATE_HEAVY = Mix()
CREATES_ONLY = Mix(creates=1.0, updates=0.0)


def _messages(rng: random.Random, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "message": "You are a helpful support agent.", "time": 1,
         "secondsFromStart": 0},
    ]  # fmt: skip
    t = 1_700_000_000_000 + rng.randrange(10**9)
    for i in range(1, count):
        t += rng.randrange(500, 4000)
        if i % 2:
            messages.append(
                {
                    "role": "user",
                    "message": rng.choice(_USER_LINES),
                    "time": t,
                    "endTime": t + rng.randrange(800, 3000),
                    "secondsFromStart": round(i * 2.5, 1),
                    "duration": rng.randrange(800, 3000),
                }
            )
        else:
            messages.append({"role": "assistant", "content": rng.choice(_ASSISTANT_LINES)})
    return messages


def realistic_payload(rng: random.Random, expiration_s: float) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": f"Support call {rng.randrange(10**6)}",
        "expirationSeconds": expiration_s,
        "messages": _messages(rng, rng.randint(2, 10)),
        "customer": {
            "number": f"+1415555{rng.randrange(10**4):04d}",
            "name": rng.choice(("Ada", "Grace", "Alan", "Edsger", "Barbara")),
        },
        "phoneNumber": {
            "twilioAccountSid": "AC" + uuid.UUID(int=rng.getrandbits(128)).hex,
            "twilioPhoneNumber": f"+1415555{rng.randrange(10**4):04d}",
            "twilioAuthToken": uuid.UUID(int=rng.getrandbits(128)).hex,
        },
    }
    if rng.random() < 0.25:
        payload["assistant"] = {
            "name": "Inline support assistant",
            "model": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.3},
            "voice": {"provider": "11labs", "voiceId": "burt"},
            "firstMessage": "Hello! How can I help you today?",
        }
    else:
        payload["assistantId"] = str(uuid.UUID(int=rng.getrandbits(128)))
    return payload


def reference_payload(expiration_s: float) -> dict[str, Any]:
    """The tests' payload (`tests/factories.create_payload()`), with secrets of its own."""
    return full_payload(
        expiration_s=expiration_s,
        auth_token="bench-auth-token",  # noqa: S106 - made up, to be redacted
        api_secret="bench-api-secret",  # noqa: S106
        server_secret="bench-server-secret",  # noqa: S106
    )


class CommandStream:
    """An endless, reproducible stream of valid commands in the given mix."""

    def __init__(
        self,
        seed: int,
        *,
        mix: Mix = CREATE_HEAVY,
        expiration_s: float = 3600,
        org_id: str = "org-bench",
        reference: bool = False,
        tag: str = "b",
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - reproducible load, not secrets
        self._mix = mix
        self._expiration_s = expiration_s
        self._org_id = org_id
        self._reference = reference
        self._tag = tag
        self._active: list[str] = []
        self._count = 0

    def _id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{self._tag}-{self._count}-{self._rng.getrandbits(40):010x}"

    def _command(self, kind: str, session_id: str, payload: dict[str, Any] | None) -> Encoded:
        command_id = self._id("c")
        body: dict[str, Any] = {
            "commandId": command_id,
            "type": f"session.{kind}",
            "orgId": self._org_id,
            "sessionId": session_id,
        }
        if payload is not None:
            body["payload"] = payload
        return Encoded(command_id, session_id, kind, _encoder.encode(body))

    def next(self) -> Encoded:
        r = self._rng.random()
        if not self._active or r < self._mix.creates:
            sid = self._id("s")
            payload = (
                reference_payload(self._expiration_s)
                if self._reference
                else realistic_payload(self._rng, self._expiration_s)
            )
            self._active.append(sid)
            if len(self._active) > 20_000:  # bounded: old sessions are simply left alone
                del self._active[:10_000]
            return self._command("create", sid, payload)
        index = self._rng.randrange(len(self._active))
        sid = self._active[index]
        if r < self._mix.creates + self._mix.updates:
            if self._rng.random() < 0.5:
                update: dict[str, Any] = {"name": f"Renamed {self._rng.randrange(10**6)}"}
            else:
                update = {"messages": _messages(self._rng, self._rng.randint(2, 10))}
            return self._command("update", sid, update)
        self._active[index] = self._active[-1]
        self._active.pop()
        return self._command("delete", sid, None)

    def take(self, n: int) -> list[Encoded]:
        return [self.next() for _ in range(n)]
