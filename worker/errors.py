"""One error hierarchy for the worker; ``retriable`` tells the loop to back off and try again."""

from session_client.errors import SettingsError as SettingsError  # the kit raises it too


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""

    retriable: bool = False


class AccessDeniedError(WorkerError):
    """Kafka or Redis answered, and said no: wrong credentials, an untrusted certificate, a
    mechanism it does not enable. Retrying cannot help, so the worker stops and says which
    settings to look at and what the service answered (never a secret's value)."""

    def __init__(self, service: str, settings: tuple[str, ...], answer: str) -> None:
        self.service = service
        self.settings = settings
        self.answer = answer
        super().__init__(
            f"{service} refused the connection: {answer} (check {', '.join(settings)})"
        )


class StoreUnavailableError(WorkerError):
    """Redis could not be reached or answered with an error: wait and retry, never skip."""

    retriable = True


class ConcurrentChangeError(WorkerError):
    """A session kept changing under us (another owner or the sweeper): retry the batch."""

    retriable = True


class LivenessError(WorkerError):
    """The worker is alive but cannot work (stuck loop, Kafka gone too long): exit, restart."""
