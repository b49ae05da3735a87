"""Every reason string a refusal carries, each defined once, with the Clerk source it comes from.

Clerk's values are copied from ``@clerk/backend``: ``src/errors.ts`` (``TokenVerificationErrorReason``,
``TokenVerificationErrorAction``, ``MachineTokenVerificationErrorCode``) and ``src/tokens/authStatus.ts``
(``AuthErrorReason``). The extension's own reasons are marked as ours.
"""

from __future__ import annotations


class TokenVerificationErrorReason:
    """Clerk's ``TokenVerificationErrorReason`` (``errors.ts``): why a JWT was refused."""

    TOKEN_EXPIRED = "token-expired"
    TOKEN_INVALID = "token-invalid"
    TOKEN_INVALID_ALGORITHM = "token-invalid-algorithm"
    TOKEN_INVALID_AUTHORIZED_PARTIES = "token-invalid-authorized-parties"
    TOKEN_INVALID_ISSUER = "token-invalid-issuer"
    TOKEN_INVALID_SIGNATURE = "token-invalid-signature"
    TOKEN_NOT_ACTIVE_YET = "token-not-active-yet"
    TOKEN_IAT_IN_THE_FUTURE = "token-iat-in-the-future"
    TOKEN_VERIFICATION_FAILED = "token-verification-failed"
    SECRET_KEY_INVALID = "secret-key-invalid"
    JWK_FAILED_TO_RESOLVE = "jwk-failed-to-resolve"
    JWK_REMOTE_FAILED_TO_LOAD = "jwk-remote-failed-to-load"
    JWK_KID_MISMATCH = "jwk-kid-mismatch"


class TokenVerificationErrorAction:
    """Clerk's ``TokenVerificationErrorAction`` (``errors.ts``): what to do about a refused JWT, the second half
    of its ``getFullMessage()``."""

    CONTACT_SUPPORT = "Contact support@clerk.com"
    ENSURE_CLERK_JWT = "Make sure that this is a valid Clerk-generated JWT."
    SET_CLERK_JWT_KEY = "Set the CLERK_JWT_KEY environment variable."


class AuthErrorReason:
    """Clerk's ``AuthErrorReason`` (``authStatus.ts``): why a request is signed out or handshakes."""

    CLIENT_UAT_WITHOUT_SESSION_TOKEN = "client-uat-but-no-session-token"
    DEV_BROWSER_MISSING = "dev-browser-missing"
    DEV_BROWSER_SYNC = "dev-browser-sync"
    PRIMARY_DOMAIN_CROSS_ORIGIN_SYNC = "primary-domain-cross-origin-sync"
    PRIMARY_RESPONDS_TO_SYNCING = "primary-responds-to-syncing"
    ACTIVE_ORGANIZATION_MISMATCH = "active-organization-mismatch"
    SATELLITE_NEEDS_SYNCING = "satellite-needs-syncing"
    SESSION_TOKEN_AND_UAT_MISSING = "session-token-and-uat-missing"
    SESSION_TOKEN_MISSING = "session-token-missing"
    SESSION_TOKEN_EXPIRED = "session-token-expired"
    SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT = "session-token-iat-before-client-uat"
    SESSION_TOKEN_NBF = "session-token-nbf"
    SESSION_TOKEN_IAT_IN_THE_FUTURE = "session-token-iat-in-the-future"
    SESSION_TOKEN_WITHOUT_CLIENT_UAT = "session-token-but-no-client-uat"
    TOKEN_TYPE_MISMATCH = "token-type-mismatch"
    UNEXPECTED_ERROR = "unexpected-error"
    #: Ours: Clerk throws here (a 500 in its Express SDK); we sign the request out and stop handshaking.
    HANDSHAKE_TOKEN_INVALID = "handshake-token-invalid"


class RefreshTokenErrorReason:
    """Clerk's ``RefreshTokenErrorReason`` (``request.ts``): why an expired session token was not refreshed with
    the ``__refresh`` cookie (the suffix of ``session-token-expired-refresh-<reason>``). A Backend API refusal
    passes on its own error code instead."""

    NON_ELIGIBLE_NO_COOKIE = "non-eligible-no-refresh-cookie"
    NON_ELIGIBLE_NON_GET = "non-eligible-non-get"
    INVALID_SESSION_TOKEN = "invalid-session-token"
    MISSING_API_CLIENT = "missing-api-client"
    MISSING_SESSION_TOKEN = "missing-session-token"
    MISSING_REFRESH_TOKEN = "missing-refresh-token"
    EXPIRED_SESSION_TOKEN_DECODE_FAILED = "expired-session-token-decode-failed"
    EXPIRED_SESSION_TOKEN_MISSING_SID_CLAIM = "expired-session-token-missing-sid-claim"
    FETCH_ERROR = "fetch-error"
    UNEXPECTED_SDK_ERROR = "unexpected-sdk-error"
    UNEXPECTED_BAPI_ERROR = "unexpected-bapi-error"


class MachineReason:
    """Machine-token refusals: Clerk's ``MachineTokenVerificationErrorCode`` (``errors.ts``) and the
    ``AuthErrorReason`` values its machine path answers with."""

    TOKEN_TYPE_MISMATCH = AuthErrorReason.TOKEN_TYPE_MISMATCH
    NO_TOKEN_IN_HEADER = "No token in header"
    TOKEN_INVALID = TokenVerificationErrorReason.TOKEN_INVALID
    TOKEN_EXPIRED = TokenVerificationErrorReason.TOKEN_EXPIRED
    TOKEN_VERIFICATION_FAILED = TokenVerificationErrorReason.TOKEN_VERIFICATION_FAILED
    SECRET_KEY_INVALID = TokenVerificationErrorReason.SECRET_KEY_INVALID
    UNEXPECTED_ERROR = AuthErrorReason.UNEXPECTED_ERROR


#: Ours: a cookie-authenticated write from another origin (the CSRF defence), answered 403.
CSRF_ORIGIN_MISMATCH = "csrf-origin-mismatch"

#: Key-source failures that mean "cannot verify now" (answered 503), not "bad token".
KEY_UNAVAILABLE = frozenset(
    {
        TokenVerificationErrorReason.JWK_REMOTE_FAILED_TO_LOAD,
        TokenVerificationErrorReason.SECRET_KEY_INVALID,
        TokenVerificationErrorReason.JWK_FAILED_TO_RESOLVE,
    }
)
#: Every refusal answered 503: the key source, or an unexpected failure of the machine-token path.
UNAVAILABLE = KEY_UNAVAILABLE | {AuthErrorReason.UNEXPECTED_ERROR}

#: The token refusals Clerk answers with a handshake on a page, as the ``AuthErrorReason`` they become.
HANDSHAKE_REASONS = {
    TokenVerificationErrorReason.TOKEN_EXPIRED: AuthErrorReason.SESSION_TOKEN_EXPIRED,
    TokenVerificationErrorReason.TOKEN_NOT_ACTIVE_YET: AuthErrorReason.SESSION_TOKEN_NBF,
    TokenVerificationErrorReason.TOKEN_IAT_IN_THE_FUTURE: AuthErrorReason.SESSION_TOKEN_IAT_IN_THE_FUTURE,
}


def request_reason(token_reason: str, method: str, refresh_error: str | None = None) -> str:
    """Clerk's ``convertTokenVerificationErrorReasonToAuthErrorReason`` for a session token refused on a request.

    An expired token's reason ends with why it was not refreshed: ``refresh_error`` when a refresh was tried,
    else Clerk's not-eligible variant for ``method`` (a request without a ``__refresh`` cookie).
    """
    reason = HANDSHAKE_REASONS.get(token_reason, token_reason)
    if token_reason == TokenVerificationErrorReason.TOKEN_EXPIRED:
        if refresh_error is None:
            refresh_error = (
                RefreshTokenErrorReason.NON_ELIGIBLE_NON_GET
                if method != "GET"
                else RefreshTokenErrorReason.NON_ELIGIBLE_NO_COOKIE
            )
        reason = f"{reason}-refresh-{refresh_error}"
    return reason
