"""docs/openapi.yaml says what the service does: same routes, and schemathesis agrees."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from integration.oauth_api import Clients
from schemathesis.checks import positive_data_acceptance

from .conftest import OPENAPI_PATH

_FLASK_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_IGNORED_METHODS = {"HEAD", "OPTIONS"}


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def served_operations(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, _FLASK_PARAMETER.sub(r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - _IGNORED_METHODS
    }


def test_every_route_is_documented_and_every_documented_route_exists(
    openapi_document: dict[str, Any], api_app: Flask
) -> None:
    assert documented_operations(openapi_document) == served_operations(api_app)


def test_the_document_is_valid_openapi() -> None:
    # Loading validates the document against the OpenAPI 3.0 schema.
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    assert len(list(schema.get_all_operations())) >= 10


OPERATIONS = sorted(
    result.ok().label
    for result in schemathesis.openapi.from_path(OPENAPI_PATH).get_all_operations()
)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_operation_misbehaves(label: str, api_app: Flask, clients: Clients) -> None:
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    schema.app = api_app
    (operation,) = (
        result.ok() for result in schema.get_all_operations() if result.ok().label == label
    )

    @given(case=operation.as_strategy())
    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        # Authenticated as an admin client, so generated requests reach the handlers
        # (unauthenticated paths have their own tests). The checks: no 500, every
        # status code, content type and body as documented.
        # A token that fits the schema (a string) is rarely a valid token: rejecting it
        # is right, so "schema-valid data must be accepted" does not apply here.
        case.call_and_validate(
            headers=clients.basic("admin"), excluded_checks=[positive_data_acceptance]
        )

    check()
