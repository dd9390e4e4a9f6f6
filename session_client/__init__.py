"""The client kit for the teams on either side of the worker.

Upstream (commands): `CommandPublisher` (async) and `SyncCommandPublisher` (scripts) check each
command with the worker's own decoder before sending it, and return once Kafka acknowledged it.
Downstream (events): `read_event` turns a record value into the contract's event Structs,
tolerating fields and event types added by later minor versions. `example_view` is a complete
consumer to copy. Guide, examples and the versioning rule: docs/clients.md.
"""

from session_client.commands import CommandRecord, encode_command, new_command_id
from session_client.connection import KafkaConnection, kafka_connection_from_env
from session_client.errors import ClientError, InvalidCommandError, InvalidEventError
from session_client.events import EVENT_TYPES, UnknownEvent, event_type, read_event
from session_client.publisher import CommandPublisher, Delivery
from session_client.recent import RecentIds
from session_client.sync import SyncCommandPublisher
from session_client.tracing import trace_context

__all__ = [
    "EVENT_TYPES",
    "ClientError",
    "CommandPublisher",
    "CommandRecord",
    "Delivery",
    "InvalidCommandError",
    "InvalidEventError",
    "KafkaConnection",
    "RecentIds",
    "SyncCommandPublisher",
    "UnknownEvent",
    "encode_command",
    "event_type",
    "kafka_connection_from_env",
    "new_command_id",
    "read_event",
    "trace_context",
]
