"""Why a command is not applied: the worker's answer and the client kit's check share it."""

from dataclasses import dataclass

from contracts.events import RejectionCode


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a command is not applied: becomes a ``command.rejected`` event and a dead letter."""

    code: RejectionCode
    message: str
    path: str | None = None
