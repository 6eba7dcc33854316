"""Standard OAuth endpoints for index servers: introspection (RFC 7662), revocation
(RFC 7009) and authorization server metadata (RFC 8414)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Blueprint, Response, jsonify, request, url_for

from app.api.auth import optional_client, require_client
from app.api.services import services
from app.api.wire import JSON_TYPE
from app.errors import InvalidRequest, Unauthenticated
from app.tokens.revocation import TokenIntrospector

blueprint = Blueprint("oauth", __name__)

# RFC 7662: anything that is not an active token is exactly {"active": false}.
INACTIVE = '{"active":false}'
URLENCODED = "application/x-www-form-urlencoded"


@blueprint.post("/oauth/introspect")
def introspect() -> Response:
    require_client("introspect")
    answer = introspection_answer(services().introspector, _form_token())
    response = Response(answer, mimetype=JSON_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def introspection_answer(introspector: TokenIntrospector, token: str) -> bytes:
    """The body of an introspection (the hot path answers with it too)."""
    return ((introspector.introspect(token) or INACTIVE) + "\n").encode()


@blueprint.post("/oauth/revoke")
def revoke() -> Response:
    token = _form_token()
    client = optional_client()
    if request.headers.get("Authorization") and client is None:
        raise Unauthenticated("client authentication failed")
    # A token's holder may burn it (a CI job after upload); presenting the token is
    # the proof. A client with the revoke scope may revoke any token it presents too,
    # so both cases are the same operation. Unknown tokens get 200 (RFC 7009 §2.2).
    services().revoker.revoke_token(token, actor=client.name if client else "token-holder")
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
    if request.mimetype == URLENCODED:
        # The body is bounded by MAX_CONTENT_LENGTH: get_data answers 413 beyond it.
        return token_from_urlencoded(request.get_data(cache=False))
    return _required_token(request.form.get("token"))


def token_from_urlencoded(body: bytes) -> str:
    # What every index sends (RFC 7662 §2.1), parsed directly: werkzeug's general form
    # machinery was a fifth of an introspection's CPU. The first value wins, as with
    # request.form.
    try:
        fields = parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=_MAX_FIELDS
        )
    except ValueError:
        raise InvalidRequest("too many form parameters") from None
    return _required_token(next((value for key, value in fields if key == "token"), None))


def _required_token(token: str | None) -> str:
    if not token:
        raise InvalidRequest("the form parameter 'token' is required")
    return token


# A token, a type hint and some slack; more is not an OAuth request.
_MAX_FIELDS = 16
