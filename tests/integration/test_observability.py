"""Metrics and request ids, as an operator sees them."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.oidc_issuer import OIDCIssuer

from app.observability import FIELDS_KEY, REQUEST_ID, JsonFormatter, TextFormatter
from app.registrations import PublisherRegistrations

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_failure, assert_minted, mint
from .registrations_api import ManagementClients


def counter(client: FlaskClient, name: str, **labels: str) -> float:
    body = client.get("/metrics").get_data(as_text=True)
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in body.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_mints_are_counted_by_provider_and_outcome(
    client: FlaskClient, make_token: MakeToken
) -> None:
    def mints(provider: str, outcome: str) -> float:
        return counter(client, "trustpub_mints_total", provider=provider, outcome=outcome)

    cases = [("github", "success"), ("github", "invalid-publisher"), ("unknown", "invalid-payload")]
    before = {case: mints(*case) for case in cases}

    token = make_token()
    mint(client, token)
    mint(client, make_token(repository_owner_id="66"))
    mint(client, make_token(iss="https://elsewhere.example"))

    assert {case: mints(*case) - before[case] for case in cases} == dict.fromkeys(cases, 1.0)
    exposition = client.get("/metrics").get_data(as_text=True)
    # Labels never carry a token or user input.
    assert token not in exposition
    assert "octo-org" not in exposition
    assert "trustpub_request_duration_seconds_bucket" in exposition


@pytest.mark.parametrize(
    "settings",
    [{"enabled": False}, {"disabled_providers": frozenset({"github"})}],
    ids=["service-disabled", "provider-disabled"],
)
def test_a_mint_refused_because_trusted_publishing_is_off_is_counted(
    make_app: MakeApp, make_token: MakeToken, settings: dict[str, object]
) -> None:
    # Switched off during an incident: the refusals are what the dashboard must show.
    client = make_app(**settings).test_client()
    before = counter(client, "trustpub_mints_total", provider="unknown", outcome="not-enabled")

    assert_failure(mint(client, make_token()), 422, "not-enabled")

    after = counter(client, "trustpub_mints_total", provider="unknown", outcome="not-enabled")
    assert after - before == 1.0


def test_a_write_no_replica_acknowledged_is_counted_as_a_store_error(
    make_app: MakeApp, make_token: MakeToken
) -> None:
    # The test's Redis has no replica: every replay claim fails closed, as after a failover
    # to a lagging replica, and the alert on store errors must see it.
    client = make_app(redis_min_replicas=1).test_client()
    before = counter(client, "trustpub_store_errors_total", operation="claim")

    assert_failure(mint(client, make_token()), 503, "store-unavailable")

    assert counter(client, "trustpub_store_errors_total", operation="claim") - before == 1.0


def test_key_set_refreshes_are_counted_by_provider_and_result(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    results = ("success", "error")

    def refreshes(client: FlaskClient) -> dict[str, float]:
        return {
            result: counter(
                client, "trustpub_key_set_refreshes_total", provider="github", result=result
            )
            for result in results
        }

    client = make_app().test_client()  # a cold key cache: the first mint fetches
    before = refreshes(client)
    assert_minted(mint(client, make_token()))
    oidc_issuer.fail_with(500)
    failing = make_app().test_client()
    assert_failure(mint(failing, make_token()), 503, "issuer-keys-unavailable")

    after = refreshes(client)
    assert {result: after[result] - before[result] for result in results} == {
        "success": 1.0,
        "error": 1.0,
    }


def test_request_id_is_echoed_or_made(client: FlaskClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "proxy-abc-12345"})
    hostile = client.get("/healthz", headers={"X-Request-ID": "bad id; <script>"})
    none = client.get("/healthz")

    assert given.headers["X-Request-ID"] == "proxy-abc-12345"
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", none.headers["X-Request-ID"])
    assert none.headers["X-Request-ID"] != hostile.headers["X-Request-ID"]


def test_request_latency_is_labelled_by_endpoint_method_and_status(
    make_app: MakeApp, make_token: MakeToken
) -> None:
    client = make_app(mint_rate_limit="1/minute").test_client()
    cases = [
        # (method, path, json body) -> (endpoint, method, status) labels
        (("GET", "/healthz", None), ("meta.healthz", "GET", "200")),
        (("GET", "/no/such/path/1234", None), ("unmatched", "GET", "404")),
        (("PUT", "/healthz", None), ("unmatched", "PUT", "405")),
        (
            ("POST", "/_/oidc/mint-token", {"token": make_token()}),
            ("oidc.mint_token", "POST", "200"),
        ),
        # Over the limit: refused before the view runs, and still named by its endpoint.
        (
            ("POST", "/_/oidc/mint-token", {"token": make_token()}),
            ("oidc.mint_token", "POST", "429"),
        ),
    ]

    for (method, path, body), (endpoint, method_label, status) in cases:
        labels = {"endpoint": endpoint, "method": method_label, "status": status}
        before = counter(client, "trustpub_request_duration_seconds_count", **labels)
        response = client.open(path, method=method, json=body)

        assert str(response.status_code) == status, response.get_data(as_text=True)
        after = counter(client, "trustpub_request_duration_seconds_count", **labels)
        assert after - before == 1.0, (method, path)
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_json_log_lines_carry_the_request_id() -> None:
    token = REQUEST_ID.set("req-0123456789")
    try:
        record = logging.LogRecord(
            "app.exchange", logging.INFO, __file__, 1, "minted %s", ("x",), None
        )
        record.request_id = REQUEST_ID.get()
        line = JsonFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)

    entry = json.loads(line)
    assert entry["message"] == "minted x"
    assert entry["request_id"] == "req-0123456789"
    assert entry["level"] == "info"
    assert entry["logger"] == "app.exchange"


@pytest.mark.parametrize(
    "fields",
    [None, {"action": "mint", "jti": "abc", "repository": "octo-org/démo"}],
    ids=["plain", "with-fields"],
)
def test_structured_fields_are_encoded_once_in_either_format(
    fields: dict[str, str] | None,
) -> None:
    extra = {} if fields is None else {FIELDS_KEY: fields}
    record = logging.getLogger("app.audit").makeRecord(
        "app.audit", logging.INFO, __file__, 1, "audit %s", ("mint",), None, extra=extra
    )
    record.request_id = "req-0123456789"

    entry = json.loads(JsonFormatter().format(record))
    text = TextFormatter().format(record)

    assert entry["message"] == "audit mint"
    # An object, not JSON text inside the message: a log pipeline can index its keys.
    assert entry.get(FIELDS_KEY) == fields
    head, _, tail = text.partition("[req-0123456789]: audit mint")
    assert head.endswith(" INFO app.audit ")
    assert json.loads(tail or "null") == fields


def test_an_unexpected_error_logs_a_hostile_path_on_one_text_line(
    make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A path is the client's: a decoded %0a must not start a line of its own in the text
    # format, where it could pass for a line trustpub wrote.
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(PublisherRegistrations, "remove", broken)
    clients = ManagementClients(tmp_path / "clients.toml")
    client = make_app(clients_file=clients.path).test_client()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(lambda record: setattr(record, "request_id", "-") or True)
    logger = logging.getLogger("app.api.errors")
    logger.addHandler(handler)
    try:
        response = client.delete(
            "/api/v1/projects/demo-pkg/publishers/rp_x%0a2026-01-01 INFO app.audit [-]: forged",
            headers=clients.bearer("admin"),
        )
    finally:
        logger.removeHandler(handler)

    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal-error"
    assert "forged" in stream.getvalue().splitlines()[0]
    assert not any(line.startswith("2026-01-01") for line in stream.getvalue().splitlines())
