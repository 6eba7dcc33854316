"""Maintainers' self-service: the trusted publishers of a project, and the audit trail.

Views parse, make one call to `PublisherRegistrations` (app.registrations), render.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from app.api.auth import authenticated_client
from app.api.services import services
from app.api.wire import json_or_none
from app.audit import MAX_READ, AuditQuery
from app.errors import InvalidRequest
from app.registrations import MAX_DECLARATION_BYTES

blueprint = Blueprint("projects", __name__, url_prefix="/api/v1")

# A stream record's id: MILLISECONDS-SEQUENCE, each at most 2**64 - 1.
_RECORD_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


@blueprint.get("/projects/<project>/publishers")
def list_publishers(project: str) -> Response:
    client = authenticated_client()
    listed = services().registrations.list_publishers(client, project)
    return _no_store(jsonify({"publishers": listed}))


@blueprint.post("/projects/<project>/publishers")
def add_publisher(project: str) -> Response:
    client = authenticated_client()
    body = json_or_none(request.get_data(cache=False))
    added = services().registrations.add(client, project, body)
    response = _no_store(jsonify(added))
    response.status_code = 201
    return response


@blueprint.delete("/projects/<project>/publishers/<publisher_id>")
def remove_publisher(project: str, publisher_id: str) -> Response:
    client = authenticated_client()
    return _no_store(jsonify(services().registrations.remove(client, project, publisher_id)))


@blueprint.get("/projects")
def projects_status() -> Response:
    client = authenticated_client()
    return _no_store(jsonify(services().registrations.projects_status(client)))


@blueprint.put("/projects")
def confirm_projects() -> Response:
    client = authenticated_client()
    body = json_or_none(request.get_data(cache=False))
    return _no_store(jsonify(services().registrations.confirm_projects(client, body)))


@blueprint.post("/projects")
def declare_projects() -> Response:
    client = authenticated_client()
    request.max_content_length = MAX_DECLARATION_BYTES
    body = json_or_none(request.get_data(cache=False))
    return _no_store(jsonify(services().registrations.declare_projects(client, body)))


@blueprint.put("/projects/<project>")
def declare_project(project: str) -> Response:
    client = authenticated_client()
    return _no_store(jsonify(services().registrations.declare_project(client, project)))


@blueprint.get("/audit")
def read_audit() -> Response:
    client = authenticated_client()
    query = AuditQuery(
        project=_text("project"),
        repository=_text("repository"),
        since=_seconds("since"),
        until=_seconds("until"),
        limit=_seconds("limit") or 100,
        before=_record_id("before"),
        refusals=_flag("refusals"),
    )
    return _no_store(jsonify(services().registrations.read_audit(client, query)))


def _record_id(name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not _RECORD_ID.fullmatch(value) or max(map(int, value.split("-"))) >= 2**64:
        raise InvalidRequest(f"{name!r} must be a record id, as an earlier answer's next_before")
    return value


def _flag(name: str) -> bool:
    value = request.args.get(name)
    if value not in (None, "true", "false"):
        raise InvalidRequest(f"{name!r} must be true or false")
    return value == "true"


def _text(name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value or len(value) > 512:
        raise InvalidRequest(f"{name!r} must be a non-empty string")
    return value


def _seconds(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise InvalidRequest(f"{name!r} must be a whole non-negative number")
    number = int(value)
    if name == "limit" and not 1 <= number <= MAX_READ:
        raise InvalidRequest(f"'limit' must be between 1 and {MAX_READ}")
    return number


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
