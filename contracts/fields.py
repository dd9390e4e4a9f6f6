"""Constrained scalar types shared by commands, payloads and events.

The limits are Vapi's (``vapi-sessions.openapi.json``) and the public contract's; they live in
the types so that the decoder enforces them and the JSON Schema export shows them.
"""

from typing import Annotated, Any, Literal

from msgspec import Meta

NAME_MAX_CHARS = 40  # Vapi: session, customer, phone number and message `name`
CONTENT_MAX_CHARS = 10_000  # Vapi: assistant/tool/developer message `content`
TOOL_FUNCTION_NAME_MAX_CHARS = 80  # Vapi: ToolCallFunction.name
EXPIRATION_MIN_S = 60  # Vapi: CreateSessionDTO.expirationSeconds minimum
EXPIRATION_MAX_S = 2_592_000  # Vapi: 30 days
EXPIRATION_DEFAULT_S = 86_400  # Vapi: "Defaults to 24 hours (86400 seconds) if not set"
ID_MAX_CHARS = 128  # contract: commandId, orgId, sessionId

# Ids travel in record keys, Redis keys and log lines. Printable ASCII without spaces or braces
# keeps all three unambiguous (no control characters, no Redis hash-tag look-alikes).
# In Python's `re` (used by msgspec and by the jsonschema library) a bare `$` also matches just
# before a final "\n", which let "s1\n" through; the `(?!\n)` closes that and is ECMA-262 too.
ID_PATTERN = r"^[!-z|~]+$(?!\n)"

Id = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=ID_MAX_CHARS,
        pattern=ID_PATTERN,
        description="1..128 printable ASCII characters, no spaces or braces",
    ),
]
Name = Annotated[str, Meta(max_length=NAME_MAX_CHARS)]
Content = Annotated[str, Meta(max_length=CONTENT_MAX_CHARS)]

# Vapi types expirationSeconds as a JSON number: whole and fractional seconds are both valid, and
# an integer stays an integer on the way out (3600 is not rewritten as 3600.0).
ExpirationSeconds = (
    Annotated[
        int, Meta(ge=EXPIRATION_MIN_S, le=EXPIRATION_MAX_S, description="Seconds until expiry")
    ]
    | Annotated[float, Meta(ge=EXPIRATION_MIN_S, le=EXPIRATION_MAX_S)]
)

Status = Literal["active", "completed"]

# A JSON number that keeps its spelling class: 1 stays 1, 1.5 stays 1.5.
Number = int | float

# Configuration the worker stores and forwards without interpreting it (assistant, squad, server,
# hooks, ...): any JSON object, unknown keys included.
Opaque = Annotated[
    dict[str, Any], Meta(description="Kept verbatim; the worker does not interpret it")
]
