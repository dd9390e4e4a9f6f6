"""What the client kit raises on purpose, rooted in one base class.

Kafka failures are not wrapped: aiokafka's `KafkaError` reaches the caller as it is (with its own
`retriable` flag), and a retry is always safe because `commandId` is the idempotency key.
"""

from contracts.decoding import Ids
from contracts.rejection import Rejection


class ClientError(Exception):
    """Base of every error the client kit raises on purpose."""


class SettingsError(ClientError, ValueError):
    """A connection setting (`KAFKA_*`, `REDIS_*`, `SW_*`) has a value that cannot work; the
    message names the setting and never shows a secret's value. The worker raises it too."""


class InvalidCommandError(ClientError, ValueError):
    """The worker would reject this command, so it was not sent.

    `rejection` is exactly what the worker would answer (`contracts.decoding.decode_record`, the
    same decoder and limits): `code`, `message` and `path` as in a `command.rejected` event.
    """

    def __init__(self, rejection: Rejection, ids: Ids) -> None:
        where = f" at {rejection.path}" if rejection.path else ""
        super().__init__(f"{rejection.code}{where}: {rejection.message}")
        self.rejection = rejection
        self.ids = ids  # whatever ids the worker would have read from it

    @property
    def code(self) -> str:
        return self.rejection.code

    @property
    def message(self) -> str:
        return self.rejection.message

    @property
    def path(self) -> str | None:
        return self.rejection.path


class InvalidEventError(ClientError, ValueError):
    """A record on the events topic that is not an event of a known type, even leniently read:
    not JSON, or a known field with the wrong type. `path` is the JSON path of the problem."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{message} (at {path})")
        self.message = message
        self.path = path
