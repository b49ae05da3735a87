"""Follows ``@clerk/mcp-tools`` ``server.ts`` (``generateClerkProtectedResourceMetadata``) and its Express
``protectedResourceHandlerClerk``: the RFC 9728 protected resource metadata MCP clients fetch to find Clerk.

The 401 of a route that accepts OAuth tokens names this document in ``WWW-Authenticate`` (see
:func:`.protection.signed_out_error`); this blueprint serves it, public and readable cross-origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Request, Response, jsonify, request

from .errors import ConfigurationError
from .state import EXTENSION_KEY, get_state, mark_public

#: Where RFC 9728 protected resource metadata lives (``@clerk/mcp-tools`` serves it there too).
PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"

#: RFC 3986 ``pchar`` and ``/``: what a path may carry unescaped (never ``"``, ``\\``, controls or non-ASCII).
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

#: ``corsHeaders`` of ``@clerk/mcp-tools``: any origin may read the metadata (it is public by design).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}


def protected_resource_metadata_url(req: Request) -> str:
    """The metadata URL of the resource ``req`` asked for: the well-known path inserted before the resource's
    path (RFC 9728 section 3.1), as ``@clerk/mcp-tools``'s ``getPRMUrl`` builds it."""
    return f"{req.host_url.rstrip('/')}{PROTECTED_RESOURCE_PATH}{_encoded_path(req.script_root + req.path)}"


def _encoded_path(path: str) -> str:
    """``path`` percent-encoded as a URL carries it: the decoded path could put a ``"`` into the
    ``WWW-Authenticate`` challenge (a forged parameter) or a non-latin-1 character into a header."""
    return quote(path, safe=_PATH_SAFE)


def protected_resource_metadata(
    frontend_api_url: str, resource_url: str, properties: Mapping[str, Any]
) -> dict[str, Any]:
    """``generateClerkProtectedResourceMetadata``: Clerk's Frontend API as the authorization server."""
    metadata: dict[str, Any] = {
        "resource": resource_url,
        "authorization_servers": [frontend_api_url],
        "token_types_supported": ["urn:ietf:params:oauth:token-type:access_token"],
        "token_introspection_endpoint": f"{frontend_api_url}/oauth/token",
        "token_introspection_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{frontend_api_url}/.well-known/jwks.json",
        "authorization_data_types_supported": ["oauth_scope"],
        "authorization_data_locations_supported": ["header", "body"],
        "key_challenges_supported": [
            {"challenge_type": "urn:ietf:params:oauth:pkce:code_challenge", "challenge_algs": ["S256"]}
        ],
        "service_documentation": "https://clerk.com/docs",
    }
    metadata.update(properties)
    return {name: value for name, value in metadata.items() if value is not None}


def _resource_url() -> str:
    """The resource the metadata describes: the request's URL with the well-known segment taken out."""
    path = request.path[len(PROTECTED_RESOURCE_PATH) :] or "/"
    return f"{request.host_url.rstrip('/')}{_encoded_path(path)}"


def metadata_blueprint(
    *, scopes_supported: list[str] | None = None, name: str = "clerk_oauth_resource", **properties: Any
) -> Blueprint:
    """A public Blueprint serving ``GET``/``OPTIONS /.well-known/oauth-protected-resource[/<resource path>]``."""
    blueprint = Blueprint(name, __name__)
    extra = {"scopes_supported": scopes_supported, **properties}

    def metadata(resource_path: str = "") -> Response:
        if request.method == "OPTIONS":
            response = Response(status=204)
        else:
            frontend_api = get_state().settings.frontend_api
            if not frontend_api:  # checked at registration; an app's settings cannot change afterwards
                raise ConfigurationError("CLERK_PUBLISHABLE_KEY is needed to serve OAuth resource metadata")
            response = jsonify(protected_resource_metadata(f"https://{frontend_api}", _resource_url(), extra))
        response.headers.update(CORS_HEADERS)
        return response

    view = mark_public(metadata)
    blueprint.add_url_rule(PROTECTED_RESOURCE_PATH, "metadata", view, methods=["GET", "OPTIONS"])
    blueprint.add_url_rule(
        f"{PROTECTED_RESOURCE_PATH}/<path:resource_path>", "metadata", view, methods=["GET", "OPTIONS"]
    )

    def check_configured(setup: Any) -> None:
        state = setup.app.extensions.get(EXTENSION_KEY)
        if state is not None:  # registered before init_app: init_app checks it (check_registered_metadata)
            _check_frontend_api(state.settings.frontend_api)

    blueprint.record(check_configured)
    setattr(blueprint, _NEEDS_FRONTEND_API, True)
    return blueprint


#: Marks the metadata blueprint, so that ``init_app`` finds one an app factory registered before it.
_NEEDS_FRONTEND_API = "_clerk_needs_frontend_api"


def _check_frontend_api(frontend_api: str | None) -> None:
    if not frontend_api:
        raise ConfigurationError(
            "The OAuth protected resource metadata names Clerk's Frontend API, which comes from "
            "CLERK_PUBLISHABLE_KEY. Fix: set CLERK_PUBLISHABLE_KEY (pk_test_... / pk_live_...)."
        )


def check_registered_metadata(app: Flask, frontend_api: str | None) -> None:
    """For ``init_app``: a metadata blueprint registered before it needs the Frontend API as one registered after."""
    if any(getattr(blueprint, _NEEDS_FRONTEND_API, False) for blueprint in app.blueprints.values()):
        _check_frontend_api(frontend_api)
