"""Command payloads: Vapi's CreateSessionDTO, UpdateSessionDTO and the objects they reference.

Typed parts reject unknown fields (as Vapi's API does), so a misspelt field is an error with its
path rather than silently lost data. Configuration the worker does not interpret is ``Opaque``
and kept verbatim.
"""

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from contracts.fields import HOOKS_MAX_ITEMS, ExpirationSeconds, Name, Opaque, Status
from contracts.messages import Messages

CustomerNumber = Annotated[str, Meta(min_length=3, max_length=40)]
Extension = Annotated[str, Meta(max_length=10)]


class CreateCustomerDTO(Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    number_e164_check_enabled: bool | UnsetType = UNSET
    extension: Extension | UnsetType = UNSET
    assistant_overrides: Opaque | UnsetType = UNSET
    number: CustomerNumber | UnsetType = UNSET
    sip_uri: str | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    email: Name | UnsetType = UNSET
    external_id: Name | UnsetType = UNSET


class ImportTwilioPhoneNumberDTO(Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    twilio_account_sid: str
    twilio_phone_number: str
    fallback_destination: Opaque | UnsetType = UNSET
    hooks: Annotated[list[Opaque], Meta(max_length=HOOKS_MAX_ITEMS)] | UnsetType = UNSET
    sms_enabled: bool | UnsetType = UNSET
    twilio_auth_token: str | UnsetType = UNSET  # secret: never leaves the worker
    twilio_api_key: str | UnsetType = UNSET
    twilio_api_secret: str | UnsetType = UNSET  # secret: never leaves the worker
    name: Name | UnsetType = UNSET
    assistant_id: str | UnsetType = UNSET
    workflow_id: str | UnsetType = UNSET
    squad_id: str | UnsetType = UNSET
    server: Opaque | UnsetType = UNSET


class CreateSessionDTO(Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    name: Name | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    expiration_seconds: ExpirationSeconds | UnsetType = UNSET
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


class UpdateSessionDTO(Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    """A partial update: only the fields present change; ``messages`` replaces the list."""

    name: Name | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    expiration_seconds: ExpirationSeconds | UnsetType = UNSET
    messages: Messages | UnsetType = UNSET
