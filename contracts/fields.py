"""Constrained scalar types shared by commands, payloads and events.

The limits are Vapi's (``vapi-sessions.openapi.json``), the public contract's, and a few of our
own where Vapi sets none (array sizes, nesting depth); they live in the types so that the decoder
enforces them and the JSON Schema export shows them (nesting depth, which a type cannot express,
is checked by contracts/decoding.py).
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

# Array limits of our own (Vapi's schema sets none). Each is far above what a real session carries
# and far below what fits in a 1 MiB record, so an absurd array is rejected with its path instead
# of costing decode, snapshot and event work per item.
# - messages: a chat of 1000 messages is long (one every 5 s from each side for 40 minutes), and
#   the whole list is stored and sent with every event of the session, so it must stay bounded.
# - tool_calls: OpenAI accepts at most 128 tools in a request, so one turn cannot call more.
# - detectedThreats: a handful of threat categories exist.
# - hooks: one per phone-number event (ringing, ending, ...), each with its own actions.
MESSAGES_MAX_ITEMS = 1_000
TOOL_CALLS_MAX_ITEMS = 128
DETECTED_THREATS_MAX_ITEMS = 100
HOOKS_MAX_ITEMS = 100

# How deep a record may nest arrays and objects, the record itself being level 1 (so the opaque
# `payload.assistant` starts at level 3 and has 62 levels of its own). Real configuration nests
# about 10 levels (a tool's JSON-Schema parameters add two per nested property), so 64 leaves
# plenty of room, while staying far below Python's recursion limit (1000 frames), which the
# worker's recursive walks over opaque configuration (redaction: two frames per level) and
# msgspec's encoder would otherwise reach. Enforced when the record is decoded
# (contracts/decoding.py); JSON Schema cannot say it.
MAX_NESTING_DEPTH = 64

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
# hooks, ...): any JSON object, unknown keys included, bounded by the record size and the nesting
# limit only.
Opaque = Annotated[
    dict[str, Any],
    Meta(
        description=(
            "Kept verbatim; the worker does not interpret it. A command that nests arrays and "
            f"objects more than {MAX_NESTING_DEPTH} levels deep, or repeats a key in any "
            "object, is rejected."
        )
    ),
]
