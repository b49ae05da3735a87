"""Conformance: our token verification, claim decoding and has() against Clerk's own @clerk/backend.

The cases (tests/conformance/cases.py) are signed by our test issuer, run once through
tests/conformance/clerk_backend.mjs (Clerk's real code, pinned in tests/conformance/package.json) and through
our Python API; every case must give the same answer: accept/reject, reason string, Clerk's message and action
for a refusal (and the ``x-clerk-auth-message`` a request carrying the token gets), decoded auth fields, and
every has() query. Messages are compared whole; only their ``Current date: ...`` may differ, by the clock.

Needs node and npm: the ``conformance_node`` fixture (tests/conftest.py) installs Clerk's packages with
`npm ci` when they are missing. Locally the test skips without node or npm; with CI set it fails.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import Auth, ClerkSecurity, TokenVerificationError, get_auth, verify_token
from flask_clerk_security.errors import auth_message_header
from flask_clerk_security.jsvalues import QUOTE_LIMIT
from flask_clerk_security.testing import ClerkTestIssuer

from .oracle import CONFORMANCE_DIR, run_node, same_clock

# Clerk's camelCase auth fields -> our snake_case attributes.
AUTH_FIELDS = {
    "userId": "user_id",
    "sessionId": "session_id",
    "sessionStatus": "session_status",
    "orgId": "org_id",
    "orgRole": "org_role",
    "orgSlug": "org_slug",
    "orgPermissions": "org_permissions",
    "factorVerificationAge": "factor_verification_age",
    "actor": "actor",
    "isAuthenticated": "is_authenticated",
}


# Where we decide differently from @clerk/backend on purpose. Each entry pins what Clerk does today and what we
# do instead, so the test fails if either side changes. Keep this list short and explained.
INTENDED_DIFFERENCES: dict[str, tuple[str, str]] = {
    # Clerk's loadClerkJwkFromPem slices the PEM assuming a 2048-bit key, so a 4096-bit CLERK_JWT_KEY
    # yields a wrong modulus and every token fails. Clerk never issues such keys; we verify them correctly.
    "jwt_key_rsa4096": ("rejects token-invalid-signature", "accepts"),
    # Clerk signs the request in with userId "" (isAuthenticated true, every has() false). A session
    # without a user is signed out here, so require() can never let it through.
    "sub_empty_string": ("signed in with userId ''", "signed out"),
    # A header or payload that is JSON null: Clerk throws a TypeError destructuring it (authenticateRequest:
    # unexpected-error). We read it as any other non-object (no members): refused with a Clerk reason.
    "header_is_null": ("throws TypeError", "rejects token-invalid-algorithm"),
    "payload_is_null": ("throws TypeError", "rejects token-verification-failed"),
}

# Clerk copies a claim of an unexpected type into a string field of its auth object as it is (sessionId 5,
# actor "user_admin", orgRole `org:${["admin"]}`). Our Auth fields are typed (str | None, a Mapping for actor,
# a list of strings for org_permissions), so such a field reads as absent. Both sign the request in; every
# other field is equal and has() here grants nothing Clerk refuses (it may refuse what Clerk grants).
UNTYPED_FIELDS: dict[str, tuple[str, ...]] = {
    "claim_o_id_number": ("orgId",),
    "claim_o_rol_list": ("orgRole",),
    "claim_o_slg_number": ("orgSlug",),
    "claim_sid_number": ("sessionId",),
    "claim_sts_number": ("sessionStatus",),
    "claim_sts_list": ("sessionStatus",),
    "claim_act_string": ("actor",),
    "claim_act_list": ("actor",),
    "claim_act_number": ("actor",),
    "claim_v1_org_id_number": ("orgId",),
    "claim_v1_org_role_list": ("orgRole",),
    "claim_v1_org_slug_number": ("orgSlug",),
    "claim_v1_org_permissions_string": ("orgPermissions",),
    "claim_v1_org_permissions_numbers": ("orgPermissions",),
}
INTENDED_DIFFERENCES.update(
    {case_id: (f"signed in, {'/'.join(f)} as signed", "signed in, those None") for case_id, f in UNTYPED_FIELDS.items()}
)


def _check_intended_difference(case_id: str, clerk: dict[str, Any], ours: dict[str, Any]) -> None:
    if case_id == "jwt_key_rsa4096":
        assert clerk == {**clerk, "ok": False, "reason": "token-invalid-signature"}
        assert ours["ok"] and ours["auth"]["isAuthenticated"] is True
    elif case_id == "sub_empty_string":
        assert clerk["ok"] and clerk["auth"]["isAuthenticated"] is True and clerk["auth"]["userId"] == ""
        assert not any(clerk["has"])
        assert ours["ok"] and ours["auth"]["isAuthenticated"] is False and not any(ours["has"])
    elif case_id in ("header_is_null", "payload_is_null"):
        assert not clerk["ok"] and clerk["reason"].startswith("non-clerk-error: TypeError")
        assert clerk["request"] == {"status": "signed-out", "reason": "unexpected-error", "message": "",
                                    "messageHeader": None}  # fmt: skip
        expected = "token-invalid-algorithm" if case_id == "header_is_null" else "token-verification-failed"
        assert (ours["ok"], ours["reason"]) == (False, expected)
    else:
        fields = UNTYPED_FIELDS[case_id]
        assert clerk["ok"] and ours["ok"] and clerk["auth"]["isAuthenticated"] and ours["auth"]["isAuthenticated"]
        assert all(clerk["auth"][name] is not None and ours["auth"][name] is None for name in fields)
        assert {k: v for k, v in ours["auth"].items() if k not in fields} == {
            k: v for k, v in clerk["auth"].items() if k not in fields
        }
        assert all(o in (c, False) for c, o in zip(clerk["has"], ours["has"], strict=True))


def _load_cases_module() -> Any:
    spec = importlib.util.spec_from_file_location("clerk_conformance_cases", CONFORMANCE_DIR / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building the class
    spec.loader.exec_module(module)
    return module


cases_module = _load_cases_module()

# Case ids for parametrisation. The tokens themselves are rebuilt in the fixture, right before they are used,
# because they carry times relative to "now".
CASE_IDS: list[str] = [c.id for c in cases_module.build_cases(ClerkTestIssuer())]


# --------------------------------------------------------------------------------------------- our side
def _to_python_query(query: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(query)
    rev = kwargs.get("reverification")
    if isinstance(rev, dict):
        kwargs["reverification"] = {
            ("after_minutes" if k == "afterMinutes" else k): v for k, v in rev.items()
        }
    return kwargs


def _plain(value: Any) -> Any:
    """Normalise our values to what JSON from node looks like (tuples -> lists)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _run_ours(case: Any, pem: str) -> dict[str, Any]:
    try:
        claims = verify_token(
            case.token,
            jwt_key=pem,
            authorized_parties=case.authorized_parties,
            clock_skew=case.clock_skew_ms / 1000,
            audience=case.audience,
            issuer=case.issuer,
        )
    except TokenVerificationError as err:
        return {"ok": False, "reason": err.reason, "message": err.message, "action": err.action or None}
    except Exception as err:  # anything else is a mismatch worth seeing, not a crash of the whole module
        return {"ok": False, "reason": f"non-clerk-error: {type(err).__name__}: {err}"}

    out: dict[str, Any] = {"ok": True, "payloadSub": claims.get("sub")}
    try:
        auth = Auth.from_claims(claims, treat_pending_as_signed_out=case.treat_pending_as_signed_out)
    except Exception as err:
        out["authError"] = f"{type(err).__name__}: {err}"
        return out

    out["auth"] = {camel: _plain(getattr(auth, snake)) for camel, snake in AUTH_FIELDS.items()}
    answers: list[Any] = []
    for query in case.has:
        try:
            answers.append(auth.has(**_to_python_query(query)))
        except Exception as err:
            answers.append({"error": f"{type(err).__name__}: {err}"})
    out["has"] = answers
    return out


# --------------------------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def conformance(conformance_node: str) -> dict[str, tuple[Any, str, dict[str, Any]]]:
    """Every case through Clerk's code in one node process: (case, its PEM, Clerk's answer) by case id.

    Our side runs in each case's own test, so a failure names its case. Time-relative cases keep 15 s of margin
    (cases.py), far more than the module takes."""
    issuer = ClerkTestIssuer()
    cases = cases_module.build_cases(issuer)
    assert [c.id for c in cases] == CASE_IDS
    clerk_results = run_node(conformance_node, "clerk_backend.mjs", [c.to_node(issuer.public_pem) for c in cases])
    return {c.id: (c, c.jwt_key or issuer.public_pem, clerk_results[c.id]) for c in cases}


def _request_outcome(case: Any, pem: str) -> dict[str, Any]:
    """What a Flask app protected by this package makes of ``Authorization: Bearer <token>`` (on a public route,
    so the view runs and tells; the refusal's ``x-clerk-auth-message`` comes with the answer)."""
    app = Flask("conformance")
    app.config.update(
        TESTING=True,
        CLERK_JWT_KEY=pem,
        CLERK_AUTHORIZED_PARTIES=case.authorized_parties or [],
        CLERK_CLOCK_SKEW=case.clock_skew_ms / 1000,
        CLERK_AUDIENCE=case.audience or [],
        CLERK_ISSUER=case.issuer or [],
    )
    ClerkSecurity(app, public_routes=["/api/conformance"])

    @app.get("/api/conformance")
    def conformance() -> dict[str, Any]:
        auth = get_auth()
        return {"signedIn": auth.is_authenticated, "reason": auth.reason}

    answer = app.test_client().get("/api/conformance", headers={"Authorization": f"Bearer {case.token}"})
    return {**answer.get_json(), "message": answer.headers.get("x-clerk-auth-message")}


# --------------------------------------------------------------------------------------------- the test
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_matches_clerk_backend(conformance: dict[str, tuple[Any, str, dict[str, Any]]], case_id: str) -> None:
    case, pem, clerk = conformance[case_id]
    clock = time.time()
    ours = _run_ours(case, pem)
    assert "harnessError" not in clerk, clerk["harnessError"]
    assert "harnessWarning" not in clerk, clerk["harnessWarning"]
    if case_id in INTENDED_DIFFERENCES:
        _check_intended_difference(case_id, clerk, ours)
        return

    if not clerk["ok"]:
        refusal = {key: clerk[key] for key in ("ok", "reason", "message", "action")}
        ours["message"], refusal["message"] = same_clock(ours["message"], refusal["message"], clock, clerk["clock"])
        if case_id in QUOTE_DIFFERENCES:
            ours["message"] = _uncut(ours["message"], refusal["message"])
        assert ours == refusal, f"Clerk: {refusal}; ours: {ours}"
        return

    assert ours["ok"], (
        f"Clerk accepts (sub={clerk['payloadSub']!r}); ours rejects with {ours.get('reason')!r}"
    )
    assert ours["payloadSub"] == clerk["payloadSub"]

    if "authError" in clerk:
        # Clerk throws while decoding these claims (the request never becomes signed in). We accept raising,
        # or a signed-out Auth; a signed-in Auth built from the same claims would diverge.
        if "authError" not in ours:
            assert ours["auth"]["isAuthenticated"] is False, (
                f"Clerk cannot build an auth object ({clerk['authError']}); ours is signed in: {ours['auth']}"
            )
        return

    assert "authError" not in ours, f"ours raised building Auth: {ours['authError']}; Clerk: {clerk['auth']}"
    assert ours["auth"] == clerk["auth"], _diff_auth(clerk["auth"], ours["auth"])
    mismatched = [
        f"  has({q}) Clerk={c!r} ours={o!r}"
        for q, c, o in zip(case.has, clerk["has"], ours["has"], strict=True)
        if c != o
    ]
    assert not mismatched, f"{len(mismatched)}/{len(case.has)} has() answers differ:\n" + "\n".join(
        mismatched
    )


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_request_outcome_matches_authenticate_request(
    conformance: dict[str, tuple[Any, str, dict[str, Any]]], case_id: str
) -> None:
    """Clerk's authenticateRequest (Bearer header, API request) and our before_request agree on the outcome, and
    a refusal's ``x-clerk-auth-message`` is Clerk's."""
    case, pem, clerk = conformance[case_id]
    clock = time.time()
    ours = _request_outcome(case, pem)
    request = clerk["request"]
    if case_id == "jwt_key_rsa4096":  # see INTENDED_DIFFERENCES: Clerk cannot use the key, we can
        assert (request["status"], request["reason"]) == ("signed-out", "token-invalid-signature")
        assert ours == {"signedIn": True, "reason": None, "message": None}
        return
    if case_id == "sub_empty_string":  # see INTENDED_DIFFERENCES: no user, no session here
        assert request["status"] == "signed-in" and clerk["auth"]["userId"] == ""
        assert ours == {"signedIn": False, "reason": None, "message": None}
        return
    if case_id in ("header_is_null", "payload_is_null"):  # see INTENDED_DIFFERENCES: Clerk throws a TypeError
        assert request == {"status": "signed-out", "reason": "unexpected-error", "message": "", "messageHeader": None}
        expected = NULL_SEGMENT_REFUSALS[case_id]
        assert ours == {"signedIn": False, "reason": expected[0], "message": expected[1]}
        return
    if request["status"] == "signed-out":
        message, clerk_message = same_clock(ours.pop("message"), request["messageHeader"], clock, clerk["clock"])
        if case_id in HEADER_DIFFERENCES:
            assert clerk_message is not None and auth_message_header(clerk_message) != clerk_message
            clerk_message = auth_message_header(clerk_message)
        assert (ours, message) == ({"signedIn": False, "reason": request["reason"]}, clerk_message)
        return
    assert request["status"] == "signed-in", request
    if "authError" in clerk:
        # Clerk signs the request in but then cannot build its auth object; we refuse the claims.
        assert ours == {"signedIn": False, "reason": "token-invalid", "message": UNDECODABLE_CLAIMS}
        return
    assert ours.pop("message") is None
    if not case.treat_pending_as_signed_out:
        # The request path uses Clerk's default (pending sessions are signed out), with no reason: Clerk's
        # request state is signed in and its toAuth() signs the pending session out without one.
        assert ours == {"signedIn": False, "reason": None}
    else:
        assert ours["signedIn"] == clerk["auth"]["isAuthenticated"]


#: Where our ``x-clerk-auth-message`` differs from Clerk's on purpose (the messages themselves agree): a raw control
#: character (Clerk sends DEL and C1 controls as they are; we send no header), and a message longer than
#: ``MAX_AUTH_MESSAGE`` (cut in the middle, see ``errors.auth_message_header``).
HEADER_DIFFERENCES = {"message_typ_delete_character", "message_typ_c1_control", "message_typ_long"}
#: Messages quoting a value longer than ``QUOTE_LIMIT``: ours has the first ``QUOTE_LIMIT`` characters of it, then
#: ``...`` (only the first 1,024 characters of a message are ever sent: the header above agrees).
QUOTE_DIFFERENCES = {"message_typ_long"}


def _uncut(ours: str, clerks: str) -> str:
    """Clerk's message, when ``ours`` is it with a quoted value cut after ``QUOTE_LIMIT`` characters (``...``)."""
    start = next(i for i, (a, b) in enumerate(zip(ours, clerks, strict=False)) if a != b)
    rest = ours[start + len("...") :]
    assert ours[start : start + 3] == "..." and clerks.endswith(rest) and start >= QUOTE_LIMIT, (ours, clerks)
    return clerks
_ENSURE = "Make sure that this is a valid Clerk-generated JWT."
#: Our refusals where Clerk throws a TypeError (an unexpected-error without a message): Clerk's own words for
#: what it finds in a segment that is no object, which is how we read a ``null`` one.
NULL_SEGMENT_REFUSALS = {
    "header_is_null": (
        "token-invalid-algorithm",
        f"Invalid JWT algorithm undefined. Supported: RS256,RS384,RS512. {_ENSURE} "
        "(reason=token-invalid-algorithm, token-carrier=header)",
    ),
    "payload_is_null": (
        "token-verification-failed",
        f"Subject claim (sub) is required and must be a string. Received undefined. {_ENSURE} "
        "(reason=token-verification-failed, token-carrier=header)",
    ),
}
#: Ours (Clerk throws building the auth object of these claims): the claims, not the token, are refused.
UNDECODABLE_CLAIMS = "Session claims have unexpected types. (reason=token-invalid, token-carrier=header)"


MACHINE_CASE_IDS: list[str] = [c.id for c in cases_module.build_machine_cases(ClerkTestIssuer())]


@pytest.fixture(scope="module")
def machine_conformance(conformance_node: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Machine JWTs under ``audience``: Clerk's authenticateRequest (acceptsToken 'any') and our app."""
    issuer = ClerkTestIssuer()
    cases = cases_module.build_machine_cases(issuer)
    clerk = run_node(conformance_node, "clerk_backend.mjs", [c.to_node(issuer.public_pem) for c in cases])
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for case in cases:
        app = Flask("conformance")
        app.config.update(
            TESTING=True,
            CLERK_JWT_KEY=issuer.public_pem,
            CLERK_SECRET_KEY="sk_test_conformance000000000000000000000000",  # never used: JWT forms only
            CLERK_AUDIENCE=case.audience or [],
        )
        ClerkSecurity(app, public_routes=["/api/conformance"], accepts_token="any")

        @app.get("/api/conformance")
        def conformance() -> dict[str, Any]:
            auth = get_auth()
            ours = {"signedIn": auth.is_authenticated, "reason": auth.reason, "tokenType": auth.token_type}
            return {**ours, "subject": auth.subject} if auth.is_authenticated else ours

        answer = app.test_client().get("/api/conformance", headers={"Authorization": f"Bearer {case.token}"})
        out[case.id] = (clerk[case.id], {**answer.get_json(), "message": answer.headers.get("x-clerk-auth-message")})
    return out


@pytest.mark.parametrize("case_id", MACHINE_CASE_IDS)
def test_machine_token_audience_matches_clerk(
    machine_conformance: dict[str, tuple[dict[str, Any], dict[str, Any]]], case_id: str
) -> None:
    """The request outcome, and a refusal's ``x-clerk-auth-message`` (Clerk's machine-token wording)."""
    clerk, ours = machine_conformance[case_id]
    assert "harnessError" not in clerk, clerk.get("harnessError")
    request = clerk["request"]
    expected = {
        "signedIn": request["status"] == "signed-in",
        "reason": request["reason"],
        "tokenType": request["tokenType"],
        "message": request["messageHeader"],
    }
    if "subject" in request:
        expected["subject"] = request["subject"]
    assert ours == expected


def _diff_auth(clerk: dict[str, Any], ours: dict[str, Any]) -> str:
    lines = [
        f"  {k}: Clerk={clerk.get(k)!r} ours={ours.get(k)!r}" for k in clerk if clerk.get(k) != ours.get(k)
    ]
    return "auth fields differ:\n" + "\n".join(lines)


#: Tokens verified with the Backend API (opaque machine tokens; session tokens against its JWKS, no CLERK_JWT_KEY),
#: the test kit's stand-in being the Backend API of both sides: (case id, token, stand-in, secret key, audience).
OPAQUE_CASES = [
    ("session_token_valid", "session_token", "stand_in", "good", None),
    ("session_token_unknown_kid", "session_token_unknown_kid", "stand_in", "good", None),
    ("session_token_kid_list", "session_token_kid_list", "stand_in", "good", None),
    ("session_token_secret_key_refused", "session_token", "stand_in", "wrong", None),
    ("api_key_valid", "api_key", "stand_in", "good", None),
    ("api_key_unknown", "ak_unknown", "stand_in", "good", None),
    ("m2m_token_unknown", "mt_unknown", "stand_in", "good", None),
    ("oauth_token_unknown", "oat_unknown", "stand_in", "good", None),
    ("oauth_token_aud_missing", "oauth_token", "stand_in", "good", ["https://api.example.com"]),
    ("oauth_token_aud_other", "oauth_token_other_aud", "stand_in", "good", ["https://api.example.com"]),
    ("api_key_secret_key_refused", "api_key", "stand_in", "wrong", None),
    ("api_key_backend_api_403", "ak_any", "refusing", "good", None),
]


@pytest.fixture(scope="module")
def opaque_conformance(conformance_node: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Clerk's authenticateRequest (acceptsToken 'any') and our app on tokens the Backend API decides: Clerk's
    ``handleClerkAPIError`` and JWKS messages against ours, the Backend API being the same stand-in for both."""
    from flask_clerk_security.testing import BackendAPIStandIn

    issuer = ClerkTestIssuer()
    secret_keys = {"good": issuer.secret_key, "wrong": "sk_test_" + "w" * 40}
    with BackendAPIStandIn(issuer) as stand_in, BackendAPIStandIn(issuer) as refusing:
        refusing.fail_status = 403
        urls = {"stand_in": stand_in.url, "refusing": refusing.url}
        minted = {
            "session_token": issuer.session_token(),
            "session_token_unknown_kid": issuer.sign(issuer.session_claims(), headers={"kid": "ins_'other\"é"}),
            "session_token_kid_list": cases_module._sign_raw(
                issuer, {"kid": [1, [None, "b"]]}, issuer.session_claims()
            ),
            "api_key": stand_in.mint_api_key(),
            "oauth_token": stand_in.mint_oauth_token(),
            "oauth_token_other_aud": stand_in.mint_oauth_token(aud="https://other.example.com"),
        }
        cases = [
            {"id": case_id, "token": minted.get(token, token), "url": urls[api], "secretKey": secret_keys[key],
             "audience": audience}
            for case_id, token, api, key, audience in OPAQUE_CASES
        ]  # fmt: skip
        clerk = run_node(conformance_node, "clerk_backend.mjs", [
            {"id": c["id"], "token": c["token"], "jwtKey": None, "clockSkewInMs": 5000, "has": [],
             "audience": c["audience"], "machine": True, "apiUrl": c["url"], "secretKey": c["secretKey"]}
            for c in cases
        ])  # fmt: skip
        return {c["id"]: (clerk[c["id"]], _opaque_outcome(issuer, c)) for c in cases}


def _opaque_outcome(issuer: ClerkTestIssuer, case: dict[str, Any]) -> dict[str, Any]:
    app = Flask("conformance")
    app.config.update(
        TESTING=True,
        CLERK_SECRET_KEY=case["secretKey"],
        CLERK_API_URL=case["url"],
        CLERK_AUDIENCE=case["audience"] or [],
    )
    ClerkSecurity(app, public_routes=["/api/conformance"], accepts_token="any")

    @app.get("/api/conformance")
    def conformance() -> dict[str, Any]:
        auth = get_auth()
        return {"signedIn": auth.is_authenticated, "reason": auth.reason, "tokenType": auth.token_type}

    answer = app.test_client().get("/api/conformance", headers={"Authorization": f"Bearer {case['token']}"})
    return {**answer.get_json(), "message": answer.headers.get("x-clerk-auth-message")}


@pytest.mark.parametrize("case_id", [case[0] for case in OPAQUE_CASES])
def test_backend_api_refusals_match_clerk(
    opaque_conformance: dict[str, tuple[dict[str, Any], dict[str, Any]]], case_id: str
) -> None:
    """Outcome, reason and ``x-clerk-auth-message`` (``... (code=token-invalid, status=404)``, ``... kid='...'
    ...``) as Clerk's."""
    clerk, ours = opaque_conformance[case_id]
    assert "harnessError" not in clerk, clerk.get("harnessError")
    request = clerk["request"]
    assert ours == {
        "signedIn": request["status"] == "signed-in",
        "reason": request["reason"],
        "tokenType": request["tokenType"],
        "message": request["messageHeader"],
    }
