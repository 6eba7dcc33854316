"""Standard OAuth endpoints for index servers: introspection (RFC 7662), revocation
(RFC 7009) and authorization server metadata (RFC 8414)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Blueprint, Response, jsonify, request, url_for

from app.api.auth import optional_client, require_client
from app.api.services import services
from app.errors import InvalidRequest, Unauthenticated

blueprint = Blueprint("oauth", __name__)

# RFC 7662: anything that is not an active token is exactly {"active": false}.
INACTIVE = '{"active":false}'


@blueprint.post("/oauth/introspect")
def introspect() -> Response:
    require_client("introspect")
    answer = services().introspector.introspect(_form_token()) or INACTIVE
    response = Response(answer + "\n", mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/oauth/revoke")
def revoke() -> Response:
    token = _form_token()
    client = optional_client()
    if request.headers.get("Authorization") and client is None:
        raise Unauthenticated("client authentication failed")
    # A token's holder may burn it (a CI job after upload); presenting the token is
    # the proof. A client with the revoke scope may revoke any token it presents too,
    # so both cases are the same operation. Unknown tokens get 200 (RFC 7009 §2.2).
    services().revoker.revoke_token(token)
    response = Response(status=200)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    settings = services().settings
    return jsonify(
        {
            "issuer": settings.token_issuer,
            "introspection_endpoint": url_for("oauth.introspect", _external=True),
            "revocation_endpoint": url_for("oauth.revoke", _external=True),
            "jwks_uri": url_for("meta.jwks", _external=True),
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "bearer",
            ],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "scopes_supported": ["upload"],
            "trusted_publishing_audience_endpoint": url_for("oidc.audience", _external=True),
            "trusted_publishing_mint_endpoint": url_for("oidc.mint_token", _external=True),
        }
    )


def _form_token() -> str:
    token = _urlencoded_field("token") if _is_urlencoded() else request.form.get("token")
    if not token:
        raise InvalidRequest("the form parameter 'token' is required")
    return token


def _is_urlencoded() -> bool:
    return request.mimetype == "application/x-www-form-urlencoded"


def _urlencoded_field(name: str) -> str | None:
    # What every index sends (RFC 7662 §2.1), parsed directly: werkzeug's general form
    # machinery was a fifth of an introspection's CPU. The body is bounded by
    # MAX_CONTENT_LENGTH (get_data answers 413 beyond it); the first value wins, as
    # with request.form.
    body = request.get_data(cache=False).decode("utf-8", "replace")
    try:
        fields = parse_qsl(body, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:
        raise InvalidRequest("too many form parameters") from None
    return next((value for key, value in fields if key == name), None)


# A token, a type hint and some slack; more is not an OAuth request.
_MAX_FIELDS = 16
