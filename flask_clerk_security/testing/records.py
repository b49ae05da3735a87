"""Clerk-shaped JSON records (user, organization, membership) for the Backend API stand-in.

Every field Clerk's Backend API sends is present, so the official SDK's models (``clerk_backend_api.models``)
parse them as they parse Clerk's own answers.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any


def _now_ms() -> int:
    return int(time.time() * 1000)


def _email(address: str) -> dict[str, Any]:
    now = _now_ms()
    return {
        "id": f"idn_{secrets.token_hex(12)}",
        "object": "email_address",
        "email_address": address,
        "reserved": False,
        "verification": {
            "object": "verification_otp",
            "status": "verified",
            "strategy": "email_code",
            "attempts": 1,
            "expire_at": now,
        },
        "linked_to": [],
        "matches_sso_connection": False,
        "created_at": now,
        "updated_at": now,
    }


def user_record(
    user_id: str,
    first_name: str | None,
    last_name: str | None,
    email: str | None,
    username: str | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """``GET /v1/users/{id}``'s answer for a user with these names and one verified primary email."""
    now = _now_ms()
    emails = [_email(email)] if email else []
    record: dict[str, Any] = {
        "id": user_id,
        "object": "user",
        "external_id": None,
        "primary_email_address_id": emails[0]["id"] if emails else None,
        "primary_phone_number_id": None,
        "primary_web3_wallet_id": None,
        "username": username,
        "first_name": first_name,
        "last_name": last_name,
        "image_url": "https://img.clerk.com/placeholder",
        "has_image": False,
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": {},
        "email_addresses": emails,
        "phone_numbers": [],
        "web3_wallets": [],
        "passkeys": [],
        "password_enabled": True,
        "two_factor_enabled": False,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "mfa_enabled_at": None,
        "mfa_disabled_at": None,
        "external_accounts": [],
        "saml_accounts": [],
        "enterprise_accounts": [],
        "last_sign_in_at": now,
        "banned": False,
        "locked": False,
        "lockout_expires_in_seconds": None,
        "verification_attempts_remaining": 100,
        "updated_at": now,
        "created_at": now,
        "delete_self_enabled": True,
        "create_organization_enabled": True,
        "last_active_at": now,
        "legal_accepted_at": None,
    }
    record.update(fields)
    return record


def organization_record(org_id: str, name: str, slug: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /v1/organizations/{id}``'s answer."""
    now = _now_ms()
    record: dict[str, Any] = {
        "object": "organization",
        "id": org_id,
        "name": name,
        "slug": slug or name.lower().replace(" ", "-"),
        "image_url": "https://img.clerk.com/placeholder",
        "has_image": False,
        "max_allowed_memberships": 5,
        "admin_delete_enabled": True,
        "public_metadata": {},
        "private_metadata": {},
        "created_at": now,
        "updated_at": now,
    }
    record.update(fields)
    return record


def membership_record(
    organization: Mapping[str, Any], user: Mapping[str, Any], role: str, permissions: list[str]
) -> dict[str, Any]:
    """One entry of ``GET /v1/organizations/{id}/memberships``' ``data``."""
    now = _now_ms()
    emails = user.get("email_addresses") or [{}]
    return {
        "id": f"orgmem_{secrets.token_hex(12)}",
        "object": "organization_membership",
        "role": role,
        "role_name": role.removeprefix("org:").title(),
        "permissions": permissions,
        "public_metadata": {},
        "private_metadata": {},
        "organization": dict(organization),
        "public_user_data": {
            "user_id": user["id"],
            "first_name": user.get("first_name"),
            "last_name": user.get("last_name"),
            "profile_image_url": user.get("image_url", ""),
            "image_url": user.get("image_url", ""),
            "has_image": False,
            "identifier": emails[0].get("email_address", user["id"]),
            "username": user.get("username"),
        },
        "created_at": now,
        "updated_at": now,
    }


def session_record(session_id: str, user_id: str, status: str) -> dict[str, Any]:
    """A session as ``GET /v1/sessions/{id}`` answers it (``status``: ``active``, ``revoked``, ``ended``, ...)."""
    now = _now_ms()
    return {
        "object": "session",
        "id": session_id,
        "user_id": user_id,
        "client_id": "client_standin",
        "status": status,
        "last_active_at": now,
        "expire_at": now + 7 * 86_400_000,
        "abandon_at": now + 30 * 86_400_000,
        "updated_at": now,
        "created_at": now,
    }
