"""Wire types of the session worker: commands in, lifecycle events out. Pure types, no I/O."""

from contracts.commands import (
    COMMAND_TYPES,
    Command,
    CreateSession,
    DeleteSession,
    UpdateSession,
    command_decoder,
)
from contracts.events import (
    CommandRejected,
    Event,
    RejectionCode,
    RejectionError,
    SessionCompleted,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    SessionUpdated,
    event_decoder,
)
from contracts.messages import (
    AssistantMessage,
    DeveloperMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolCallFunction,
    ToolMessage,
    UserMessage,
)
from contracts.payloads import (
    CreateCustomerDTO,
    CreateSessionDTO,
    ImportTwilioPhoneNumberDTO,
    UpdateSessionDTO,
)
from contracts.session import Session

__all__ = [
    "COMMAND_TYPES",
    "AssistantMessage",
    "Command",
    "CommandRejected",
    "CreateCustomerDTO",
    "CreateSession",
    "CreateSessionDTO",
    "DeleteSession",
    "DeveloperMessage",
    "Event",
    "ImportTwilioPhoneNumberDTO",
    "Message",
    "RejectionCode",
    "RejectionError",
    "Session",
    "SessionCompleted",
    "SessionCreated",
    "SessionDeleted",
    "SessionExpired",
    "SessionUpdated",
    "SystemMessage",
    "ToolCall",
    "ToolCallFunction",
    "ToolMessage",
    "UpdateSession",
    "UpdateSessionDTO",
    "UserMessage",
    "command_decoder",
    "event_decoder",
]
