"""The whole publish loop with the real tools: id, trustpub, build, twine, pypiserver, pip.

See stack.py for the wiring. Each test gets fresh CI tokens (each is exchangeable once).
The refusal tests all try demo-pkg 2.0.0, which must never land: a refusal is then
never an "already exists" answer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.claims import unverified_claims

from app.integrations import IntrospectionClient
from app.tokens.keys import load_key_ring
from app.tokens.mint import UploadTokenMinter

from .conftest import BuildDist
from .dists import sha256
from .stack import AUDIENCE, EPOCH_ID, INDEX_CLIENT, PROJECT, PublishStack

pytestmark = pytest.mark.slow


def assert_refused(result_output: str, returncode: int, reason: str) -> None:
    assert returncode != 0, result_output
    assert "403" in result_output, result_output
    assert reason in result_output, result_output


def assert_never_landed(stack: PublishStack) -> None:
    assert not any("2.0.0" in name for name in stack.stored())


def test_github_actions_publish_lands_the_built_bytes_on_the_index(
    stack: PublishStack, dists: BuildDist, download_dir: Path
) -> None:
    # The publish action's steps: audience from the index's origin, the CI token via
    # `id` from the runner's token service, the exchange at the same origin.
    audience = stack.audience()
    assert audience == AUDIENCE
    oidc_token = stack.id_token(audience, stack.github_job_env())
    assert [claims["aud"] for claims in stack.tokens.issued()][-1] == AUDIENCE
    minted = stack.mint(oidc_token)
    upload_token = minted["token"]
    assert isinstance(upload_token, str)
    assert upload_token.startswith("pypi-")
    assert isinstance(minted["expires"], int)
    assert minted["expires"] > time.time()

    dist = dists(PROJECT, "1.0.0")
    stack.twine_upload(dist.files, upload_token).check()  # one token, two files

    stored = stack.stored()
    assert {sha256(stored[f.name]) for f in dist.files} == {sha256(f) for f in dist.files}
    downloaded = stack.pip_download(f"{PROJECT}==1.0.0", download_dir)
    assert [path.name for path in downloaded] == [dist.wheel.name]
    assert sha256(downloaded[0]) == sha256(dist.wheel)
    sdist = stack.session.get(f"{stack.front_url}/packages/{dist.sdist.name}", timeout=10)
    assert sdist.status_code == 200
    assert sdist.content == dist.sdist.read_bytes()

    # The front routed the exchange to trustpub and the uploads to the index.
    assert stack.front is not None
    assert stack.trustpub is not None
    assert stack.index is not None
    routes = {(entry.method, entry.path, entry.upstream) for entry in stack.front.forwarded()}
    assert ("POST", "/_/oidc/mint-token", stack.trustpub.url) in routes
    assert ("POST", "/", stack.index.url) in routes

    # The served process wrote the mint's audit line, JSON with the record as its fields.
    jti = unverified_claims(upload_token)["jti"]
    audited = [
        entry["fields"]
        for entry in map(json.loads, _json_lines(stack.trustpub.log_path))
        if entry.get("logger") == "app.audit" and entry["fields"].get("jti") == jti
    ]
    assert [(fields["action"], fields["projects"]) for fields in audited] == [("mint", PROJECT)]


def _json_lines(log: Path) -> list[str]:
    # The log interleaves gunicorn's own text lines with trustpub's JSON ones.
    return [line for line in log.read_text().splitlines() if line.startswith("{")]


def test_an_upload_outside_the_tokens_projects_is_refused(
    stack: PublishStack, dists: BuildDist
) -> None:
    dist = dists("other-pkg", "1.0.0")

    result = stack.twine_upload(dist.files, stack.upload_token())

    assert_refused(result.output, result.returncode, "may not upload other-pkg")
    assert not any(name.startswith("other_pkg") for name in stack.stored())


def test_a_revoked_token_is_refused(stack: PublishStack, dists: BuildDist) -> None:
    upload_token = stack.upload_token()
    dist = dists(PROJECT, "2.0.0")

    assert stack.revoke(upload_token).status_code == 200
    result = stack.twine_upload(dist.files, upload_token)

    assert_refused(result.output, result.returncode, "not active")
    assert_never_landed(stack)


def test_an_expired_token_is_refused(stack: PublishStack, dists: BuildDist) -> None:
    # Minted like trustpub mints (same key, issuer, audience, epoch), an hour ago.
    minter = UploadTokenMinter(
        keys=load_key_ring(stack.keys_dir),
        issuer=f"urn:trustpub:{AUDIENCE}",
        audience=f"urn:trustpub:upload:{AUDIENCE}",
        ttl=60,
        prefix="pypi-",
    )
    publisher = {
        "provider": "github",
        "issuer": stack.issuer.url,
        "repository": "octo-org/demo",
        "repository_id": "74",
        "repository_owner_id": "65",
        "workflow": "release.yml",
    }
    now = int(time.time())
    expired = minter.mint(frozenset({PROJECT}), publisher, EPOCH_ID, now - 3600).token
    control = minter.mint(frozenset({PROJECT}), publisher, EPOCH_ID, now).token
    assert stack.trustpub is not None
    client = IntrospectionClient(
        stack.trustpub.url,
        stack.client_secret_file.read_text().strip(),
        client_id=INDEX_CLIENT,
        cache_ttl=0,
    )
    assert client.introspect(control) is not None  # so the only fault is the expiry
    dist = dists(PROJECT, "2.0.0")

    result = stack.twine_upload(dist.files, expired)

    assert_refused(result.output, result.returncode, "not active")
    assert_never_landed(stack)


def test_when_trustpub_is_down_uploads_are_refused(stack: PublishStack, dists: BuildDist) -> None:
    upload_token = stack.upload_token()
    dist = dists(PROJECT, "2.0.0")
    assert stack.trustpub is not None

    stack.trustpub.stop()
    try:
        result = stack.twine_upload(dist.files, upload_token)
    finally:
        stack.trustpub.start()

    assert_refused(result.output, result.returncode, "cannot check")
    assert_never_landed(stack)


def test_gitlab_style_job_id_token_variable_and_curl_style_mint(
    stack: PublishStack, dists: BuildDist
) -> None:
    # In GitLab, `id_tokens: {TRUSTPUB_E2E_EXAMPLE_ID_TOKEN: {aud: ...}}` puts the job's
    # token in that variable, and `id` finds it there (audience upper-cased, other
    # characters as "_"). trustpub does not verify GitLab tokens yet (the GitLab provider
    # is another change), so the token is GitHub-shaped and signed by the test issuer:
    # this exercises id's variable detection and the form-encoded mint path only.
    oidc_token = stack.tokens.issue(AUDIENCE)
    job_env = stack.env({"GITLAB_CI": "true", "TRUSTPUB_E2E_EXAMPLE_ID_TOKEN": oidc_token})
    assert stack.id_token(AUDIENCE, job_env) == oidc_token

    upload_token = stack.mint(oidc_token, form_encoded=True)["token"]
    assert isinstance(upload_token, str)
    dist = dists(PROJECT, "1.1.0")
    stack.twine_upload([dist.sdist], upload_token).check()

    assert sha256(stack.stored()[dist.sdist.name]) == sha256(dist.sdist)
