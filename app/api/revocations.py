"""Operator revocation: one token, a project, or a publisher, before a moment."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.api.auth import require_client
from app.api.services import services
from app.api.wire import json_or_none
from app.errors import InvalidRequest
from app.settings import PUBLIC_GITHUB_ISSUER

blueprint = Blueprint("revocations", __name__, url_prefix="/api/v1")

# Each scope, and the other fields it takes. A field it does not take is refused, not
# ignored: a `workflow` dropped in silence would revoke a whole project, a `before`
# another moment than the one asked for.
_SCOPES: dict[str, frozenset[str]] = {
    "token": frozenset(),
    "jti": frozenset(),
    "project": frozenset({"before"}),
    "repository": frozenset({"issuer", "workflow", "before"}),
}


@blueprint.post("/revocations")
def create_revocation() -> Response:
    client = require_client("revoke")
    body = json_or_none(request.get_data(cache=False))
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    chosen = [scope for scope in _SCOPES if scope in body]
    if len(chosen) != 1:
        raise InvalidRequest(f"name exactly one of {', '.join(_SCOPES)}")
    scope = chosen[0]
    if unknown := sorted(set(body) - {scope} - _SCOPES[scope]):
        raise InvalidRequest(f"a {scope} revocation takes no {', '.join(map(repr, unknown))}")
    value = _string(body, scope)
    before = _before(body)
    revoker = services().revoker
    actor = client.name
    if scope == "token":
        revocation = revoker.revoke_token(value, actor=actor)
        if revocation is None:
            raise InvalidRequest("not an active upload token minted by this service")
    elif scope == "jti":
        revocation = revoker.revoke_jti(value, actor=actor)
    elif scope == "project":
        revocation = revoker.revoke_project(value, before, actor=actor)
    else:
        issuer = _string(body, "issuer") if "issuer" in body else PUBLIC_GITHUB_ISSUER
        workflow = _string(body, "workflow") if "workflow" in body else None
        revocation = revoker.revoke_publisher(issuer, value, workflow, before, actor=actor)
    return jsonify({"revoked": {"scope": scope, **revocation.as_dict()}})


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > 16 * 1024:
        raise InvalidRequest(f"{key!r} must be a non-empty string")
    return value


def _before(body: dict[str, Any]) -> int | None:
    before = body.get("before")
    if before is None:
        return None
    if isinstance(before, bool) or not isinstance(before, int) or before < 0:
        raise InvalidRequest("'before' must be unix seconds")
    return before
