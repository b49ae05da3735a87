"""The ``Auth`` object: Clerk's claim decoding (v1 and v2), ``has()`` and reverification, as @clerk/shared does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import TokenVerificationError

REVERIFICATION_PRESETS: dict[str, dict[str, Any]] = {
    "strict_mfa": {"level": "multi_factor", "afterMinutes": 10},
    "strict": {"level": "second_factor", "afterMinutes": 10},
    "moderate": {"level": "second_factor", "afterMinutes": 60},
    "lax": {"level": "second_factor", "afterMinutes": 1440},
}
_LEVELS = frozenset({"first_factor", "second_factor", "multi_factor"})
_ORG_SCOPES = frozenset({"o", "org", "organization"})
_USER_SCOPES = frozenset({"u", "user"})
_ORG_PREFIX = re.compile(r"^(org:)*")
_DIGITS = re.compile(r"[0-9]+")

ReverificationConfig = str | Mapping[str, Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def prefix_with_org(value: str) -> str:
    """``admin``, ``org:admin`` and ``org:org:admin`` all become ``org:admin``."""
    return _ORG_PREFIX.sub("org:", value, count=1)


def split_by_scope(claim: str | None) -> tuple[list[str], list[str]]:
    """Clerk's ``splitByScope``: ``'o:a,u:b,ou:c'`` -> (org ``[a, c]``, user ``[b, c]``)."""
    org: list[str] = []
    user: list[str] = []
    if not claim:
        return org, user
    for raw in claim.split(","):
        part = raw.strip()
        scope, colon, value = part.partition(":")
        if not colon:
            raise ValueError(f"invalid claim element (missing colon): {part}")
        if scope in ("o", "ou", "uo"):
            org.append(value)
        if scope in ("u", "ou", "uo"):
            user.append(value)
    return org, user


def _bits(decimal: str, minimum: int) -> list[int] | None:
    """Clerk's ``decimalToBinaryBits``: the bits of a decimal string, least significant first."""
    if not _DIGITS.fullmatch(decimal):
        return None
    number = int(decimal)
    bits = [(number >> i) & 1 for i in range(max(number.bit_length(), 1))]
    return bits + [0] * (minimum - len(bits))


def org_permissions_v2(fea: str | None, per: str | None, fpm: str | None) -> list[str]:
    """Clerk's ``buildOrgPermissions``: org features x the ``fpm`` bitmasks over the ``per`` names."""
    features, _ = split_by_scope(fea)
    if not per or not fpm:
        return []
    permissions = [p.strip() for p in per.split(",")]
    masks = [_bits(mask.strip(), len(permissions)) or [] for mask in fpm.split(",")]
    granted: list[str] = []
    for feature, bits in zip(features, masks, strict=False):
        for index, bit in enumerate(bits[: len(permissions)]):
            if bit == 1:
                granted.append(f"org:{feature}:{permissions[index]}")
    return granted


def _feature_or_plan_granted(claim: str, wanted: str) -> bool:
    org, user = split_by_scope(claim)
    pieces = wanted.split(":")
    scope = pieces[0]
    explicit = len(pieces) > 1
    name = pieces[1] if explicit and pieces[1] else scope
    if explicit:
        if scope in _ORG_SCOPES:
            return name in org
        if scope in _USER_SCOPES:
            return name in user
        raise ValueError(f"invalid scope: {scope}")
    return name in org or name in user


def reverification_config(value: Any) -> dict[str, Any] | None:
    """A preset name or ``{"level", "after_minutes"|"afterMinutes"}`` as Clerk's ``{level, afterMinutes}``."""
    if isinstance(value, str):
        return REVERIFICATION_PRESETS.get(value)
    if isinstance(value, Mapping):
        minutes = value.get("after_minutes", value.get("afterMinutes"))
        if value.get("level") in _LEVELS and _is_number(minutes) and minutes > 0:
            return {"level": value["level"], "afterMinutes": minutes}
    return None


def _valid_factor_age(value: Any) -> bool:
    return _is_number(value) and value == value and abs(value) != float("inf") and (value == -1 or value >= 0)


def reverification_passes(fva: Any, config: Any) -> bool:
    """Clerk's ``checkReverificationAuthorization`` on the ``fva`` claim (factor ages in minutes)."""
    if not fva or not isinstance(fva, list) or len(fva) != 2:
        return False
    if not _valid_factor_age(fva[0]) or not _valid_factor_age(fva[1]):
        return False
    resolved = reverification_config(config)
    if resolved is None:
        return False
    level, minutes = resolved["level"], resolved["afterMinutes"]
    first, second = fva
    if first == -1 and second == -1:
        return False
    first_fresh = first != -1 and minutes > first
    second_fresh = second != -1 and minutes > second
    if level == "first_factor":
        return bool(first_fresh)
    if level == "second_factor":
        return bool(first_fresh if second == -1 else second_fresh)
    return bool(first_fresh if second == -1 else first_fresh and second_fresh)


@dataclass(frozen=True)
class Auth:
    """Who made the request, as Clerk's auth object. Signed-out requests get ``is_authenticated == False``."""

    user_id: str | None = None
    session_id: str | None = None
    session_status: str | None = None
    org_id: str | None = None
    org_role: str | None = None
    org_slug: str | None = None
    org_permissions: list[str] | None = None
    factor_verification_age: Any = None
    actor: Mapping[str, Any] | None = None
    claims: Mapping[str, Any] | None = None
    token_type: str = "session_token"
    #: Why a request is signed out (Clerk's reason string); ``None`` when signed in.
    reason: str | None = None
    id: str | None = None
    subject: str | None = None
    scopes: list[str] | None = None
    machine_id: str | None = None
    client_id: str | None = None
    name: str | None = None
    #: Clerk's ``x-clerk-auth-message`` for a refused token: what was wrong with it, in Clerk's words (its
    #: ``getFullMessage()``; never the token). Like Clerk's ``debug()``, not part of equality.
    message: str | None = field(default=None, repr=False, compare=False)
    _features: str = field(default="", repr=False)
    _plans: str = field(default="", repr=False)
    #: A pending session signed out (Clerk's default ``treatPendingAsSignedOut``) keeps its verified claims here,
    #: never in ``claims``, so a route that accepts pending sessions can sign it in (:meth:`treating_pending`).
    _pending_claims: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def is_authenticated(self) -> bool:
        return self.reason is None and bool(self.user_id or self.id or self.subject)

    @classmethod
    def signed_out(cls, reason: str, token_type: str = "session_token", message: str | None = None) -> Auth:
        return cls(reason=reason, token_type=token_type, message=message or None)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], *, treat_pending_as_signed_out: bool = True) -> Auth:
        """Decode verified session claims as Clerk's ``JWTPayloadToAuthObjectProperties``.

        A claim of an unexpected type signs in as with Clerk; where Clerk would copy it into a string field
        (``sid`` a number, ``act`` a string ...) the field reads as absent here, so typed code never meets it.
        Claims Clerk itself cannot decode (``fea``/``per``/``fpm`` not strings next to an org, a ``fea``
        element without a colon) raise :class:`TokenVerificationError` (``token-invalid``), never a 5xx.
        """
        try:
            return cls._decode(claims, treat_pending_as_signed_out)
        except (TypeError, ValueError, AttributeError):
            raise TokenVerificationError("token-invalid", "Session claims have unexpected types.") from None

    @classmethod
    def _decode(cls, claims: Mapping[str, Any], treat_pending_as_signed_out: bool) -> Auth:
        status = claims.get("sts")
        if treat_pending_as_signed_out and status == "pending":
            # Clerk's signedOutAuthObject(undefined, "pending"): signed out with no reason.
            return cls(session_status="pending", _pending_claims=claims)
        features = claims.get("fea")
        plans = claims.get("pla")
        org_id = org_role = org_slug = None
        org_permissions: list[str] | None = None
        if claims.get("v") == 2:
            org = claims.get("o")
            if org:
                fields: Mapping[str, Any] = org if isinstance(org, Mapping) else {}
                org_id = _str_or_none(fields.get("id"))
                org_slug = _str_or_none(fields.get("slg"))
                role = _str_or_none(fields.get("rol"))
                org_role = f"org:{role}" if role else None
                org_permissions = org_permissions_v2(
                    _split_input(features), _split_input(fields.get("per")), _split_input(fields.get("fpm"))
                )
        else:
            org_id = _str_or_none(claims.get("org_id"))
            org_role = _str_or_none(claims.get("org_role"))
            org_slug = _str_or_none(claims.get("org_slug"))
            permissions = claims.get("org_permissions")
            if isinstance(permissions, list) and all(isinstance(p, str) for p in permissions):
                org_permissions = list(permissions)
        actor = claims.get("act")
        return cls(
            user_id=_str_or_none(claims.get("sub")),
            session_id=_str_or_none(claims.get("sid")),
            session_status=_str_or_none(status),
            org_id=org_id,
            org_role=org_role,
            org_slug=org_slug,
            org_permissions=org_permissions,
            factor_verification_age=claims.get("fva"),
            actor=actor if isinstance(actor, Mapping) else None,
            claims=claims,
            _features=features if isinstance(features, str) else "",
            _plans=plans if isinstance(plans, str) else "",
        )

    def treating_pending(self, as_signed_out: bool) -> Auth:
        """This auth under Clerk's ``treatPendingAsSignedOut=as_signed_out``: a pending session's auth signed
        out (no reason, as Clerk's) or signed in with its claims; any other auth unchanged."""
        if self.session_status != "pending" or self.token_type != "session_token":
            return self
        if as_signed_out:
            return Auth(session_status="pending", _pending_claims=self.claims) if self.is_authenticated else self
        if self._pending_claims is None:
            return self
        return Auth.from_claims(self._pending_claims, treat_pending_as_signed_out=False)

    def has(
        self,
        *,
        permission: str | None = None,
        role: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: ReverificationConfig | None = None,
    ) -> bool:
        """Clerk's ``has()``: every dimension asked must pass, and at least one must be asked."""
        if not self.is_authenticated or self.token_type != "session_token":
            return False
        results = (
            self._check_org(role, permission),
            self._check_billing(feature, plan),
            None if reverification is None else reverification_passes(self.factor_verification_age, reverification),
        )
        asked = [result for result in results if result is not None]
        return bool(asked) and all(asked)

    def _check_org(self, role: Any, permission: Any) -> bool | None:
        if role is None and permission is None:
            return None
        if (role is not None and not isinstance(role, str)) or (
            permission is not None and not isinstance(permission, str)
        ):
            return False
        if not self.org_id:
            return False
        if role is not None and (not self.org_role or prefix_with_org(self.org_role) != prefix_with_org(role)):
            return False
        return permission is None or (
            self.org_permissions is not None and prefix_with_org(permission) in self.org_permissions
        )

    def _check_billing(self, feature: Any, plan: Any) -> bool | None:
        if feature is None and plan is None:
            return None
        for wanted, claim in ((feature, self._features), (plan, self._plans)):
            if wanted is None:
                continue
            if not isinstance(wanted, str) or not claim:
                return False
            try:
                if not _feature_or_plan_granted(claim, wanted):
                    return False
            except ValueError:
                return False
        return True


def _str_or_none(value: Any) -> str | None:
    """A string claim, or None for any other JSON value (Clerk would pass it on as it is)."""
    return value if isinstance(value, str) else None


def _split_input(value: Any) -> str | None:
    """A claim Clerk splits on ``,``: None when JavaScript reads it as false (skipped), the string itself;
    raises TypeError for any other value, as ``value.split`` throws in Clerk."""
    if value is None or value is False or value == "" or (_is_number(value) and not value):
        return None
    if isinstance(value, str):
        return value
    raise TypeError("expected a string")
