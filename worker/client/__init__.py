"""The client kit for the teams on either side of the worker.

Upstream (commands): `CommandPublisher` (async) and `SyncCommandPublisher` (scripts) check each
command with the worker's own decoder before sending it, and return once Kafka acknowledged it.
Downstream (events): `read_event` turns a record value into the contract's event Structs,
tolerating fields and event types added by later minor versions. `example_view` is a complete
consumer to copy. Guide, examples and the versioning rule: docs/clients.md.
"""

from worker.client.commands import CommandRecord, encode_command, new_command_id
from worker.client.errors import ClientError, InvalidCommandError, InvalidEventError
from worker.client.events import EVENT_TYPES, UnknownEvent, event_type, read_event
from worker.client.publisher import CommandPublisher, Delivery
from worker.client.recent import RecentIds
from worker.client.sync import SyncCommandPublisher
from worker.kafka_connection import KafkaConnection
from worker.settings import kafka_connection_from_env

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
]
