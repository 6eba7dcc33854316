"""Health, readiness and the public key set of upload tokens."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.api.services import services

blueprint = Blueprint("meta", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    for check in services().health_checks:
        check.ping()  # StoreUnavailable renders as 503 with Retry-After
    # Policies are loaded before the app exists (a bad one stops start-up), so a
    # running app always has them; the count helps an operator spot an empty directory.
    return jsonify({"status": "ready", "publishers": services().publisher_count})


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(services().key_ring.jwks())
    # Short enough that a retired key disappears from caches soon after rotation.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
