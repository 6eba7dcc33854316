"""`POST /_/oidc/explain`: what the exchange would decide for a token, without exchanging it.

Same body and error envelope as `mint-token` (it lives under `/_/oidc/`), so a CI job
can run it with the command it already uses, right before or after a failed mint.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.api.oidc import token_from_body
from app.api.services import services

blueprint = Blueprint("explain", __name__, url_prefix="/_/oidc")


@blueprint.post("/explain")
def explain() -> Response:
    explanation = services().explainer.explain(token_from_body())
    response = jsonify(explanation.as_dict())
    response.headers["Cache-Control"] = "no-store"
    return response
