"""Builds and changes the session snapshot (Vapi's `Session` plus `expiresAt`).

Pure functions: the same command and the same clock give the same snapshot. Secrets are redacted
here, so nothing downstream of a snapshot (Redis, events, logs) can carry one.
"""

from typing import Any

from msgspec import UNSET, UnsetType, structs

from contracts.fields import EXPIRATION_DEFAULT_S
from contracts.messages import Message
from contracts.payloads import CreateSessionDTO, ImportTwilioPhoneNumberDTO, UpdateSessionDTO
from contracts.session import Session
from worker.clock import iso_ms
from worker.constants import SECRET_MARK
from worker.redaction import contains_secret_key, redact


def expires_at_ms(now_ms: int, expiration_s: float) -> int:
    """The TTL's end, in whole milliseconds (Redis' precision)."""
    return now_ms + round(expiration_s * 1000)


def _clean(config: Any) -> Any:
    if config is UNSET or not contains_secret_key(config):
        return config
    return redact(config)


def _clean_phone_number(
    phone: ImportTwilioPhoneNumberDTO | UnsetType,
) -> ImportTwilioPhoneNumberDTO | UnsetType:
    if isinstance(phone, UnsetType):
        return phone
    changes: dict[str, Any] = {}
    # The API key SID is an identifier rather than a secret, but every `*apiKey` is redacted
    # inside configurations too: one rule is easier to trust than a list of exceptions.
    for name in ("twilio_auth_token", "twilio_api_secret", "twilio_api_key"):
        if getattr(phone, name) is not UNSET:
            changes[name] = SECRET_MARK
    for name in ("fallback_destination", "hooks", "server"):
        value = getattr(phone, name)
        cleaned = _clean(value)
        if cleaned is not value:
            changes[name] = cleaned
    return structs.replace(phone, **changes) if changes else phone


def _clean_messages(messages: list[Message] | UnsetType) -> list[Message] | UnsetType:
    """Message `metadata` is free-form: credentials in it are redacted like in configs."""
    if isinstance(messages, UnsetType):
        return messages
    cleaned = []
    for message in messages:
        metadata = getattr(message, "metadata", UNSET)
        safe = _clean(metadata)
        cleaned.append(message if safe is metadata else structs.replace(message, metadata=safe))
    return cleaned


def new_session(
    session_id: str, org_id: str, payload: CreateSessionDTO, now_ms: int
) -> tuple[Session, int]:
    """The snapshot a create produces, and its expiry in epoch ms.

    `assistantId` wins over `assistant` and `squadId` over `squad` (Vapi ignores the object
    when the id is given), so the ignored object is not stored.
    """
    expiration_s = (
        EXPIRATION_DEFAULT_S
        if isinstance(payload.expiration_seconds, UnsetType)
        else payload.expiration_seconds
    )
    expires_ms = expires_at_ms(now_ms, expiration_s)
    stamp = iso_ms(now_ms)
    customer = payload.customer
    if not isinstance(customer, UnsetType) and customer.assistant_overrides is not UNSET:
        cleaned = _clean(customer.assistant_overrides)
        if cleaned is not customer.assistant_overrides:
            customer = structs.replace(customer, assistant_overrides=cleaned)
    session = Session(
        id=session_id,
        org_id=org_id,
        created_at=stamp,
        updated_at=stamp,
        expires_at=iso_ms(expires_ms),
        status="active" if isinstance(payload.status, UnsetType) else payload.status,
        expiration_seconds=expiration_s,
        name=payload.name,
        assistant_id=payload.assistant_id,
        assistant=UNSET if payload.assistant_id is not UNSET else _clean(payload.assistant),
        assistant_overrides=_clean(payload.assistant_overrides),
        squad_id=payload.squad_id,
        squad=UNSET if payload.squad_id is not UNSET else _clean(payload.squad),
        messages=_clean_messages(payload.messages),
        customer=customer,
        customer_id=payload.customer_id,
        phone_number_id=payload.phone_number_id,
        phone_number=_clean_phone_number(payload.phone_number),
    )
    return session, expires_ms


def updated_session(
    session: Session, expires_ms: int, payload: UpdateSessionDTO, now_ms: int
) -> tuple[Session, int]:
    """The snapshot after a partial update, and its (possibly restarted) expiry in epoch ms.

    Only the fields present change; `messages` replaces the list; a new `expirationSeconds`
    restarts the clock from this update.
    """
    changes: dict[str, Any] = {"updated_at": iso_ms(now_ms)}
    for name in ("name", "status"):
        value = getattr(payload, name)
        if value is not UNSET:
            changes[name] = value
    if not isinstance(payload.messages, UnsetType):
        changes["messages"] = _clean_messages(payload.messages)
    if not isinstance(payload.expiration_seconds, UnsetType):
        expires_ms = expires_at_ms(now_ms, payload.expiration_seconds)
        changes["expiration_seconds"] = payload.expiration_seconds
        changes["expires_at"] = iso_ms(expires_ms)
    return structs.replace(session, **changes), expires_ms


def changes_anything(session: Session, payload: UpdateSessionDTO) -> bool:
    """Whether an update would change a session; a completed session accepts only no-ops."""
    if payload.expiration_seconds is not UNSET:
        return True  # restarts the clock even when the number is the same
    return any(
        getattr(payload, name) is not UNSET and getattr(payload, name) != getattr(session, name)
        for name in ("name", "status", "messages")
    )
