"""Typed Clerk webhook payloads for the common events, as ``@clerk/backend``'s ``api/resources/JSON.ts`` and
``api/resources/Webhooks.ts`` define them (the fields an app reads; Clerk may send more).

``WebhookPayload`` is a union tagged by ``type``: after ``if payload["type"] == "user.created":`` a type checker
knows ``payload["data"]`` is a :class:`UserJSON`. Get one from :attr:`WebhookEvent.typed_payload`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:  # annotations only (they are strings here): no runtime dependency on typing_extensions
    from typing_extensions import NotRequired


class EmailAddressJSON(TypedDict):
    object: Literal["email_address"]
    id: str
    email_address: str
    verification: dict[str, Any] | None
    linked_to: list[dict[str, Any]]


class PhoneNumberJSON(TypedDict):
    object: Literal["phone_number"]
    id: str
    phone_number: str
    verification: dict[str, Any] | None


class UserJSON(TypedDict):
    object: Literal["user"]
    id: str
    username: str | None
    first_name: str | None
    last_name: str | None
    image_url: str
    has_image: bool
    primary_email_address_id: str | None
    primary_phone_number_id: str | None
    email_addresses: list[EmailAddressJSON]
    phone_numbers: list[PhoneNumberJSON]
    external_id: str | None
    public_metadata: dict[str, Any]
    private_metadata: NotRequired[dict[str, Any]]
    unsafe_metadata: dict[str, Any]
    banned: bool
    locked: bool
    last_sign_in_at: int | None
    created_at: int
    updated_at: int


class DeletedObjectJSON(TypedDict):
    object: str
    id: NotRequired[str]
    slug: NotRequired[str]
    deleted: bool


class OrganizationJSON(TypedDict):
    object: Literal["organization"]
    id: str
    name: str
    slug: str
    image_url: NotRequired[str]
    has_image: bool
    members_count: NotRequired[int]
    max_allowed_memberships: int
    admin_delete_enabled: bool
    public_metadata: dict[str, Any]
    private_metadata: NotRequired[dict[str, Any]]
    created_by: NotRequired[str]
    created_at: int
    updated_at: int


class PublicUserDataJSON(TypedDict):
    user_id: str
    identifier: str
    first_name: str | None
    last_name: str | None
    image_url: str
    has_image: bool


class OrganizationMembershipJSON(TypedDict):
    object: Literal["organization_membership"]
    id: str
    role: str
    permissions: list[str]
    public_metadata: dict[str, Any]
    private_metadata: NotRequired[dict[str, Any]]
    organization: OrganizationJSON
    public_user_data: PublicUserDataJSON
    created_at: int
    updated_at: int


class SessionJSON(TypedDict):
    object: Literal["session"]
    id: str
    client_id: str
    user_id: str
    status: str
    last_active_organization_id: NotRequired[str | None]
    actor: NotRequired[dict[str, Any] | None]
    last_active_at: int
    expire_at: int
    abandon_at: int
    created_at: int
    updated_at: int


class _Event(TypedDict):
    object: Literal["event"]
    timestamp: int
    instance_id: str
    event_attributes: NotRequired[dict[str, Any]]


class UserEvent(_Event):
    type: Literal["user.created", "user.updated"]
    data: UserJSON


class UserDeletedEvent(_Event):
    type: Literal["user.deleted"]
    data: DeletedObjectJSON


class SessionEvent(_Event):
    type: Literal["session.created", "session.ended", "session.removed", "session.revoked"]
    data: SessionJSON


class OrganizationEvent(_Event):
    type: Literal["organization.created", "organization.updated"]
    data: OrganizationJSON


class OrganizationDeletedEvent(_Event):
    type: Literal["organization.deleted"]
    data: DeletedObjectJSON


class OrganizationMembershipEvent(_Event):
    type: Literal["organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted"]
    data: OrganizationMembershipJSON


#: A verified webhook payload of one of the common events, tagged by ``type``.
WebhookPayload = (
    UserEvent
    | UserDeletedEvent
    | SessionEvent
    | OrganizationEvent
    | OrganizationDeletedEvent
    | OrganizationMembershipEvent
)
