"""The session snapshot: Vapi's ``Session`` plus ``expiresAt``.

This is what Redis holds for a live session and what every lifecycle event carries. Secrets are
already redacted when a snapshot is built; nothing that reaches this type may carry one.
"""

from msgspec import UNSET, Struct, UnsetType

from contracts.fields import ExpirationSeconds, Name, Opaque, Status
from contracts.messages import Messages
from contracts.payloads import CreateCustomerDTO, ImportTwilioPhoneNumberDTO


class Session(Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    id: str
    org_id: str
    created_at: str  # ISO 8601, UTC, millisecond precision
    updated_at: str
    expires_at: str  # when the TTL runs out: the last change of expirationSeconds + that many s
    status: Status
    expiration_seconds: ExpirationSeconds
    name: Name | UnsetType = UNSET
    assistant_id: str | UnsetType = UNSET
    assistant: Opaque | UnsetType = UNSET
    assistant_overrides: Opaque | UnsetType = UNSET
    squad_id: str | UnsetType = UNSET
    squad: Opaque | UnsetType = UNSET
    messages: Messages | UnsetType = UNSET
    customer: CreateCustomerDTO | UnsetType = UNSET
    customer_id: str | UnsetType = UNSET
    phone_number_id: str | UnsetType = UNSET
    phone_number: ImportTwilioPhoneNumberDTO | UnsetType = UNSET
