"""Auth: Clerk's claim decoding (v1, v2 bitmasks), has() and reverification."""

from __future__ import annotations

from typing import Any

import pytest

from flask_clerk_security import Auth, TokenVerificationError
from flask_clerk_security.auth import org_permissions_v2, reverification_passes
from flask_clerk_security.testing import ClerkTestIssuer

ORG = {"id": "org_1", "slug": "acme", "role": "admin", "permissions": {"memberships": ["read", "manage"]}}


def auth(issuer: ClerkTestIssuer, **options: Any) -> Auth:
    return Auth.from_claims(issuer.session_claims(**options))


def test_protocol_example_bitmask() -> None:
    assert org_permissions_v2("o:impersonation,o:memberships", "read,manage", "1,3") == [
        "org:impersonation:read",
        "org:memberships:read",
        "org:memberships:manage",
    ]


def test_bitmask_edge_cases() -> None:
    big = str((1 << 70) | 1)
    names = ",".join(f"p{i}" for i in range(71))
    assert org_permissions_v2("o:f", names, big) == ["org:f:p0", "org:f:p70"]
    assert org_permissions_v2("o:f,o:g", "read", "x,1") == ["org:g:read"]
    assert org_permissions_v2("u:f,o:g", "read", "1") == ["org:g:read"]
    assert org_permissions_v2("o:f", "", "1") == []
    assert org_permissions_v2("o:f,o:g,o:h", "read", "1") == ["org:f:read"]


def test_v2_and_v1_decode_the_same(clerk_issuer: ClerkTestIssuer) -> None:
    v2, v1 = auth(clerk_issuer, org=ORG), auth(clerk_issuer, org=ORG, version=1)
    for decoded in (v2, v1):
        assert decoded.is_authenticated
        assert (decoded.user_id, decoded.session_id, decoded.org_id, decoded.org_slug) == (
            "user_123",
            "sess_123",
            "org_1",
            "acme",
        )
        assert decoded.org_role == "org:admin"
        assert decoded.org_permissions == ["org:memberships:read", "org:memberships:manage"]


def test_pending_session_is_signed_out(clerk_issuer: ClerkTestIssuer) -> None:
    pending = auth(clerk_issuer, status="pending", org=ORG)
    assert not pending.is_authenticated
    assert pending.user_id is None
    assert not pending.has(role="admin")


def test_role_and_permission(clerk_issuer: ClerkTestIssuer) -> None:
    member = auth(clerk_issuer, org=ORG)
    assert member.has(role="admin") and member.has(role="org:admin")
    assert member.has(permission="org:memberships:manage") and member.has(permission="memberships:manage")
    assert not member.has(role="member")
    assert member.has(role="admin", permission="org:memberships:read")
    assert not member.has(role="admin", permission="org:billing:manage")
    assert not auth(clerk_issuer).has(role="admin"), "no active organization"


def test_has_nothing_asked_is_false(clerk_issuer: ClerkTestIssuer) -> None:
    assert not auth(clerk_issuer, org=ORG).has()
    assert not Auth.signed_out("session-token-and-uat-missing").has(role="admin")


def test_features_and_plans_with_scopes(clerk_issuer: ClerkTestIssuer) -> None:
    subject = auth(clerk_issuer, features=["u:ai", "o:sso", "ou:export"], plan="u:pro")
    assert subject.has(feature="ai") and subject.has(feature="user:ai") and subject.has(feature="u:ai")
    assert not subject.has(feature="org:ai")
    assert subject.has(feature="organization:sso") and not subject.has(feature="user:sso")
    assert subject.has(feature="o:export") and subject.has(feature="u:export")
    assert not subject.has(feature="team:ai"), "unknown scope fails"
    assert subject.has(plan="pro") and subject.has(plan="user:pro") and not subject.has(plan="org:pro")
    assert subject.has(feature="ai", plan="pro") and not subject.has(feature="ai", plan="enterprise")
    assert not auth(clerk_issuer).has(feature="ai"), "no fea claim"


def test_malformed_feature_claim_is_refused_at_decode(clerk_issuer: ClerkTestIssuer) -> None:
    claims = clerk_issuer.session_claims(org={"id": "org_1", "role": "admin"})
    claims["fea"] = "nocolon"
    with pytest.raises(TokenVerificationError):
        Auth.from_claims(claims)


@pytest.mark.parametrize(
    ("claims", "absent"),
    [
        ({"v": 2, "fea": 5}, None),
        ({"v": 2, "pla": ["u:pro"]}, None),
        ({"v": 2, "o": ["org_1"]}, "org_id"),
        ({"v": 2, "o": "org_1"}, "org_id"),
        ({"v": 2, "o": {"id": 5, "rol": "admin"}}, "org_id"),
        ({"sid": 5}, "session_id"),
        ({"sts": 5}, "session_status"),
        ({"act": "user_admin"}, "actor"),
        ({"org_id": "org_1", "org_permissions": "org:a:b"}, "org_permissions"),
    ],
)
def test_oddly_typed_optional_claims_sign_in_as_with_clerk(claims: dict[str, Any], absent: str | None) -> None:
    # Clerk signs these in (tests/conformance claim_* cases); a field Clerk would fill with a non-string is None.
    auth = Auth.from_claims({"sub": "user_1", **claims})
    assert auth.is_authenticated and auth.user_id == "user_1"
    assert not auth.has(feature="beta") and not auth.has(plan="pro")
    if absent is not None:
        assert getattr(auth, absent) is None


@pytest.mark.parametrize(
    "claims",
    [
        {"v": 2, "o": {"id": "org_1"}, "fea": 5},
        {"v": 2, "o": "org_1", "fea": ["o:a"]},
        {"v": 2, "o": {"id": "org_1", "per": 5, "fpm": "1"}},
        {"v": 2, "o": {"id": "org_1", "per": "read", "fpm": 1}},
    ],
)
def test_claims_clerk_cannot_decode_raise_token_invalid(claims: dict[str, Any]) -> None:
    # Clerk throws building its auth object (fea.split / per.split is not a function): never signed in.
    with pytest.raises(TokenVerificationError) as info:
        Auth.from_claims({"sub": "user_1", **claims})
    assert info.value.reason == "token-invalid"


@pytest.mark.parametrize(
    ("fva", "config", "expected"),
    [
        ([0, 0], "strict", True),
        ([5, 9], "strict", True),
        ([5, 10], "strict", False),
        ([5, -1], "strict", True),
        ([15, -1], "strict", False),
        ([-1, 5], "strict", True),
        ([-1, -1], "lax", False),
        ([5, 5], "strict_mfa", True),
        ([11, 5], "strict_mfa", False),
        ([-1, 5], "strict_mfa", False),
        ([30, 59], "moderate", True),
        ([1439, -1], "lax", True),
        ([20, 1], {"level": "first_factor", "after_minutes": 15}, False),
        ([20, 1], {"level": "second_factor", "afterMinutes": 15}, True),
        ([5, 5], {"level": "multi_factor", "after_minutes": 0}, False),
        ([5, 5], "unknown", False),
        (None, "strict", False),
        ([5], "strict", False),
        (["5", 5], "strict", False),
        ([-2, 5], "strict", False),
        ([True, 0], "strict", False),
    ],
)
def test_reverification(fva: Any, config: Any, expected: bool) -> None:
    assert reverification_passes(fva, config) is expected


def test_reverification_through_has_uses_fva_not_iat(clerk_issuer: ClerkTestIssuer) -> None:
    fresh_token_stale_factor = auth(clerk_issuer, fva=[120, 90])
    assert not fresh_token_stale_factor.has(reverification="strict")
    assert auth(clerk_issuer, fva=[120, 2]).has(reverification="strict")
    old_token_fresh_factor = auth(clerk_issuer, fva=[1, 1], issued_at=0, lifetime=10**10)
    assert old_token_fresh_factor.has(reverification="strict")


def test_reverification_combined_with_role(clerk_issuer: ClerkTestIssuer) -> None:
    subject = auth(clerk_issuer, org=ORG, fva=[1, 1])
    assert subject.has(role="admin", reverification="strict")
    assert not subject.has(role="member", reverification="strict")
    assert not auth(clerk_issuer, org=ORG, fva=[100, 100]).has(role="admin", reverification="strict")


@pytest.mark.parametrize("fva", ["00", (0, -1), {0: 0, 1: -1}, b"\x00\x00"])
def test_fva_that_is_not_a_list_of_two_fails(clerk_issuer: ClerkTestIssuer, fva: Any) -> None:
    # Clerk's checkReverificationAuthorization: Array.isArray(fva) && fva.length === 2, else "fail".
    assert reverification_passes([0, -1], "lax") is True
    assert reverification_passes(fva, "lax") is False
    claims = clerk_issuer.session_claims()
    claims["fva"] = fva
    assert Auth.from_claims(claims).has(reverification="lax") is False


def test_features_and_plans_with_two_colons(clerk_issuer: ClerkTestIssuer) -> None:
    # Clerk splits the claim's entries at their first colon and the asked name with split(":") keeping two
    # pieces: "o:ai:beta" in the claim is the org feature "ai:beta"; asking "o:ai:beta" means org feature "ai".
    beta = Auth.from_claims(clerk_issuer.session_claims(features=["o:ai:beta"], plan="u:pro:annual"))
    assert beta.has(feature="o:ai:beta") is False
    assert beta.has(feature="ai:beta") is False  # scope "ai" is no scope: Clerk throws, has() fails
    assert beta.has(plan="u:pro:annual") is False
    plain = Auth.from_claims(clerk_issuer.session_claims(features=["o:ai"], plan="u:pro"))
    assert plain.has(feature="o:ai:beta") is True
    assert plain.has(feature="org:ai:x") is True
    assert plain.has(plan="user:pro:x") is True
    assert plain.has(plan="o:pro:x") is False


def test_who_counts_as_authenticated() -> None:
    # Any one identity makes a request authenticated (a user, or a machine token's id or subject); a reason or
    # no identity at all means signed out.
    assert Auth(user_id="user_1").is_authenticated
    assert Auth(token_type="api_key", id="ak_1").is_authenticated
    assert Auth(token_type="m2m_token", subject="mch_1").is_authenticated
    assert not Auth().is_authenticated
    assert not Auth(user_id="user_1", reason="token-expired").is_authenticated


def test_signed_out_auth_is_a_session_token_unless_told() -> None:
    # Clerk's signedOutAuthObject says tokenType 'session_token'; machine refusals name their own type.
    assert Auth.signed_out("session-token-and-uat-missing").token_type == "session_token"
    assert Auth.signed_out("token-invalid", token_type="api_key").token_type == "api_key"
    assert Auth.signed_out("token-invalid").reason == "token-invalid"


def test_reverification_presets_are_clerks() -> None:
    # Clerk's TYPES_TO_OBJECTS (@clerk/shared authorization.ts).
    from flask_clerk_security.auth import reverification_config

    assert {name: reverification_config(name) for name in ("strict_mfa", "strict", "moderate", "lax")} == {
        "strict_mfa": {"level": "multi_factor", "afterMinutes": 10},
        "strict": {"level": "second_factor", "afterMinutes": 10},
        "moderate": {"level": "second_factor", "afterMinutes": 60},
        "lax": {"level": "second_factor", "afterMinutes": 1440},
    }
    assert reverification_config({"level": "first_factor", "after_minutes": 5}) == {
        "level": "first_factor",
        "afterMinutes": 5,
    }
    assert reverification_config("STRICT") is None


def test_auth_is_frozen(clerk_issuer: ClerkTestIssuer) -> None:
    # One Auth is shared by every request carrying the same cached token: nobody may change it.
    import dataclasses

    shared = auth(clerk_issuer, org=ORG)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shared.user_id = "user_admin"  # type: ignore[misc]
