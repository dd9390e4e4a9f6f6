"""One realistic create payload, for the tests and the benchmark alike: every kind of field
Vapi's `CreateSessionDTO` has (the five message roles, nested configurations the worker keeps
verbatim, unknown keys, credentials it must redact)."""

from typing import Any


def full_payload(
    *, expiration_s: float, auth_token: str, api_secret: str, server_secret: str
) -> dict[str, Any]:
    """The credentials are parameters: tests pass canaries to search for, the benchmark not."""
    return {
        "name": "Support chat",
        "expirationSeconds": expiration_s,
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
            "twilioAuthToken": auth_token,
            "twilioApiSecret": api_secret,
            "server": {"url": "https://example.com/hook", "secret": server_secret},
        },
    }
