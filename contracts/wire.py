"""Facts of the wire, defined once: topic names, record headers, topic settings, the version.

The worker (`worker/`), the client kit and the published AsyncAPI document import them from
here, so that what the worker writes and what the contract says cannot drift apart.
"""

# The wire contract's own version: MAJOR.MINOR.PATCH, bumped by the rule in docs/clients.md.
CONTRACT_VERSION = "0.1.0"

# Default topic names; every one is a setting of the worker (SW_*_TOPIC).
COMMANDS_TOPIC = "sessions.commands"
EVENTS_TOPIC = "sessions.events"
DEAD_LETTER_TOPIC = "sessions.commands.dlq"

CONTENT_TYPE_JSON = "application/json"
# Headers the client kit sets on a command. Informative only: the worker reads the type from
# the value and never looks at them; they let routers and tools skip the body.
HEADER_CONTENT_TYPE = "content-type"
HEADER_COMMAND_TYPE = "command-type"

# W3C trace context: a command's headers are carried to every record written because of it (its
# events, its rejection, its dead letter), so one trace follows a command end to end.
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"

# Dead-letter record headers, in Kafka Connect's dotted style.
HEADER_ERROR_CODE = "error.code"
HEADER_ERROR_MESSAGE = "error.message"
HEADER_ERROR_PATH = "error.path"
HEADER_EVENT_ID = "error.event_id"
HEADER_SOURCE_TOPIC = "source.topic"
HEADER_SOURCE_PARTITION = "source.partition"
HEADER_SOURCE_OFFSET = "source.offset"

# The largest command the worker takes by default (SW_MAX_RECORD_BYTES): 1 MiB, Kafka's default
# max.message.bytes, so a record that big is odd. Topics accept twice that, so that a record just
# over the limit reaches the worker and gets a `too_large` answer instead of a producer error.
MAX_RECORD_BYTES = 1_048_576
MAX_MESSAGE_BYTES = 2 * MAX_RECORD_BYTES

DAY_MS = 24 * 3600 * 1000
# Retention `session-worker topics` gives each topic: commands and events 7 days (an outage that
# long loses nothing), dead letters 30 days (time for a person to look).
COMMANDS_RETENTION_MS = 7 * DAY_MS
EVENTS_RETENTION_MS = 7 * DAY_MS
DEAD_LETTER_RETENTION_MS = 30 * DAY_MS
RETENTION_MS = {
    COMMANDS_TOPIC: COMMANDS_RETENTION_MS,
    EVENTS_TOPIC: EVENTS_RETENTION_MS,
    DEAD_LETTER_TOPIC: DEAD_LETTER_RETENTION_MS,
}
