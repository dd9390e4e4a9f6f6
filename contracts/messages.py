"""The five conversation message types a session carries (Vapi's ``messages`` items).

Vapi lists them under ``oneOf`` without a discriminator, and SystemMessage's ``role`` is any
string, so every UserMessage would also match SystemMessage. The contract tells them apart by
``role``; a msgspec tagged union on ``role`` does exactly that in one pass.
"""

from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

from contracts.fields import (
    DETECTED_THREATS_MAX_ITEMS,
    MESSAGES_MAX_ITEMS,
    TOOL_CALLS_MAX_ITEMS,
    TOOL_FUNCTION_NAME_MAX_CHARS,
    Content,
    Name,
    Number,
)


class _Message(Struct, frozen=True, forbid_unknown_fields=True, tag_field="role"):
    pass


class SystemMessage(_Message, frozen=True, tag="system", rename="camel"):
    message: str
    time: Number
    seconds_from_start: Number


class UserMessage(_Message, frozen=True, tag="user", rename="camel"):
    message: str
    time: Number
    end_time: Number
    seconds_from_start: Number
    duration: Number | UnsetType = UNSET
    is_filtered: bool | UnsetType = UNSET
    detected_threats: (
        Annotated[list[str], Meta(max_length=DETECTED_THREATS_MAX_ITEMS)] | UnsetType
    ) = UNSET
    original_message: str | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    speaker_label: str | UnsetType = UNSET


class ToolCallFunction(Struct, frozen=True, forbid_unknown_fields=True):
    arguments: str
    name: Annotated[str, Meta(max_length=TOOL_FUNCTION_NAME_MAX_CHARS)]


class ToolCall(Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    type: str
    function: ToolCallFunction


# Assistant, tool and developer messages follow OpenAI's wire names (`tool_calls`,
# `tool_call_id`), so these keep their field names as they are instead of camel-casing them.
class AssistantMessage(_Message, frozen=True, tag="assistant"):
    content: Content | UnsetType = UNSET
    refusal: Content | UnsetType = UNSET
    tool_calls: Annotated[list[ToolCall], Meta(max_length=TOOL_CALLS_MAX_ITEMS)] | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class ToolMessage(_Message, frozen=True, tag="tool"):
    content: Content
    tool_call_id: str
    name: Name | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class DeveloperMessage(_Message, frozen=True, tag="developer"):
    content: Content
    name: Name | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


Message = SystemMessage | UserMessage | AssistantMessage | ToolMessage | DeveloperMessage

# A session's conversation, as a create or an update carries it.
Messages = Annotated[list[Message], Meta(max_length=MESSAGES_MAX_ITEMS)]
