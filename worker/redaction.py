"""Credentials never leave the worker: they are replaced before a snapshot is stored or sent.

Typed secrets (``twilioAuthToken``, ``twilioApiSecret``) are known by name. Inside configuration
the worker does not interpret (assistant, squad, server, hooks, ...) a credential is recognised by
its key, normalised (lower case, letters and digits only), from the names Vapi's schema uses for
secrets, and by suffix for the many ``*Secret``/``*Token``/``*Password`` variants.
"""

import re
from typing import Any

from worker.constants import SECRET_MARK

_SECRET_KEYS = frozenset(
    {
        "apikey",
        "apisecret",
        "authorization",
        "cookie",
        "credential",
        "gcpkey",
        "hmacaccesskey",
        "ocpapimsubscriptionkey",
        "openaikey",
        "password",
        "privatekey",
        "secret",
        "secretaccesskey",
        "secretkey",
        "token",
        "twilioapikey",
    }
)
# `maxTokens`, `promptTokens`, ... end in "tokens" and are counts, so the suffix is "token" only.
_SECRET_SUFFIXES = ("secret", "token", "password", "apikey", "privatekey", "accesskey")
_NON_ALNUM = re.compile(r"[^a-z0-9]")


def is_secret_key(key: str) -> bool:
    name = _NON_ALNUM.sub("", key.lower())
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every credential replaced by a mark; other data untouched."""
    if isinstance(value, dict):
        return {
            k: (SECRET_MARK if is_secret_key(k) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def contains_secret_key(value: Any) -> bool:
    """Whether ``redact`` would change anything: lets the hot path skip copying clean configs."""
    if isinstance(value, dict):
        return any(is_secret_key(k) or contains_secret_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_secret_key(v) for v in value)
    return False
