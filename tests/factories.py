"""Valid commands to start from; tests change one thing at a time."""

import uuid
from typing import Any

# Markers to search for in every output, not secrets.
CANARY_AUTH_TOKEN = "canary-auth-token-7f3a9c"
CANARY_API_SECRET = "canary-api-secret-1b2e8d"
CANARY_SERVER_SECRET = "canary-server-secret-55aa"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "Support chat",
        "expirationSeconds": 3600,
        "assistantId": "asst-1",
        "assistant": {"name": "ignored because assistantId is given"},
        "squad": {"members": [{"assistantId": "asst-2"}], "x-unknown": {"kept": [1, 2.5, None]}},
        "assistantOverrides": {"variableValues": {"plan": "gold"}, "futureKey": {"a": []}},
        "messages": [
            {"role": "system", "message": "Be brief.", "time": 1, "secondsFromStart": 0},
            {
                "role": "user",
                "message": "Where is my order?",
                "time": 2,
                "endTime": 3.5,
                "secondsFromStart": 1,
            },
            {"role": "assistant", "content": "Checking.", "tool_calls": []},
            {"role": "tool", "content": "shipped", "tool_call_id": "call-1"},
            {"role": "developer", "content": "Stay on topic."},
        ],
        "customer": {"number": "+14155550100", "name": "Ada", "email": "ada@example.com"},
        "phoneNumber": {
            "twilioAccountSid": "AC123",
            "twilioPhoneNumber": "+14155550199",
            "twilioAuthToken": CANARY_AUTH_TOKEN,
            "twilioApiSecret": CANARY_API_SECRET,
            "server": {"url": "https://example.com/hook", "secret": CANARY_SERVER_SECRET},
        },
    }
    payload.update(changes)
    return payload


def create_command(
    session_id: str | None = None, org_id: str = "org-42", **payload_changes: Any
) -> dict[str, Any]:
    return {
        "commandId": new_id("c"),
        "type": "session.create",
        "orgId": org_id,
        "sessionId": session_id or new_id("s"),
        "payload": create_payload(**payload_changes),
    }


def update_command(session_id: str, org_id: str = "org-42", **payload: Any) -> dict[str, Any]:
    return {
        "commandId": new_id("u"),
        "type": "session.update",
        "orgId": org_id,
        "sessionId": session_id,
        "payload": payload,
    }


def delete_command(session_id: str, org_id: str = "org-42") -> dict[str, Any]:
    return {
        "commandId": new_id("d"),
        "type": "session.delete",
        "orgId": org_id,
        "sessionId": session_id,
    }
