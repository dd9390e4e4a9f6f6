"""Credentials never leave the worker: they are replaced before a snapshot is stored or sent.

Typed secrets (``twilioAuthToken``, ``twilioApiSecret``) are known by name. Inside configuration
the worker does not interpret (assistant, squad, server, hooks, ...) a credential is recognised by
its key, normalised (lower case, letters and digits only), from the names Vapi's schema uses for
secrets, and by suffix for the many ``*Secret``/``*Token``/``*Password`` variants.
"""

import re
from functools import lru_cache
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


# Keys come from a small vocabulary (Vapi's configuration schema), so most are answered from a
# cache: normalising every key again took ~1.3 of a create's 5.3 us of snapshot building. Only
# short keys are kept, as records may carry any keys: at most 4,096 of 64 characters, under 1 MB.
CACHED_KEY_MAX_CHARS = 64


def is_secret_key(key: str) -> bool:
    if len(key) <= CACHED_KEY_MAX_CHARS:
        return _is_secret_name_cached(key)
    return _is_secret_name(key)


def _is_secret_name(key: str) -> bool:
    name = _NON_ALNUM.sub("", key.lower())
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


_is_secret_name_cached = lru_cache(maxsize=4096)(_is_secret_name)


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
    # Loops rather than any(<generator>): this runs over every configuration of every create.
    if isinstance(value, dict):
        for k, v in value.items():
            if is_secret_key(k) or contains_secret_key(v):
                return True
    elif isinstance(value, list):
        for v in value:
            if contains_secret_key(v):
                return True
    return False
