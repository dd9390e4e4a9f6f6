"""An example OAUTHBEARER token provider: the token is whatever a file holds right now.

    KAFKA_SECURITY_PROTOCOL=SASL_SSL
    KAFKA_SASL_MECHANISM=OAUTHBEARER
    KAFKA_SASL_OAUTH_TOKEN_PROVIDER=session_client.oauth:FileTokenProvider
    KAFKA_SASL_OAUTH_TOKEN_FILE=/var/run/secrets/kafka/token

The file is read on every call (each new broker connection), so whatever writes it (a sidecar
that fetches tokens, a Kubernetes projected service-account token, Vault Agent) refreshes the
token without a restart. A provider of your own follows the same shape: a callable taking no
arguments that returns an `aiokafka.abc.AbstractTokenProvider`; see the README for MSK IAM.
"""

import asyncio
import os
from pathlib import Path

from aiokafka.abc import AbstractTokenProvider

from session_client.errors import SettingsError

TOKEN_FILE_ENV = "KAFKA_SASL_OAUTH_TOKEN_FILE"  # noqa: S105 - a variable's name


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else os.environ.get(TOKEN_FILE_ENV, "")
        if not chosen:
            raise SettingsError(f"FileTokenProvider needs {TOKEN_FILE_ENV} (the token's file)")
        self.path = Path(chosen)

    async def token(self) -> str:
        text = await asyncio.to_thread(self.path.read_text, "utf-8")
        token = text.strip()
        if not token:
            raise ValueError(f"{self.path} holds no token")
        return token

    def __repr__(self) -> str:
        return f"FileTokenProvider({str(self.path)!r})"
