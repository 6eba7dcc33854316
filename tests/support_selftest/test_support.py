"""The support code must really do what tests rely on: real Redis, real TLS, real JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
import redis
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.claims import REMOVE, github_claims, gitlab_claims
from support.oidc_issuer import OIDCIssuer
from support.ports import free_port
from support.redis_server import RedisServer

AUDIENCE = "trustpub"
TESTS_DIR = Path(__file__).resolve().parents[1]


def _fetch_key(issuer: OIDCIssuer, kid: str) -> jwt.PyJWK:
    jwks = requests.get(issuer.jwks_url, verify=issuer.ca_path, timeout=5).json()
    (entry,) = [k for k in jwks["keys"] if k["kid"] == kid]
    return jwt.PyJWK(entry)


def _decode(issuer: OIDCIssuer, token: str) -> dict[str, object]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = _fetch_key(issuer, kid)
    return jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer.url)


def _raw_header(token: str) -> dict[str, object]:
    segment = token.split(".", 1)[0]
    decoded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


# -- redis ---------------------------------------------------------------------


def test_redis_answers_ping(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        client.set(b"k", b"v")
        assert client.get(b"k") == b"v"
    finally:
        client.close()


def test_redis_kill_then_restart_is_empty_on_same_port(
    redis_server: RedisServer, redis_url: str
) -> None:
    port = redis_server.port
    client = redis_server.client()
    try:
        client.set(b"survives?", b"no")
        redis_server.kill()
        assert not redis_server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()

        redis_server.restart()
        assert redis_server.running
        assert redis_server.port == port
        assert client.ping() is True
        assert client.dbsize() == 0
    finally:
        client.close()


def test_redis_url_fixture_revives_a_killed_server(
    redis_server: RedisServer, redis_url: str
) -> None:
    # Leaves the server dead on purpose: the next test's redis_url must restart it.
    redis_server.kill()
    assert not redis_server.running


def test_redis_is_back_after_a_test_killed_it(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_server.running
    client = redis_server.client()
    try:
        assert client.ping() is True
    finally:
        client.close()


_WAITS_WITH_A_REDIS = """
import os
import time
from pathlib import Path

from support.redis_server import RedisServer


def test_waits(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    Path(os.environ["PID_FILE"]).write_text(str(server.pid))
    time.sleep(60)
"""


@pytest.mark.parametrize(
    ("plugin", "orphaned"),
    [
        pytest.param(("-p", "support.sigterm"), False, id="with-the-plugin"),
        pytest.param((), True, id="without-it"),
    ],
)
def test_sigterm_ends_a_run_without_leaving_its_redis_server(
    tmp_path: Path, plugin: tuple[str, ...], orphaned: bool
) -> None:
    # The suite's own conftest loads support.sigterm; a run of its own shows what the
    # plugin changes (and that the second case really leaves an orphan behind).
    (tmp_path / "test_waits.py").write_text(_WAITS_WITH_A_REDIS)
    pid_file = tmp_path / "redis.pid"
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), "PID_FILE": str(pid_file)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin]
    run = subprocess.Popen(
        [*command, "test_waits.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pid = None
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the inner run never started its redis-server"
            assert run.poll() is None, run.communicate()[0].decode(errors="replace")
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=30)
        assert _alive(pid) is orphaned
        if not orphaned:
            assert run.returncode == pytest.ExitCode.INTERRUPTED
            assert b"KeyboardInterrupt" in output
    finally:
        run.kill()
        run.wait()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- TLS -----------------------------------------------------------------------


def test_discovery_over_real_tls(oidc_issuer: OIDCIssuer) -> None:
    response = requests.get(oidc_issuer.discovery_url, verify=oidc_issuer.ca_path, timeout=5)
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == oidc_issuer.url
    assert document["jwks_uri"] == oidc_issuer.url + "/.well-known/jwks"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_tls_rejected_without_the_test_ca(
    oidc_issuer: OIDCIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without these, requests falls back to its public bundle, which cannot know our CA.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(oidc_issuer.discovery_url, timeout=5)


def test_fixture_makes_plain_requests_trust_the_ca(oidc_issuer: OIDCIssuer) -> None:
    # The application passes no verify=; REQUESTS_CA_BUNDLE must be enough.
    assert requests.get(oidc_issuer.jwks_url, timeout=5).status_code == 200


def test_enterprise_path_issuer(make_oidc_issuer: Callable[..., OIDCIssuer]) -> None:
    issuer = make_oidc_issuer("/my-enterprise")
    assert issuer.url.endswith("/my-enterprise")
    document = requests.get(issuer.discovery_url, timeout=5).json()
    assert document["issuer"] == issuer.url
    assert document["jwks_uri"] == issuer.url + "/.well-known/jwks"
    assert requests.get(issuer.url + "/.well-known/jwks", timeout=5).status_code == 200
    assert requests.get(issuer.url.rsplit("/", 1)[0] + "/.well-known/jwks", timeout=5).ok is False


# -- signing and keys ----------------------------------------------------------


def test_signed_token_verifies_against_served_jwks(oidc_issuer: OIDCIssuer) -> None:
    claims = github_claims(oidc_issuer.url, AUDIENCE)
    token = oidc_issuer.sign(claims)
    assert jwt.get_unverified_header(token)["kid"] == oidc_issuer.current_kid == "key-1"
    assert _decode(oidc_issuer, token) == claims


def test_token_from_unrelated_key_does_not_verify(oidc_issuer: OIDCIssuer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = oidc_issuer.sign(github_claims(oidc_issuer.url, AUDIENCE), key=stranger)
    with pytest.raises(jwt.InvalidSignatureError):
        _decode(oidc_issuer, token)


def test_two_issuers_never_share_key_material(
    oidc_issuer: OIDCIssuer, make_oidc_issuer: Callable[..., OIDCIssuer]
) -> None:
    other = make_oidc_issuer()
    assert other.current_kid == oidc_issuer.current_kid == "key-1"
    assert other.jwks() != oidc_issuer.jwks()


def test_key_rotation_and_reset(oidc_issuer: OIDCIssuer) -> None:
    first = oidc_issuer.current_kid
    second = oidc_issuer.add_key()
    assert second == "key-2"
    assert oidc_issuer.current_kid == second
    served = requests.get(oidc_issuer.jwks_url, timeout=5).json()["keys"]
    assert [k["kid"] for k in served] == [first, second]
    assert {k["kty"] for k in served} == {"RSA"}
    assert all(k["alg"] == "RS256" and k["use"] == "sig" for k in served)

    oidc_issuer.remove_key(first)
    assert oidc_issuer.kids == [second]
    assert oidc_issuer.add_key() == "key-3"
    assert oidc_issuer.private_key("key-3") is not oidc_issuer.private_key(second)

    oidc_issuer.reset_keys()
    assert oidc_issuer.kids == [first]


def test_header_controls(oidc_issuer: OIDCIssuer) -> None:
    claims = github_claims(oidc_issuer.url, AUDIENCE)
    no_kid = oidc_issuer.sign(claims, omit_kid=True)
    assert "kid" not in jwt.get_unverified_header(no_kid)
    extra = oidc_issuer.sign(claims, headers={"jku": "https://evil.example/jwks", "crit": ["x"]})
    # Decoded by hand: PyJWT's get_unverified_header() rejects an unknown crit itself.
    header = _raw_header(extra)
    assert header["jku"] == "https://evil.example/jwks"
    assert header["crit"] == ["x"]
    unsigned = oidc_issuer.sign(claims, alg="none")
    assert unsigned.endswith(".")


def test_hs256_confusion_token_uses_public_pem_as_secret(oidc_issuer: OIDCIssuer) -> None:
    pem = (
        oidc_issuer.private_key(oidc_issuer.current_kid)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = oidc_issuer.sign(github_claims(oidc_issuer.url, AUDIENCE), alg="HS256", key=pem)
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


# -- faults and accounting -----------------------------------------------------


def test_fail_with_then_healthy(oidc_issuer: OIDCIssuer) -> None:
    oidc_issuer.fail_with(500)
    assert requests.get(oidc_issuer.jwks_url, timeout=5).status_code == 500
    assert requests.get(oidc_issuer.discovery_url, timeout=5).status_code == 500
    oidc_issuer.healthy()
    assert requests.get(oidc_issuer.jwks_url, timeout=5).status_code == 200


def test_serve_garbage(oidc_issuer: OIDCIssuer) -> None:
    oidc_issuer.serve_garbage(b"{not json")
    response = requests.get(oidc_issuer.jwks_url, timeout=5)
    assert response.status_code == 200
    assert response.content == b"{not json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_delay_outlasts_client_timeout(oidc_issuer: OIDCIssuer) -> None:
    oidc_issuer.delay(0.5)
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(oidc_issuer.jwks_url, timeout=0.1)


def test_override_discovery(oidc_issuer: OIDCIssuer) -> None:
    oidc_issuer.override_discovery(issuer="https://attacker.example")
    assert requests.get(oidc_issuer.discovery_url, timeout=5).json()["issuer"] == (
        "https://attacker.example"
    )


def test_request_counting(oidc_issuer: OIDCIssuer) -> None:
    assert oidc_issuer.requests() == 0
    requests.get(oidc_issuer.discovery_url, timeout=5)
    requests.get(oidc_issuer.jwks_url, timeout=5)
    requests.get(oidc_issuer.jwks_url + "?x=1", timeout=5)
    assert oidc_issuer.requests("/jwks") == 2
    assert oidc_issuer.requests("/openid-configuration") == 1
    assert oidc_issuer.requests() == 3
    oidc_issuer.reset_counts()
    assert oidc_issuer.requests() == 0


def test_stopped_issuer_refuses_connections_and_restarts_on_same_port(
    oidc_issuer: OIDCIssuer,
) -> None:
    url = oidc_issuer.jwks_url
    oidc_issuer.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=5)
    oidc_issuer.start()
    assert requests.get(url, timeout=5).status_code == 200


def test_fixture_resets_issuer_state(oidc_issuer: OIDCIssuer) -> None:
    # Runs after the tests above rotated keys, injected faults and stopped the issuer.
    assert oidc_issuer.kids == ["key-1"]
    assert oidc_issuer.requests() == 0
    document = requests.get(oidc_issuer.discovery_url, timeout=5).json()
    assert document["issuer"] == oidc_issuer.url
    assert len(requests.get(oidc_issuer.jwks_url, timeout=5).json()["keys"]) == 1


# -- claims --------------------------------------------------------------------


def test_github_claims_shape_and_overrides() -> None:
    claims = github_claims("https://iss", "aud", now=1000, environment=REMOVE, actor="x")
    assert "environment" not in claims
    assert claims["actor"] == "x"
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1000, 995, 1300)
    assert claims["sub"] == "repo:octo-org/demo:environment:pypi"
    numeric = {"iat", "nbf", "exp"}
    assert all(isinstance(v, str) for k, v in claims.items() if k not in numeric)
    assert len(claims["sha"]) == 40
    assert claims["jti"] != github_claims("https://iss", "aud")["jti"]


def test_gitlab_claims_shape() -> None:
    claims = gitlab_claims("https://gitlab.com", "aud", now=1000, ref_protected="false")
    assert claims["ref_protected"] == "false"
    assert claims["sub"] == "project_path:group/sub/project:ref_type:branch:ref:main"
    assert claims["ci_config_ref_uri"].startswith("gitlab.com/group/sub/project//")


def test_free_ports_are_bindable_and_below_the_ephemeral_range() -> None:
    # Outgoing connections take their local ports from the ephemeral range: a listener's
    # port chosen there could be taken by one before the server binds it.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1
    for port in ports:
        assert 1024 <= port < low
        with socket.create_server(("127.0.0.1", port)):
            pass
