"""The PyPI-compatible trusted-publishing endpoints, at the paths the publish action calls."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.api.services import services
from app.api.wire import JSON_TYPE, json_body
from app.errors import InvalidPayload, PayloadTooLarge
from app.exchange import TokenExchange
from app.oidc.jws import MAX_TOKEN_BYTES, STRICT_JSON

blueprint = Blueprint("oidc", __name__, url_prefix="/_/oidc")

# A mint body is {"token": "<jwt>"}: the token's cap plus room for the JSON around it.
MAX_MINT_BODY_BYTES = MAX_TOKEN_BYTES + 1024


@blueprint.get("/audience")
def audience() -> Response | tuple[Response, int]:
    if not services().enabled:
        # The action reads 403 as "trusted publishing disabled"; 404 would read as
        # "not supported", and any non-JSON 200 crashes it.
        return jsonify({"message": "Trusted publishing is disabled on this index"}), 403
    return jsonify({"audience": services().audience})


# Older releases of the publish action call the github/ path. Flask's url_for names the
# rule registered first, which is the decorator nearest the function.
@blueprint.post("/github/mint-token")
@blueprint.post("/mint-token")
def mint_token() -> Response:
    answer = mint_answer(services().exchange, token_from_body())
    response = Response(answer, mimetype=JSON_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def mint_answer(exchange: TokenExchange, token: str) -> bytes:
    """The body of a successful mint (the hot path answers with it too)."""
    minted = exchange.exchange(token)
    return json_body({"success": True, "token": minted.token, "expires": minted.expires_at})


def token_from_body() -> str:
    if (request.content_length or 0) > MAX_MINT_BODY_BYTES:
        raise PayloadTooLarge("request body is too large")
    return token_from_json(request.get_data(cache=False))


def token_from_json(raw: bytes) -> str:
    # The body is JSON whatever the Content-Type: GitLab's documented recipe posts it
    # with curl -d, which labels it form-encoded.
    if len(raw) > MAX_MINT_BODY_BYTES:
        raise PayloadTooLarge("request body is too large")
    try:
        # {"token": A, "token": B}: a proxy or logger may read A where we read B. Refused.
        body = STRICT_JSON.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidPayload("request body is not JSON with unique keys") from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise InvalidPayload('request body has no string "token"')
    return token
