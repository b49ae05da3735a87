"""Conformance cases: tokens + has() queries run through Clerk's @clerk/backend and through our code.

`build_cases(issuer)` returns a list of `Case`. Queries are written the way Clerk's `has()` takes them
(`afterMinutes` in camelCase); tests/test_conformance.py converts them for our Python API.

Times are relative to "now" at build time. Every time-sensitive case keeps a margin of at least 15 s from
its boundary so that the few seconds between building, running node and running Python never flip a result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

Query = dict[str, Any]

AZP = "http://localhost:5000"
ISS = "https://clerk.conformance.example.com"
_DROP = object()  # a claim value meaning "leave this claim out"


@dataclass
class Case:
    id: str
    token: str
    has: list[Query] = field(default_factory=list)
    authorized_parties: list[str] | None = None
    clock_skew_ms: int = 5000
    treat_pending_as_signed_out: bool = True
    jwt_key: str | None = None  # defaults to the issuer's public PEM
    audience: list[str] | None = None  # Clerk's `audience` option (CLERK_AUDIENCE)
    issuer: list[str] | None = None  # Clerk's `issuer` option (CLERK_ISSUER)
    machine: bool = False  # a machine token, sent to authenticateRequest with acceptsToken: 'any'

    def to_node(self, default_pem: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "token": self.token,
            "jwtKey": self.jwt_key or default_pem,
            "authorizedParties": self.authorized_parties,
            "clockSkewInMs": self.clock_skew_ms,
            "has": self.has,
            "treatPendingAsSignedOut": self.treat_pending_as_signed_out,
            "audience": self.audience,
            "issuer": self.issuer,
            "machine": self.machine,
        }


# --------------------------------------------------------------------------------------------- query sets
ORG_QUERIES: list[Query] = [
    {"role": "admin"},
    {"role": "org:admin"},
    {"role": "org:org:admin"},
    {"role": "member"},
    {"role": "org:member"},
    {"permission": "org:memberships:read"},
    {"permission": "memberships:read"},
    {"permission": "org:memberships:manage"},
    {"permission": "org:impersonation:read"},
    {"permission": "org:impersonation:manage"},
    {"permission": "org:sys_memberships:read"},
    {"role": "org:admin", "permission": "org:memberships:read"},
    {"role": "org:member", "permission": "org:memberships:read"},
    {"role": "admin", "permission": "org:impersonation:manage"},
    {},
]

BILLING_QUERIES: list[Query] = [
    {"feature": "beta"},
    {"feature": "u:beta"},
    {"feature": "user:beta"},
    {"feature": "o:beta"},
    {"feature": "reports"},
    {"feature": "o:reports"},
    {"feature": "org:reports"},
    {"feature": "organization:reports"},
    {"feature": "u:reports"},
    {"feature": "shared"},
    {"feature": "u:shared"},
    {"feature": "o:shared"},
    {"feature": "u:both"},
    {"feature": "o:both"},
    {"feature": "x:beta"},
    {"feature": "o:reports:extra"},
    {"feature": "o:"},
    {"feature": ""},
    {"feature": "thing"},
    {"feature": "x:thing"},
    {"plan": "pro"},
    {"plan": "u:pro"},
    {"plan": "o:pro"},
    {"plan": "team"},
    {"plan": "o:team"},
    {"plan": "org:team"},
    {"plan": "user:team"},
    {"feature": "beta", "plan": "pro"},
    {"feature": "beta", "plan": "team"},
    {"feature": "beta", "plan": "nope"},
    {"feature": "nope", "plan": "pro"},
]

REVERIFICATION_QUERIES: list[Query] = [
    {"reverification": "strict_mfa"},
    {"reverification": "strict"},
    {"reverification": "moderate"},
    {"reverification": "lax"},
    {"reverification": {"level": "first_factor", "afterMinutes": 10}},
    {"reverification": {"level": "first_factor", "afterMinutes": 60}},
    {"reverification": {"level": "second_factor", "afterMinutes": 10}},
    {"reverification": {"level": "second_factor", "afterMinutes": 1}},
    {"reverification": {"level": "multi_factor", "afterMinutes": 10}},
    {"reverification": {"level": "multi_factor", "afterMinutes": 1440}},
]

# Configurations Clerk treats as invalid (has() -> false). Kept in their own cases.
INVALID_REVERIFICATION_QUERIES: list[Query] = [
    {"reverification": "bogus"},
    {"reverification": {"level": "first_factor", "afterMinutes": 0}},
    {"reverification": {"level": "first_factor", "afterMinutes": -5}},
    {"reverification": {"level": "third_factor", "afterMinutes": 10}},
]

COMBINED_QUERIES: list[Query] = [
    {"role": "admin", "feature": "o:reports"},
    {"role": "admin", "feature": "u:reports"},
    {"permission": "org:memberships:read", "plan": "pro"},
    {"permission": "org:memberships:read", "plan": "o:pro"},
    {"role": "admin", "reverification": "strict"},
    {"role": "admin", "reverification": "strict_mfa"},
    {"feature": "beta", "reverification": "lax"},
    {
        "role": "admin",
        "permission": "org:memberships:manage",
        "feature": "o:reports",
        "plan": "pro",
        "reverification": "moderate",
    },
    {
        "role": "admin",
        "permission": "org:memberships:manage",
        "feature": "o:reports",
        "plan": "pro",
        "reverification": "strict_mfa",
    },
]

ALL_QUERIES = ORG_QUERIES + BILLING_QUERIES + REVERIFICATION_QUERIES + COMBINED_QUERIES

ORG_V2 = {"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3,1"}
# fea for ORG_V2: org-scoped features in order: memberships, impersonation (mixed with user/other scopes)
FEA = "u:beta,o:memberships,o:reports,ou:shared,uo:both,o:impersonation,x:thing"
PLA = "u:pro,o:team"


# --------------------------------------------------------------------------------------------- helpers
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(obj: Any) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64json(header)}.{_b64json(claims)}"


def _sign_raw(issuer: Any, header: dict[str, Any] | str, payload: dict[str, Any] | str) -> str:
    """An RS256 token over exact JSON texts (values PyJWT would not write: null headers, 400-digit numbers)."""
    if isinstance(header, dict):
        header = json.dumps({"alg": "RS256", "typ": "JWT", "kid": issuer.kid, **header}, separators=(",", ":"))
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"))
    signing_input = f"{_b64(header.encode())}.{_b64(payload.encode())}"
    signature = issuer.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _with_raw_claim(claims: dict[str, Any], name: str, raw: str) -> str:
    """``claims`` as JSON text with ``name`` set to the literal JSON ``raw`` (e.g. ``1e400``)."""
    return json.dumps({**claims, name: "\x00raw"}, separators=(",", ":")).replace('"\\u0000raw"', raw)


def _spelled_differently(token: str) -> list[tuple[str, str]]:
    """(case id, token) for each way of writing one of ``token``'s segments that base64 decoders differ on."""
    h, p, s = token.split(".")
    dash, under = s.index("-"), s.index("_")
    last = _B64URL.index(s[-1])
    return [
        ("b64_plus_for_dash_in_signature", f"{h}.{p}.{s[:dash]}+{s[dash + 1:]}"),
        ("b64_slash_for_underscore_in_signature", f"{h}.{p}.{s[:under]}/{s[under + 1:]}"),
        ("b64_bang_in_signature", f"{h}.{p}.{s[:100]}!{s[100:]}"),
        ("b64_percent_in_signature", f"{h}.{p}.{s[:100]}%{s[100:]}"),
        ("b64_space_in_signature", f"{h}.{p}.{s[:100]} {s[100:]}"),
        ("b64_tab_in_signature", f"{h}.{p}.{s[:100]}\t{s[100:]}"),
        ("b64_non_ascii_in_signature", f"{h}.{p}.{s[:100]}\u00e9{s[100:]}"),
        ("b64_padding_inside_signature", f"{h}.{p}.{s[:100]}={s[100:]}"),
        ("b64_padding_inside_signature_at_quad", f"{h}.{p}.{s[:100]}=={s[100:]}"),
        ("b64_junk_in_header", f"{h[:5]}*{h[5:]}.{p}.{s}"),
        ("b64_space_in_payload", f"{h}.{p[:10]} {p[10:]}.{s}"),
        ("b64_noncanonical_signature_tail", f"{h}.{p}.{s[:-1]}{_B64URL[last | 1]}"),
        ("b64_noncanonical_payload_tail", f"{h}.{p[:-1]}{_B64URL[_B64URL.index(p[-1]) | 1]}.{s}"),
        ("b64_signature_one_char_more", f"{h}.{p}.{s}A"),
        ("b64_signature_lone_sixth_byte", f"{h}.{p}.{s}AAA"),
        ("b64_signature_padded", f"{h}.{p}.{s}=="),
        ("b64_every_segment_over_padded", f"{h}===.{p}=.{s}====="),
    ]


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class _Claims:
    def __init__(self, now: int) -> None:
        self.now = now

    def v2(self, **over: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "iss": ISS,
            "sub": "user_123",
            "sid": "sess_123",
            "iat": self.now - 1,
            "nbf": self.now - 11,
            "exp": self.now + 60,
            "azp": AZP,
            "fva": [0, -1],
            "sts": "active",
            "v": 2,
            "jti": "c0nf0rmance",
        }
        return _merge(base, over)

    def v1(self, **over: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "iss": ISS,
            "sub": "user_123",
            "sid": "sess_123",
            "iat": self.now - 1,
            "nbf": self.now - 11,
            "exp": self.now + 60,
            "azp": AZP,
            "fva": [0, -1],
        }
        return _merge(base, over)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if v is _DROP:
            out.pop(k, None)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------- cases
def build_cases(issuer: Any) -> list[Case]:
    now = int(time.time())
    c = _Claims(now)
    sign = issuer.sign
    cases: list[Case] = []

    def add(id_: str, token: str, has: list[Query] | None = None, **kw: Any) -> None:
        cases.append(Case(id=id_, token=token, has=list(has or []), **kw))

    # ---- tokens made by our own test issuer (also checks that it encodes the Clerk way)
    org = {
        "id": "org_1",
        "slug": "acme",
        "role": "admin",
        "permissions": {"memberships": ["read", "manage"], "impersonation": ["read"]},
    }
    add("issuer_v2_default", issuer.session_token(), ALL_QUERIES)
    add("issuer_v2_org", issuer.session_token(org=org), ALL_QUERIES)
    add(
        "issuer_v2_org_member_no_perms",
        issuer.session_token(org={"id": "org_2", "slug": "beta", "role": "member", "permissions": {}}),
        ORG_QUERIES,
    )
    add("issuer_v1_default", issuer.session_token(version=1), ORG_QUERIES + REVERIFICATION_QUERIES)
    add("issuer_v2_pending", issuer.session_token(org=org, status="pending"), ORG_QUERIES)
    add("issuer_v2_fva_5_5", issuer.session_token(org=org, fva=(5, 5)), REVERIFICATION_QUERIES)

    # ---- v2 claim decoding (raw claims, exact encodings)
    add("v2_no_org", sign(c.v2(fea=FEA, pla=PLA)), ALL_QUERIES)
    add("v2_org_mixed_fea", sign(c.v2(o=ORG_V2, fea=FEA, pla=PLA)), ALL_QUERIES)
    add(
        "v2_protocol_fpm_example",
        sign(
            c.v2(
                o={"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "1,3"},
                fea="o:impersonation,o:memberships",
            )
        ),
        ORG_QUERIES,
    )
    perms70 = ",".join(f"p{i}" for i in range(70))
    add(
        "v2_fpm_large_mask_70_bits",
        sign(
            c.v2(
                o={"id": "org_1", "rol": "admin", "per": perms70, "fpm": str(2**69 + 2**53 + 1)}, fea="o:big"
            )
        ),
        [
            {"permission": "org:big:p0"},
            {"permission": "org:big:p53"},
            {"permission": "org:big:p69"},
            {"permission": "org:big:p1"},
        ],
    )
    add(
        "v2_fpm_mask_wider_than_per",
        sign(
            c.v2(o={"id": "org_1", "rol": "admin", "per": "read,manage", "fpm": "255"}, fea="o:memberships")
        ),
        ORG_QUERIES,
    )
    add(
        "v2_fpm_fewer_masks_than_features",
        sign(
            c.v2(
                o={"id": "org_1", "rol": "admin", "per": "read,manage", "fpm": "1"},
                fea="o:memberships,o:impersonation,o:reports",
            )
        ),
        ORG_QUERIES,
    )
    add(
        "v2_fpm_more_masks_than_features",
        sign(
            c.v2(
                o={"id": "org_1", "rol": "admin", "per": "read,manage", "fpm": "1,2,3,3"}, fea="o:memberships"
            )
        ),
        ORG_QUERIES,
    )
    add(
        "v2_fpm_non_digit_masks",
        sign(
            c.v2(
                o={"id": "org_1", "rol": "admin", "per": "read,manage", "fpm": "x3,-1,0x3,1.5,3"},
                fea="o:a,o:b,o:c,o:d,o:memberships",
            )
        ),
        [
            *ORG_QUERIES,
            {"permission": "org:a:read"},
            {"permission": "org:b:read"},
            {"permission": "org:c:read"},
            {"permission": "org:d:read"},
        ],
    )
    add(
        "v2_fpm_spaces_and_leading_zeros",
        sign(
            c.v2(
                o={"id": "org_1", "rol": "admin", "per": " read , manage ", "fpm": " 003 , 0"},
                fea="o:memberships,o:impersonation",
            )
        ),
        ORG_QUERIES,
    )
    add(
        "v2_fpm_empty_string",
        sign(c.v2(o={"id": "org_1", "rol": "admin", "per": "read,manage", "fpm": ""}, fea="o:memberships")),
        ORG_QUERIES,
    )
    add("v2_org_without_per_fpm", sign(c.v2(o={"id": "org_1", "slg": "acme", "rol": "admin"})), ORG_QUERIES)
    add(
        "v2_org_without_rol",
        sign(c.v2(o={"id": "org_1", "slg": "acme", "per": "read", "fpm": "1"}, fea="o:memberships")),
        ORG_QUERIES,
    )
    add(
        "v2_org_without_id",
        sign(c.v2(o={"slg": "acme", "rol": "admin", "per": "read", "fpm": "1"}, fea="o:memberships")),
        ORG_QUERIES,
    )
    add("v2_org_rol_already_prefixed", sign(c.v2(o={"id": "org_1", "rol": "org:admin"})), ORG_QUERIES)
    add(
        "v2_org_fea_scope_spellings",
        sign(
            c.v2(
                o={"id": "org_1", "rol": "admin", "per": "read", "fpm": "1,1,1,1,1"},
                fea="org:a,organization:b,o:c,ou:d,uo:e,user:f,u:g",
            )
        ),
        [{"permission": f"org:{x}:read"} for x in "abcdefg"] + [{"feature": x} for x in "abcdefg"],
    )
    add("v2_org_fea_missing_colon", sign(c.v2(o=ORG_V2, fea="memberships")), ORG_QUERIES)
    add(
        "v2_no_org_fea_missing_colon",
        sign(c.v2(fea="beta,u:pro")),
        [{"feature": "beta"}, {"feature": "pro"}, {"role": "admin"}, {"reverification": "lax"}],
    )
    add("v2_fea_pla_whitespace", sign(c.v2(fea=" u:beta , o:reports ", pla=" u:pro ")), BILLING_QUERIES)
    add("v2_fea_pla_empty", sign(c.v2(o=ORG_V2, fea="", pla="")), BILLING_QUERIES + ORG_QUERIES)
    add("v2_version_as_string", sign(c.v2(v="2", o=ORG_V2, fea=FEA)), ORG_QUERIES)
    add(
        "v_unknown_3_reads_v1_claims",
        sign(
            c.v2(
                v=3,
                o=ORG_V2,
                fea=FEA,
                org_id="org_v1",
                org_role="org:member",
                org_slug="legacy",
                org_permissions=["org:memberships:read"],
            )
        ),
        ORG_QUERIES,
    )

    # ---- v1
    v1_org = {
        "org_id": "org_1",
        "org_role": "org:admin",
        "org_slug": "acme",
        "org_permissions": ["org:memberships:read", "org:memberships:manage"],
    }
    add("v1_org", sign(c.v1(**v1_org)), ORG_QUERIES + REVERIFICATION_QUERIES + BILLING_QUERIES[:3])
    add("v1_no_org", sign(c.v1()), ORG_QUERIES)
    add(
        "v1_role_without_prefix",
        sign(c.v1(org_id="org_1", org_role="admin", org_permissions=[])),
        ORG_QUERIES,
    )
    add("v1_ignores_v2_o_claim", sign(c.v1(o=ORG_V2, fea=FEA)), ORG_QUERIES)

    # ---- session status / actor
    add("sts_pending", sign(c.v2(o=ORG_V2, fea=FEA, sts="pending")), ORG_QUERIES + REVERIFICATION_QUERIES[:2])
    add(
        "sts_pending_not_signed_out",
        sign(c.v2(o=ORG_V2, fea=FEA, sts="pending")),
        ORG_QUERIES,
        treat_pending_as_signed_out=False,
    )
    add("sts_missing", sign(c.v2(sts=_DROP, o=ORG_V2, fea=FEA)), ORG_QUERIES[:3])
    add("sts_other_value", sign(c.v2(sts="expired", o=ORG_V2, fea=FEA)), ORG_QUERIES[:3])
    add(
        "actor",
        sign(c.v2(act={"sub": "user_admin", "iss": ISS, "sid": "sess_admin"})),
        [{"reverification": "lax"}],
    )
    add(
        "actor_with_type",
        sign(
            c.v2(
                act={"sub": "user_admin", "iss": ISS, "sid": "sess_admin", "type": "impersonation"},
                o=ORG_V2,
                fea=FEA,
            )
        ),
        ORG_QUERIES[:3],
    )
    add("sid_missing", sign(c.v2(sid=_DROP)), [{"reverification": "lax"}])

    # ---- factor verification age x reverification
    fva_values: list[tuple[str, Any]] = [
        ("0_-1", [0, -1]),
        ("5_-1", [5, -1]),
        ("15_-1", [15, -1]),
        ("-1_5", [-1, 5]),
        ("-1_15", [-1, 15]),
        ("5_5", [5, 5]),
        ("5_15", [5, 15]),
        ("15_5", [15, 5]),
        ("10_10", [10, 10]),
        ("9_9", [9, 9]),
        ("59_59", [59, 59]),
        ("61_30", [61, 30]),
        ("1439_1439", [1439, 1439]),
        ("1440_-1", [1440, -1]),
        ("1441_0", [1441, 0]),
        ("-1_-1", [-1, -1]),
        ("1.5_2", [1.5, 2]),
    ]
    for name, fva in fva_values:
        add(f"fva_{name}", sign(c.v2(fva=fva)), REVERIFICATION_QUERIES)
    fva_bad: list[tuple[str, Any]] = [
        ("missing", _DROP),
        ("null", None),
        ("string", "5,5"),
        ("one_element", [5]),
        ("three_elements", [5, 5, 5]),
        ("non_number", [5, "x"]),
        ("minus_two", [-2, 3]),
        ("null_element", [None, 3]),
        ("bool", [True, 3]),
    ]
    for name, fva in fva_bad:
        add(f"fva_{name}", sign(c.v2(fva=fva)), REVERIFICATION_QUERIES)
    add("reverification_invalid_configs", sign(c.v2(fva=[0, 0])), INVALID_REVERIFICATION_QUERIES)

    # ---- combined dimensions on a fully loaded token
    add("combined_fresh", sign(c.v2(o=ORG_V2, fea=FEA, pla=PLA, fva=[5, 30])), COMBINED_QUERIES)
    add("combined_no_org", sign(c.v2(fea=FEA, pla=PLA, fva=[5, 5])), COMBINED_QUERIES)

    # ---- sub
    add("sub_missing", sign(c.v2(sub=_DROP)))
    add("sub_number", sign(c.v2(sub=123)))
    add("sub_null", sign(c.v2(sub=None)))
    add(
        "sub_empty_string",
        sign(c.v2(sub="", o=ORG_V2, fea=FEA)),
        [*ORG_QUERIES[:3], {"reverification": "lax"}],
    )

    # ---- time claims
    add("expired_beyond_default_skew", sign(c.v2(exp=now - 60, iat=now - 120, nbf=now - 130)))
    add(
        "expired_within_custom_skew",
        sign(c.v2(exp=now - 20, iat=now - 80, nbf=now - 90)),
        [{"reverification": "lax"}],
        clock_skew_ms=60_000,
    )
    add(
        "expired_beyond_custom_skew",
        sign(c.v2(exp=now - 120, iat=now - 180, nbf=now - 190)),
        clock_skew_ms=60_000,
    )
    add("expired_zero_skew", sign(c.v2(exp=now - 20, iat=now - 80, nbf=now - 90)), clock_skew_ms=0)
    add("nbf_in_future", sign(c.v2(nbf=now + 60)))
    add("nbf_in_future_within_skew", sign(c.v2(nbf=now + 20)), clock_skew_ms=60_000)
    add("iat_in_future", sign(c.v2(iat=now + 60)))
    add("iat_in_future_within_skew", sign(c.v2(iat=now + 20)), clock_skew_ms=60_000)
    add("exp_missing", sign(c.v2(exp=_DROP)))
    add("exp_string", sign(c.v2(exp=str(now + 60))))
    add("nbf_string", sign(c.v2(nbf=str(now - 10))))
    add("iat_string", sign(c.v2(iat=str(now - 1))))
    add("iat_nbf_missing", sign(c.v2(iat=_DROP, nbf=_DROP)), [{"reverification": "lax"}])
    add("exp_float", sign(c.v2(exp=now + 60.5)), [{"reverification": "lax"}])
    add("expired_and_nbf_future", sign(c.v2(exp=now - 60, nbf=now + 60)))
    # Beyond JavaScript's Date range: the date is NaN and NaN never compares true (so never expires/binds).
    add("exp_beyond_js_dates", sign(c.v2(exp=10**13)), [{"reverification": "lax"}])
    add("exp_before_js_dates", sign(c.v2(exp=-(10**13))))
    add("nbf_iat_beyond_js_dates", sign(c.v2(nbf=10**13, iat=10**13)), [{"reverification": "lax"}])

    # ---- algorithms / header
    add("alg_rs384", sign(c.v2(o=ORG_V2, fea=FEA), algorithm="RS384"), ORG_QUERIES[:3])
    add("alg_rs512", sign(c.v2(o=ORG_V2, fea=FEA), algorithm="RS512"), ORG_QUERIES[:3])
    add("alg_ps256", sign(c.v2(), algorithm="PS256"))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    add("alg_es256", sign(c.v2(), algorithm="ES256", key=ec_key))
    hs_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": "ins_test"}, c.v2())
    hs_sig = hmac.new(issuer.public_pem.encode(), hs_input.encode(), hashlib.sha256).digest()
    add("alg_hs256_public_key_as_secret", f"{hs_input}.{_b64(hs_sig)}")
    add("alg_none", _unsigned({"alg": "none", "typ": "JWT", "kid": "ins_test"}, c.v2()) + ".")
    add("alg_none_capitalised", _unsigned({"alg": "None", "typ": "JWT"}, c.v2()) + ".")
    add("alg_missing", _unsigned({"typ": "JWT", "kid": "ins_test"}, c.v2()) + "." + _b64(b"x" * 256))
    add("typ_jwt", sign(c.v2(), headers={"typ": "JWT"}), [{"reverification": "lax"}])
    add("typ_missing", sign(c.v2(), headers={"typ": None}), [{"reverification": "lax"}])
    add("typ_at_jwt", sign(c.v2(), headers={"typ": "at+jwt"}))
    add("typ_lowercase_jwt", sign(c.v2(), headers={"typ": "jwt"}))
    add("kid_other", sign(c.v2(), headers={"kid": "ins_other"}), [{"reverification": "lax"}])

    # ---- signature
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    add("signature_other_key", sign(c.v2(), key=other_key))
    good = sign(c.v2())
    h, _p, s = good.split(".")
    add("signature_payload_tampered", f"{h}.{_b64json(c.v2(sub='user_evil'))}.{s}")
    add("signature_empty", f"{h}.{_p}.")
    add("signature_truncated", f"{h}.{_p}.{s[:-10]}")
    add("signature_other_key_and_expired", sign(c.v2(exp=now - 60), key=other_key))

    # Clerk's PEM loader (loadClerkJwkFromPem) strips a fixed RSA-2048 SPKI prefix: other key sizes are
    # not expected to work. Included to pin down what Clerk does with them.
    key4096 = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pem4096 = (
        key4096.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    add("jwt_key_rsa4096", sign(c.v2(), key=key4096), [{"reverification": "lax"}], jwt_key=pem4096)

    # ---- malformed
    add("malformed_two_parts", f"{h}.{_p}")
    add("malformed_four_parts", f"{good}.x")
    add("malformed_header_not_json", f"{_b64(b'not json')}.{_p}.{s}")
    add("malformed_empty_string", "")

    # ---- authorized parties
    add(
        "azp_listed",
        sign(c.v2()),
        [{"reverification": "lax"}],
        authorized_parties=[AZP, "https://app.example.com"],
    )
    add("azp_not_listed", sign(c.v2(azp="https://evil.example.com")), authorized_parties=[AZP])
    add("azp_missing_with_list", sign(c.v2(azp=_DROP)), authorized_parties=[AZP])
    add("azp_missing_without_list", sign(c.v2(azp=_DROP)), [{"reverification": "lax"}])
    add("azp_missing_empty_list", sign(c.v2(azp=_DROP)), [{"reverification": "lax"}], authorized_parties=[])
    add(
        "azp_unlisted_empty_list",
        sign(c.v2(azp="https://evil.example.com")),
        [{"reverification": "lax"}],
        authorized_parties=[],
    )
    add(
        "azp_not_listed_and_expired",
        sign(c.v2(azp="https://evil.example.com", exp=now - 60)),
        authorized_parties=[AZP],
    )
    add("azp_trailing_slash", sign(c.v2(azp=AZP + "/")), authorized_parties=[AZP])

    # ---- cat header (JWT category)
    add("cat_session", sign(c.v2(), headers={"cat": "cl_B7d4PD111AAA"}), [{"reverification": "lax"}])
    add("cat_template", sign(c.v2(o=ORG_V2, fea=FEA), headers={"cat": "cl_B7d4PD222AAA"}), ORG_QUERIES[:3])
    add("cat_m2m", sign(c.v2(), headers={"cat": "cl_B7d4PD333AAA"}))
    add("cat_m2m_and_expired", sign(c.v2(exp=now - 60), headers={"cat": "cl_B7d4PD333AAA"}))
    add("cat_m2m_and_bad_signature", sign(c.v2(), headers={"cat": "cl_B7d4PD333AAA"}, key=other_key))
    add("cat_ignore", sign(c.v2(), headers={"cat": "cl_I7d4PD111III"}), [{"reverification": "lax"}])
    add("cat_unknown", sign(c.v2(), headers={"cat": "cl_unknown"}), [{"reverification": "lax"}])

    # ---- base64url spellings: one token, one string (Clerk's base64url.parse, loose: trailing "=" ignored)
    spellable = next(
        t
        for t in (sign(c.v2(jti=f"b64-{i}")) for i in range(1000))
        if len(t.split(".")[1]) % 4 in (2, 3) and "-" in t.split(".")[2] and "_" in t.split(".")[2]
    )
    add("b64_reference_token", spellable, [{"reverification": "lax"}])
    for case_id, token in _spelled_differently(spellable):
        add(case_id, token, [{"reverification": "lax"}])

    # ---- header values of every JSON type (signed with the real key)
    odd_values: list[tuple[str, str]] = [
        ("list", "[]"),
        ("object", '{"a":1}'),
        ("number", "1"),
        ("null", "null"),
        ("true", "true"),
        ("huge_number", "1e400"),
    ]
    base_header = json.dumps({"alg": "RS256", "typ": "JWT", "kid": issuer.kid}, separators=(",", ":"))
    for name in ("typ", "cat", "alg", "kid"):
        for kind, raw in [*odd_values, ("list_of_valid", '["RS256","JWT","cl_B7d4PD111AAA"]')]:
            header = _with_raw_claim(json.loads(base_header), name, raw)
            add(f"header_{name}_{kind}", _sign_raw(issuer, header, c.v2()), [{"reverification": "lax"}])
    for kind, raw in [("array", "[]"), ("number", "5"), ("null", "null"), ("string", '"JWT"')]:
        add(f"header_is_{kind}", _sign_raw(issuer, raw, c.v2()))
        add(f"payload_is_{kind}", _sign_raw(issuer, {}, raw))

    # ---- time claims as any JSON value (signed)
    huge = "9" * 400
    for name in ("exp", "nbf", "iat"):
        for kind, raw in [
            ("400_digits", huge),
            ("minus_400_digits", f"-{huge}"),
            ("5000_digits", "9" * 5000),
            ("1e400", "1e400"),
            ("minus_1e400", "-1e400"),
            ("float_string_1e400", '"1e400"'),
            ("object", "{}"),
            ("list", "[1]"),
            ("null", "null"),
            ("true", "true"),
        ]:
            token = _sign_raw(issuer, {}, _with_raw_claim(c.v2(), name, raw))
            add(f"{name}_{kind}", token, [{"reverification": "lax"}])

    # ---- optional claims of unexpected types (signed)
    odd_claims: list[tuple[str, dict[str, Any]]] = [
        ("fea_number", c.v2(fea=5)),
        ("fea_number_with_org", c.v2(o=ORG_V2, fea=5)),
        ("fea_list", c.v2(fea=["u:beta"])),
        ("pla_list", c.v2(pla=["u:pro"])),
        ("pla_number", c.v2(pla=5)),
        ("o_list", c.v2(o=["org_1"])),
        ("o_string", c.v2(o="org_1")),
        ("o_number", c.v2(o=5)),
        ("o_true", c.v2(o=True)),
        ("o_id_number", c.v2(o={**ORG_V2, "id": 5}, fea=FEA)),
        ("o_rol_list", c.v2(o={**ORG_V2, "rol": ["admin"]}, fea=FEA)),
        ("o_per_number", c.v2(o={**ORG_V2, "per": 5}, fea=FEA)),
        ("o_fpm_number", c.v2(o={**ORG_V2, "fpm": 3}, fea=FEA)),
        ("o_slg_number", c.v2(o={**ORG_V2, "slg": 5}, fea=FEA)),
        ("sid_number", c.v2(sid=5)),
        ("sts_number", c.v2(sts=5)),
        ("sts_list", c.v2(sts=["pending"])),
        ("act_string", c.v2(act="user_admin")),
        ("act_list", c.v2(act=["user_admin"])),
        ("act_number", c.v2(act=5)),
        ("v1_org_id_number", c.v1(org_id=5, org_role="org:admin")),
        ("v1_org_role_list", c.v1(org_id="org_1", org_role=["org:admin"])),
        ("v1_org_slug_number", c.v1(org_id="org_1", org_role="org:admin", org_slug=5)),
        ("v1_org_permissions_string", c.v1(org_id="org_1", org_role="org:admin", org_permissions="org:a:read")),
        ("v1_org_permissions_numbers", c.v1(org_id="org_1", org_role="org:admin", org_permissions=[1, 2])),
    ]
    odd_queries = [*ORG_QUERIES[:3], {"permission": "org:memberships:read"}, *BILLING_QUERIES[:3],
                   {"plan": "pro"}, {"reverification": "lax"}]
    for case_id, claims in odd_claims:
        add(f"claim_{case_id}", sign(claims), odd_queries)

    # ---- audience and issuer (Clerk's assertAudienceClaim / assertIssuerClaim, in verifyJwt's order)
    api = "https://api.example.com"
    lax = [{"reverification": "lax"}]
    for case_id, aud in [
        ("string_listed", api),
        ("string_other", "https://other.example.com"),
        ("list_one_listed", ["https://other.example.com", api]),
        ("list_none_listed", ["https://other.example.com"]),
        ("missing", _DROP),
        ("empty_string", ""),
        ("empty_list", []),
        ("list_of_empty", [""]),
        ("number", 5),
        ("list_mixed_types", [api, 5]),
        ("object", {"a": api}),
        ("nested_list", [[api]]),
    ]:
        # Raw JSON: the issuer's JWT library refuses an aud that is not a string or a list of strings.
        token = _sign_raw(issuer, {}, c.v2() if aud is _DROP else _with_raw_claim(c.v2(), "aud", json.dumps(aud)))
        add(f"aud_{case_id}", token, lax, audience=[api])
    add("aud_other_without_option", sign(c.v2(aud="https://other.example.com")), lax)
    add("aud_two_options", sign(c.v2(aud="https://b.example.com")), lax, audience=[api, "https://b.example.com"])
    add("aud_other_and_azp_other", sign(c.v2(aud="x", azp="https://evil.example.com")), audience=[api],
        authorized_parties=[AZP])
    add("iss_listed", sign(c.v2()), lax, issuer=[ISS])
    add("iss_second_listed", sign(c.v2()), lax, issuer=["https://other.example.com", ISS])
    add("iss_other", sign(c.v2(iss="https://clerk.evil.example.com")), issuer=[ISS])
    add("iss_missing", sign(c.v2(iss=_DROP)), issuer=[ISS])
    add("iss_number", _sign_raw(issuer, {}, _with_raw_claim(c.v2(), "iss", "5")), issuer=[ISS])
    add("iss_list", _sign_raw(issuer, {}, _with_raw_claim(c.v2(), "iss", json.dumps([ISS]))), issuer=[ISS])
    add("iss_trailing_slash", sign(c.v2(iss=ISS + "/")), issuer=[ISS])
    add("iss_missing_without_option", sign(c.v2(iss=_DROP)), lax)
    add("iss_other_and_expired", sign(c.v2(iss="https://x.example.com", exp=now - 60)), issuer=[ISS])
    add("iss_other_and_azp_other", sign(c.v2(iss="x", azp="https://evil.example.com")), issuer=[ISS],
        authorized_parties=[AZP])

    # ---- values Clerk's messages quote: JSON.stringify's escapes, numbers and key order, toUTCString's years, and
    # values its Headers refuse (beyond Latin-1: no x-clerk-auth-message) or we do (see tests/test_conformance.py)
    for case_id, name, raw in [
        ("typ_quotes_and_backslash", "typ", json.dumps('a"b\\c')),
        ("typ_latin1", "typ", '"caf\\u00e9 \\u00ff"'),
        ("typ_beyond_latin1", "typ", '"\\u0100"'),
        ("typ_emoji", "typ", '"\\ud83d\\ude00"'),
        ("typ_lone_surrogate", "typ", '"\\ud800x"'),
        ("typ_escaped_controls", "typ", '"\\u0000\\n\\t\\u001f\\u2028"'),
        ("typ_delete_character", "typ", '"a\\u007fb"'),
        ("typ_c1_control", "typ", '"a\\u0085b"'),
        ("typ_long", "typ", json.dumps("x" * 3000)),
        ("alg_nested_values", "alg", '[[1,[2]],{"b":1,"10":2,"2":3,"01":4},null,true]'),
        ("alg_float", "alg", "1.5e300"),
        ("alg_tiny", "alg", "1e-7"),
        ("alg_30_digits", "alg", "123456789012345678901234567890"),
        ("alg_minus_zero", "alg", "-0"),
        ("alg_400_digits", "alg", huge),
    ]:
        header = _with_raw_claim(json.loads(base_header), name, raw)
        add(f"message_{case_id}", _sign_raw(issuer, header, c.v2()))
    for case_id, name, raw in [
        ("sub_object", "sub", '{"b":1,"10":2,"2":3}'),
        ("sub_float", "sub", "0.30000000000000004"),
        ("exp_earliest_date", "exp", "-8640000000000"),
        ("exp_year_0", "exp", "-62167219200"),
        ("exp_before_year_0", "exp", "-62167219201"),
        ("exp_fraction", "exp", "1.9"),
        ("nbf_latest_date", "nbf", "8640000000000"),
        ("iat_year_100000", "iat", "3093527980800"),
    ]:
        add(f"message_{case_id}", _sign_raw(issuer, {}, _with_raw_claim(c.v2(), name, raw)))
    add("message_azp_nested", _sign_raw(issuer, {}, _with_raw_claim(c.v2(), "azp", '[["a"],{"x":1}]')),
        authorized_parties=[AZP, "https://b.example.com"])
    add("message_iss_non_ascii", sign(c.v2(iss="https://clerk.\u00e9xample.com")), issuer=[ISS, "https://b.example"])
    add("message_aud_list_non_ascii", sign(c.v2(aud=["\u00fc", "x"])), audience=["https://api.example.com"])

    ids = [x.id for x in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


def build_machine_cases(issuer: Any) -> list[Case]:
    """Machine JWTs (OAuth and M2M) under Clerk's ``audience`` option, through authenticateRequest."""
    api = "https://api.example.com"
    cases: list[Case] = []

    def add(id_: str, token: str, audience: list[str] | None = None) -> None:
        cases.append(Case(id=id_, token=token, audience=audience, machine=True))

    for case_id, extra in [
        ("string_listed", {"aud": api}),
        ("string_other", {"aud": "https://other.example.com"}),
        ("list_one_listed", {"aud": ["https://other.example.com", api]}),
        ("missing", {}),
        ("empty_string", {"aud": ""}),
        ("empty_list", {"aud": []}),
        ("list_with_empty", {"aud": [api, ""]}),
        ("number", {"aud": 5}),
    ]:
        add(f"oauth_aud_{case_id}", issuer.oauth_jwt(scopes=["read"], **extra), [api])
    add("oauth_aud_other_without_option", issuer.oauth_jwt(aud="https://other.example.com"))
    add("oauth_aud_missing_without_option", issuer.oauth_jwt())
    for case_id, claims in [
        ("string_listed", {"aud": api}),
        ("string_other", {"aud": "https://other.example.com"}),
        ("missing", {}),
        ("number", {"aud": 5}),
    ]:
        add(f"m2m_aud_{case_id}", issuer.m2m_jwt(**claims), [api])
    return cases
