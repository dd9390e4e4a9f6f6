"""Valid commands to start from; tests change one thing at a time."""

import uuid
from typing import Any

from devenv.sample import full_payload

# Markers to search for in every output, not secrets.
CANARY_AUTH_TOKEN = "canary-auth-token-7f3a9c"
CANARY_API_SECRET = "canary-api-secret-1b2e8d"
CANARY_SERVER_SECRET = "canary-server-secret-55aa"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_payload(**changes: Any) -> dict[str, Any]:
    payload = full_payload(
        expiration_s=3600,
        auth_token=CANARY_AUTH_TOKEN,
        api_secret=CANARY_API_SECRET,
        server_secret=CANARY_SERVER_SECRET,
    )
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
