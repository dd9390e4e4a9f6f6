"""A secret setting's value: masked wherever it is shown, revealed only where a client needs it.

Hand-written rather than pydantic's `SecretStr`: the settings are a frozen dataclass with their
own parsing and errors (and flags made from its fields), so pydantic would mean rewriting them
and shipping two more packages in the image for a ten-line type.
"""

from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK: Final = "***"


class Secret:
    """`str()`, `repr()`, f-strings and log renderers see only `***`; `reveal()` the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[type["Secret"], tuple[str]]:
        raise TypeError("a Secret is not pickled")  # a pickle would carry the value in clear


def reveal(value: Secret | None) -> str | None:
    return None if value is None else value.reveal()


def split_url_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`url` without the user and password it carries (in its user info or its query), and
    those two, percent-decoded as redis-py decodes them."""
    parts = urlsplit(url)
    user_info, at, host = parts.netloc.rpartition("@")
    username = password = None
    if at:
        name, colon, word = user_info.partition(":")
        username = unquote(name) or None
        password = unquote(word) if colon else None
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = []
    for key, value in query:
        if key == "password":
            password = value
        elif key == "username":
            username = value
        else:
            kept.append((key, value))
    clean = urlunsplit(
        (parts.scheme, host if at else parts.netloc, parts.path, urlencode(kept), parts.fragment)
    )
    return clean, username, password


def masked_url(url: str) -> str:
    """`url` fit to show: a password in it (user info or query) replaced by `***`."""
    try:
        parts = urlsplit(url)
        user_info, at, host = parts.netloc.rpartition("@")
        if at and ":" in user_info:
            user_info = user_info.partition(":")[0] + ":" + MASK
        query = [
            (k, MASK if k == "password" else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        netloc = f"{user_info}@{host}" if at else parts.netloc
        return urlunsplit(
            (parts.scheme, netloc, parts.path, urlencode(query, safe="*"), parts.fragment)
        )
    except ValueError:
        return MASK  # not even a URL: nothing of it is shown
